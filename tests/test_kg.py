"""The knowledge graph: structure, dependencies against networkx ground truth, JSON round trip."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from harness.errors import KnowledgeGraphError
from harness.scenario.causal import admissible_events, blast_radius
from harness.kg import (KINDS, build_kg, dependents, from_json, load_kg, paths,
                        save_kg, to_json)
from harness.kg.traffic import traffic_matrix
from harness.topology import load_topology


def test_every_kind_and_relation_present(abilene_kg):
    s = abilene_kg.summary()
    assert s["nodes"]["router"] == 11 and s["nodes"]["link"] == 14 and s["nodes"]["host"] == 11
    assert s["nodes"]["flow"] == 110  # all ordered pairs of 11 routers
    for rel in ("connects", "carries", "routes_via", "depends_on", "hosts", "uses"):
        assert s["edges"][rel] > 0, rel


def test_bridge_dependents_equal_networkx_ground_truth(bridge_kg):
    topo = bridge_kg.topology
    assert list(nx.bridges(topo)) and ("C", "D") in {tuple(sorted(b)) for b in nx.bridges(topo)}
    cut = topo.copy()
    cut.remove_edge("C", "D")
    side = {n: i for i, comp in enumerate(nx.connected_components(cut)) for n in comp}
    expected = {f"flow:{s}~{d}" for s in topo for d in topo if s != d and side[s] != side[d]}
    got = {n for n in dependents(bridge_kg, "link:C-D") if n.startswith("flow:")}
    assert got == expected
    services = {n for n in dependents(bridge_kg, "link:C-D") if n.startswith("service:")}
    assert services == {f"service:{bridge_kg.graph.nodes[f]['service']}" for f in expected}


def test_router_dependents_include_host_links_and_transit_flows(abilene_kg):
    deps = dependents(abilene_kg, "router:KansasCity")
    assert "host:h_KansasCity" in deps
    assert {"link:Denver-KansasCity", "link:Houston-KansasCity", "link:Indianapolis-KansasCity"} <= deps
    transit = {f"flow:{f}" for f in abilene_kg.flows if "KansasCity" in abilene_kg.attrs("flow", f)["path"]}
    assert transit <= deps


def test_paths_are_shortest_by_delay(abilene_kg, abilene):
    for f in abilene_kg.flows[:30]:
        a = abilene_kg.attrs("flow", f)
        expected = nx.shortest_path_length(abilene, a["src"], a["dst"], weight="delay_ms")
        assert a["delay_ms"] == pytest.approx(expected, abs=1e-3)
        p = paths(abilene_kg, f)
        assert p["routers"][0] == a["src"] and p["routers"][-1] == a["dst"]
        assert len(p["links"]) == len(p["routers"]) - 1


def test_traffic_scaled_to_target_load(abilene_kg):
    utils = [abilene_kg.attrs("link", l)["utilisation"] for l in abilene_kg.links]
    assert max(utils) == pytest.approx(0.5, abs=1e-6)
    arcs: dict = {}
    through = {r: 0.0 for r in abilene_kg.routers}
    for f in abilene_kg.flows:
        a = abilene_kg.attrs("flow", f)
        for u, v in zip(a["path"], a["path"][1:]):
            arcs[u, v] = arcs.get((u, v), 0.0) + a["demand_mbps"]
        for r in a["path"]:
            through[r] += a["demand_mbps"]
    for l in abilene_kg.links:
        u, v = abilene_kg.link_ends(l)
        busiest = max(arcs.get((u, v), 0.0), arcs.get((v, u), 0.0))
        assert busiest == pytest.approx(abilene_kg.attrs("link", l)["load_mbps"], rel=1e-5, abs=1e-5)
    for r in abilene_kg.routers:
        cpu = abilene_kg.attrs("resource", f"cpu_{r}")
        assert cpu["capacity"] == pytest.approx(through[r] / 0.5, rel=1e-5)


def test_traffic_models_are_seeded():
    g = load_topology("topozoo/Geant2012")
    assert traffic_matrix(g, "gravity", seed=3) == traffic_matrix(g, "gravity", seed=3)
    assert traffic_matrix(g, "gravity", seed=3) != traffic_matrix(g, "gravity", seed=4)
    uni = traffic_matrix(g, "uniform")
    assert len({round(w, 12) for _, _, w in uni}) == 1
    sampled = traffic_matrix(g, "gravity", max_flows=100)
    assert len(sampled) == 100 and len({(s, d) for s, d, _ in sampled}) == 100
    assert abs(sum(w for *_, w in sampled) - 1) < 1e-9


def test_services_cover_every_flow_once(abilene_kg):
    members = [f for s in abilene_kg.names("service") for f in abilene_kg.attrs("service", s)["flows"]]
    assert sorted(members) == sorted(abilene_kg.flows)


def test_srlgs_from_conduit_and_proximity():
    kg = build_kg(load_topology("square"))
    assert [kg.attrs("srlg", s)["links"] for s in kg.srlgs] == [["A-B", "A-C"]]
    assert set(kg.related("link:A-B", "shares_risk")) == {"srlg:srlg1"}
    tata = build_kg(load_topology("topozoo/TataNld"), srlg_radius_km=50)
    assert tata.srlgs
    from harness.topology.geo import haversine_km, midpoint
    topo = tata.topology
    for s in tata.srlgs:
        mids = []
        for l in tata.attrs("srlg", s)["links"]:
            u, v = tata.link_ends(l)
            mids.append(midpoint(topo.nodes[u]["lat"], topo.nodes[u]["lon"], topo.nodes[v]["lat"], topo.nodes[v]["lon"]))
        assert any(all(haversine_km(*m, *o) <= 50 + 1e-6 for o in mids) for m in mids)


def test_incidents_attach_to_targets(abilene):
    kg = build_kg(abilene, incidents="topologies/incidents/abilene.jsonl")
    assert len(kg.names("incident")) == 6
    assert list(kg.related("incident:inc-2019-03-kc-cut", "affected")) == ["link:Denver-KansasCity"]


def test_bad_incident_log(abilene, tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "x", "target": "Denver"}\nnot json\n')
    with pytest.raises(KnowledgeGraphError, match="bad.jsonl:2"):
        build_kg(abilene, incidents=p)


def test_json_round_trip_is_lossless(abilene_kg, tmp_path):
    back = from_json(json.loads(json.dumps(to_json(abilene_kg))))
    assert nx.utils.graphs_equal(abilene_kg.graph, back.graph)
    assert set(abilene_kg.graph.edges(keys=True)) == set(back.graph.edges(keys=True))
    p = tmp_path / "a.kg.json"
    save_kg(abilene_kg, p)
    assert load_kg(p).summary() == abilene_kg.summary()
    p.write_text("{broken")
    with pytest.raises(KnowledgeGraphError, match="malformed"):
        load_kg(p)
    with pytest.raises(KnowledgeGraphError, match="format"):
        from_json({"nodes": []})


def test_blast_radius_of_bridge(bridge_kg):
    br = blast_radius(bridge_kg, [{"event_type": "fiber_link_failure", "target": "C-D"}])
    assert br["elements"] == ["link:C-D"]
    assert set(br["routers"]) == set("ABCDEF")
    assert len(br["flows"]) == 18  # 3 x 3 pairs each way


def test_admissible_events_respect_state(bridge_kg):
    first = admissible_events(bridge_kg)
    assert set(first["fiber_link_failure"]) == set(bridge_kg.links)
    after = admissible_events(bridge_kg, [{"event_type": "router_failure", "target": "C", "timestamp": 1.0,
                                           "duration_s": None, "params": {}}])
    # C and its links are down; nothing may fail C again or cut its links.
    assert "C" not in after["router_failure"]
    assert not {"A-C", "B-C", "C-D"} & set(after["fiber_link_failure"])
    # A DDoS against a router in the now-isolated half still has sources within its half.
    assert "A" in after["ddos_spike"]


def test_unknown_lookup_is_clear(abilene_kg):
    with pytest.raises(KnowledgeGraphError, match="no element named"):
        dependents(abilene_kg, "Gotham")
    assert set(KINDS) >= {"router", "link", "srlg"}
