"""The flow twin through the KPI record, against ground truth computed in the test."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from harness.errors import ConfigError
from harness.kg import build_kg
from harness.scenario import validate_scenario
from harness.twin import KPIS, ScenarioResult, make_twin
from harness.twin.flow.engine import EngineConfig
from harness.twin.flow.twin import FlowTwin


def topo_with_stub():
    """A 4-ring (A,B,C,D) with a 2-router stub (E,F) hanging off D through the bridge D-E."""
    g = nx.Graph(name="stub", source="test", dropped=[])
    for n in "ABCDEF":
        g.add_node(n, label=n, lat=None, lon=None)
    for u, v in ["AB", "BC", "CD", "DA", "DE", "EF"]:
        g.add_edge(u, v, delay_ms=1.0, capacity_mbps=1000.0, dist_km=None, conduit=None)
    return g


def scenario(*events, sid="t"):
    return {"id": sid, "topology": "stub", "events": list(events)}


def ev(event_type, target, t=1.0, **kw):
    return {"event_type": event_type, "target": target, "timestamp": t, **kw}


@pytest.fixture(scope="module")
def stub_kg():
    return build_kg(topo_with_stub(), traffic="uniform")


def run(kg, raw, mitigation=None, config=None):
    twin = make_twin("flow") if config is None else FlowTwin(config=config)
    with twin:
        return twin.run(kg, validate_scenario(kg, raw), mitigation)


#: Cascades off: for tests of a mitigation's mechanics (with cascades on, the Motter–Lai rule
#: may fail elements the mitigation moves traffic onto; tests/test_cascade.py tests that).
NO_CASCADE = EngineConfig(cascade=False)


def test_bridge_cut_loses_exactly_the_flows_across(stub_kg):
    topo = stub_kg.topology
    cut = topo.copy()
    cut.remove_edge("D", "E")
    comps = list(nx.connected_components(cut))
    side = {n: i for i, c in enumerate(comps) for n in c}
    across = sum(1 for f in stub_kg.flows
                 if side[stub_kg.attrs("flow", f)["src"]] != side[stub_kg.attrs("flow", f)["dst"]])
    r = run(stub_kg, scenario(ev("fiber_link_failure", "D-E")))
    fail = r.row("failure")
    assert fail.unreachable_pairs == across == 16
    largest = max(comps, key=len)
    assert set(fail.impacted_node_names) == set(topo) - largest == {"E", "F"}
    assert r.row("baseline").unreachable_pairs == 0 and r.row("baseline").impacted_nodes == 0


def test_ddos_above_capacity_loses_on_its_path_only(stub_kg):
    # 3x the target's access capacity from A towards F, cascades off: the links on the
    # path A-D-E-F drop traffic, and no other link does.
    from harness.twin.flow.engine import EngineConfig
    from harness.twin.flow.twin import state_for

    raw = scenario(ev("ddos_spike", "F", params={"sources": ["A"], "intensity": 3.0}))
    s = validate_scenario(stub_kg, raw)
    with FlowTwin(config=EngineConfig(cascade=False)) as twin:
        out = twin.engine(stub_kg).evaluate(state_for(stub_kg, s.events, at=1.0))
        r = twin.run(stub_kg, s)
    path = nx.shortest_path(stub_kg.topology, "A", "F", weight="delay_ms")
    path_links = {f"{min(a, b)}-{max(a, b)}" for a, b in zip(path, path[1:])}
    lossy = {l for l, x in zip(out.link_ids, out.link_loss) if x > 0}
    assert lossy == path_links == {"A-D", "D-E", "E-F"}
    assert r.row("failure").loss_pct > 0 and r.row("failure").cascade_depth == 0


def test_cascade_depth_counts_induced_rounds(stub_kg):
    # With cascades on, the same attack trips the overloaded elements on its path.
    r = run(stub_kg, scenario(ev("ddos_spike", "F", params={"sources": ["A"], "intensity": 3.0})))
    induced = r.meta["induced_links"]
    assert r.row("failure").cascade_depth == len(induced) >= 1
    assert set(induced[0]) <= {"A-D", "D-E", "E-F"}


def test_rate_limit_reduces_ddos_loss(stub_kg):
    raw = scenario(ev("ddos_spike", "F", params={"sources": ["A", "B"], "intensity": 3.0}))
    r = run(stub_kg, raw, "rate_limit", NO_CASCADE)
    assert r.row("mitigated").loss_pct < r.row("failure").loss_pct
    assert r.effectiveness()["loss_pct"] > 0.5
    assert {a["router"] for a in r.mitigation["actions"]} == {"A", "B"}


def test_rollback_restores_reachability(stub_kg):
    raw = scenario(ev("misconfiguration", "D", params={"mode": "blackhole"}))
    r = run(stub_kg, raw, "rollback")
    assert r.row("failure").unreachable_pairs > 0
    assert r.row("mitigated").unreachable_pairs == 0
    assert r.row("mitigated").loss_pct == pytest.approx(0.0, abs=1e-9)


def test_reallocate_relieves_congestion(stub_kg):
    raw = scenario(ev("traffic_surge", "F", params={"multiplier": 2.5}))
    r = run(stub_kg, raw, "reallocate", NO_CASCADE)
    assert r.row("failure").congested_links > 0
    assert r.row("mitigated").max_link_util < r.row("failure").max_link_util
    assert all(a["action"] == "add_capacity" for a in r.mitigation["actions"])


def test_reroute_moves_traffic_off_a_degraded_link(stub_kg):
    raw = scenario(ev("link_degradation", "A-B", params={"loss_pct": 20, "capacity_factor": 1.0}))
    r = run(stub_kg, raw, "reroute")
    assert r.row("failure").loss_pct > 0
    assert r.row("mitigated").loss_pct < r.row("failure").loss_pct


def test_fiber_cut_on_ring_reroutes_with_time(stub_kg):
    r = run(stub_kg, scenario(ev("fiber_link_failure", "A-B")))
    f = r.row("failure")
    assert f.unreachable_pairs == 0
    assert f.reroute_time_ms_max > 0 and f.reroute_time_ms_mean > 0
    assert f.latency_ms_mean > r.row("baseline").latency_ms_mean


def test_monitored_flows_restrict_the_flow_level_kpis(stub_kg):
    """``monitored``: the emulation's sample of flows, so the twins compare on the same ones."""
    raw = scenario(ev("fiber_link_failure", "D-E"))
    every = run(stub_kg, raw)
    ring_only = [f for f in stub_kg.flows if not {stub_kg.attrs("flow", f)["src"], stub_kg.attrs("flow", f)["dst"]} & {"E", "F"}]
    with FlowTwin() as twin:
        some = twin.run(stub_kg, validate_scenario(stub_kg, raw), None, monitored=ring_only)
    # the cut strands E and F: unreachable and impacted with every flow watched, invisible on the ring's flows
    assert every.row("failure").unreachable_pairs > 0 and {"E", "F"} <= set(every.row("failure").impacted_node_names)
    assert some.row("failure").unreachable_pairs == 0 and some.row("failure").impacted_nodes == 0
    assert some.meta["monitored_flows"] == len(ring_only) < every.meta["monitored_flows"] == len(stub_kg.flows)
    # loss is over all traffic either way; the SLA verdicts cover the monitored flows only
    assert some.row("failure").loss_pct == every.row("failure").loss_pct > 0
    loss_verdicts = [v for v in some.sla if v.phase == "failure" and v.metric == "loss_pct"]
    assert sum(v.measured for v in loss_verdicts) == len(ring_only)
    with pytest.raises(ConfigError, match="monitored flows not in the knowledge graph.*X~Y"):
        FlowTwin().run(stub_kg, validate_scenario(stub_kg, raw), None, monitored=["X~Y"])


def test_result_round_trips(stub_kg):
    r = run(stub_kg, scenario(ev("fiber_link_failure", "A-B"), ev("router_failure", "B", 2.0)), "auto")
    back = ScenarioResult.from_json(r.to_json())
    assert back == r
    assert len(r.timeline) == 2 and r.timeline[1]["event_type"] == "router_failure"
    df = r.to_frame()
    assert len(df) == len(r.rows) * len(KPIS)
    assert set(df["phase"]) == {"baseline", "failure", "mitigated"}
    assert json.loads(r.to_json())["twin"] == "flow"


def test_abilene_examples_run(abilene_kg):
    from harness.scenario import read_scenarios

    s = read_scenarios("scenarios/abilene/router_overload.yaml")[0]
    r = run(abilene_kg, s, "auto", NO_CASCADE)
    assert r.row("failure").loss_pct > 0 and r.row("mitigated").loss_pct < r.row("failure").loss_pct
    # with cascades on, the overload itself trips nothing (the router's received load does not
    # grow), but the planner's reroute moves traffic past Motter–Lai tolerances elsewhere
    c = run(abilene_kg, s, "auto")
    assert c.row("failure").cascade_depth == 0 and c.row("failure").loss_pct == r.row("failure").loss_pct
    assert c.row("mitigated").cascade_depth >= 1


def test_reroute_constants_are_configurable(stub_kg, tmp_path):
    from harness.campaign.fidelity import load_calibration
    from harness.twin.flow.twin import RerouteModel

    raw = scenario(ev("fiber_link_failure", "A-B"))
    s = validate_scenario(stub_kg, raw)
    default = FlowTwin().run(stub_kg, s).row("failure")
    p = tmp_path / "calibration.json"
    shipped = RerouteModel.shipped().for_network(len(stub_kg.routers))
    p.write_text(f'{{"detection_ms": 80, "computation_ms": {shipped.computation_ms}, '
                 f'"install_per_switch_ms": {shipped.install_per_switch_ms}}}')
    model = load_calibration(p)
    assert model == RerouteModel(80.0, shipped.computation_ms, shipped.install_per_switch_ms)
    assert model.source == "calibration.json"
    p.write_text('{"detection_ms": -1, "computation_ms": 1, "install_per_switch_ms": 1}')
    with pytest.raises(ConfigError, match="must be >= 0"):
        load_calibration(p)
    slow = FlowTwin(reroute=model).run(stub_kg, s).row("failure")
    assert slow.reroute_time_ms_max == pytest.approx(default.reroute_time_ms_max + 80 - shipped.detection_ms)


def test_sweep_counts_impacted_nodes_like_ani_run(abilene_kg):
    """The sweep and `ani run` share one impacted-node rule (each service's own SLA)."""
    from harness.scenario.validate import validate_scenario
    from harness.twin.sweep import sweep

    twin = FlowTwin()
    rows = sweep(abilene_kg, 1, twin=twin)
    assert any(r["impacted_nodes"] for r in rows)
    for r in rows:
        s = validate_scenario(abilene_kg, {"id": "cut", "events": [
            {"event_type": "fiber_link_failure", "target": r["links"][0], "timestamp": 10}]})
        fail = twin.run(abilene_kg, s).row("failure")
        assert (r["impacted_nodes"], r["unreachable_pairs"]) == (fail.impacted_nodes, fail.unreachable_pairs), r
        assert r["loss_pct"] == pytest.approx(fail.loss_pct, abs=1e-6)


def test_shipped_reroute_constants_were_measured_and_say_where():
    import json

    from harness.twin.flow.twin import CALIBRATION_FILE, RerouteModel

    rec = json.loads(CALIBRATION_FILE.read_text())
    prov = rec["provenance"]
    assert {"machine", "date", "samples", "topologies", "resolution_ms"} <= set(prov)
    assert prov["resolution_ms"] <= 5.0
    # one point per measured network size, each from enough timed pairs
    assert len(rec["points"]) >= 2 and all(x["fit"]["pairs"] >= 20 for x in rec["points"])
    assert sorted(x["switches"] for x in rec["points"]) == sorted(set(prov["topologies"].values()))
    model = RerouteModel.shipped()
    for x in rec["points"]:
        m = model.for_network(x["switches"])
        assert (m.detection_ms, m.computation_ms, m.install_per_switch_ms) == (
            x["detection_ms"], x["computation_ms"], x["install_per_switch_ms"])
    assert prov["machine"] in model.source and prov["date"] in model.source


def test_reroute_model_interpolates_between_measured_sizes(tmp_path):
    from harness.twin.flow.twin import RerouteModel

    p = tmp_path / "cal.json"
    p.write_text(json.dumps({"points": [
        {"switches": 30, "detection_ms": 30, "computation_ms": 3, "install_per_switch_ms": 6},
        {"switches": 10, "detection_ms": 10, "computation_ms": 1, "install_per_switch_ms": 2}]}))
    m = RerouteModel.from_file(p)
    mid = m.for_network(20)
    assert (mid.detection_ms, mid.computation_ms, mid.install_per_switch_ms) == (20.0, 2.0, 4.0)
    assert "interpolated between 10 and 30 switches" in mid.source
    assert mid.time_ms(5) == 20 + 2 + 4 * 5
    # never extrapolated: beyond the measured sizes the nearest one's constants, and it says so
    big = m.for_network(5000)
    assert (big.detection_ms, big.install_per_switch_ms) == (30.0, 6.0) and "not measured at 5000" in big.source
    assert m.for_network(4).detection_ms == 10.0
    p.write_text(json.dumps({"points": [{"switches": 10, "detection_ms": 1, "computation_ms": 1, "install_per_switch_ms": 1},
                                       {"switches": 10, "detection_ms": 2, "computation_ms": 1, "install_per_switch_ms": 1}]}))
    with pytest.raises(ConfigError, match="distinct switch counts"):
        RerouteModel.from_file(p)


def test_fit_reroute_by_hand():
    from types import SimpleNamespace

    from harness.campaign.fidelity import fit_reroute

    def res(cp, samples, routers=None):
        meta = {"control_plane": cp, "reroute_samples": samples}
        if routers:
            meta["fidelity"] = {"routers": routers}
        return SimpleNamespace(twin="emulation", meta=meta)

    # detection median 4, computation median 2; beyond them the gaps add 4 and 8 ms on 2 and 4
    # switches: slope (2*4 + 4*8) / (2^2 + 4^2) = 2 ms per switch, an exact fit
    results = [res([{"detect_ms": 3, "compute_ms": 2}, {"detect_ms": 5, "compute_ms": 2}],
                   {"A>B": {"gap_ms": 10, "switches": 2, "fast": True},
                    "B>A": {"gap_ms": 99, "switches": 2, "fast": False}}),     # a 40 ms probe: not used
               res([{"detect_ms": 4, "compute_ms": 3}], {"C>D": {"gap_ms": 14, "switches": 4, "fast": True}}),
               SimpleNamespace(twin="flow", meta={})]
    rec = fit_reroute(results, {"machine": "m"})
    [pt] = rec["points"]
    assert (pt["switches"], pt["detection_ms"], pt["computation_ms"], pt["install_per_switch_ms"]) == (None, 4.0, 2.0, 2.0)
    assert pt["fit"] == {"recomputes": 3, "pairs": 2, "median_abs_error_ms": 0.0, "gap_ms_median": 12.0,
                         "gap_ms_max": 14.0}
    assert rec["provenance"] == {"machine": "m"}
    # results from two network sizes: one point each
    two = fit_reroute([res([{"detect_ms": 10, "compute_ms": 1}], {"A>B": {"gap_ms": 15, "switches": 2, "fast": True}}, 11),
                       res([{"detect_ms": 30, "compute_ms": 1}], {"A>B": {"gap_ms": 51, "switches": 5, "fast": True}}, 37)])
    assert [(x["switches"], x["detection_ms"], x["install_per_switch_ms"]) for x in two["points"]] == [(11, 10.0, 2.0),
                                                                                                   (37, 30.0, 4.0)]
    with pytest.raises(Exception, match="no emulation result"):
        fit_reroute([SimpleNamespace(twin="flow", meta={})])


def test_sweep_over_links_routers_and_srlgs_up_to_k(abilene_kg):
    """The exhaustive worst case at an attack budget: every combination of up to k elements."""
    import math

    import pytest

    from harness.errors import ConfigError
    from harness.twin.sweep import elements, sweep

    els = elements(abilene_kg, ("link", "router"))
    assert len(els) == len(abilene_kg.links) + len(abilene_kg.routers) == 25
    rows = sweep(abilene_kg, 2, kinds=("link", "router"))
    assert len(rows) == 25 + math.comb(25, 2)
    assert {len(r["elements"]) for r in rows} == {1, 2}
    assert [r["loss_pct"] for r in rows] == sorted((r["loss_pct"] for r in rows), reverse=True)
    # the up-to-2 sweep includes the singles, so its worst is at least the worst single failure
    singles = sweep(abilene_kg, 1, kinds=("link", "router"))
    assert rows[0]["loss_pct"] >= singles[0]["loss_pct"]
    router_rows = [r for r in rows if r["elements"] == ["router:Houston"]]
    assert router_rows and router_rows[0]["routers"] == ["Houston"] and router_rows[0]["links"] == []
    pairs = sweep(abilene_kg, 2, exactly=True)
    assert len(pairs) == math.comb(14, 2) and all(len(r["links"]) == 2 for r in pairs)
    with pytest.raises(ConfigError, match="sweep kinds must be among"):
        sweep(abilene_kg, 1, kinds=("cable",))
    with pytest.raises(ConfigError, match="more than 2,000,000"):
        sweep(abilene_kg, 9, kinds=("link", "router"))


def test_array_impacted_rule_equals_the_shared_rule(abilene_kg):
    """The flow twin counts impacted routers with arrays; it is the shared rule exactly."""
    import numpy as np

    from harness.twin.flow.records import NetState
    from harness.twin.flow.twin import FlowTwin, impacted_nodes, sla_bounds
    from harness.twin.kpi import impacted_routers

    eng = FlowTwin().engine(abilene_kg)
    n = len(abilene_kg.flows)
    bounds = sla_bounds(abilene_kg, eng.baseline.demand_ids[:n])
    for links in (["Denver-KansasCity"], ["Atlanta-Houston", "Chicago-NewYork"], []):
        out = eng.evaluate(NetState(failed_links=frozenset(links), failed_routers=frozenset({"Seattle"})))
        loss_sla, latency_sla = bounds
        with np.errstate(invalid="ignore"):
            broken = ~out.reachable[:n] | (out.loss_fraction[:n] * 100 > loss_sla) | (out.latency_ms[:n] > latency_sla)
        ref = impacted_routers(abilene_kg, dict(zip(out.demand_ids[:n], broken.tolist())), out.failed_routers)
        assert impacted_nodes(abilene_kg, out, bounds) == ref
