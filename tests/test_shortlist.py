"""The bounded per-step candidate set of LLM generation (harness.generate.shortlist)."""

from __future__ import annotations

import networkx as nx
import pytest

from harness.generate.shortlist import BRIDGE_TIE, neighbourhood, scores, shortlist
from harness.kg import build_kg, kg_from_ref
from harness.scenario.causal import admissible_events
from harness.scenario.model import Event


def test_small_graphs_are_offered_whole(abilene_kg):
    opts = admissible_events(abilene_kg, [])
    s = shortlist(abilene_kg, opts, limit=10_000)
    assert {et: sorted(ts) for et, ts in s.options.items()} == {et: sorted(ts) for et, ts in opts.items()}
    assert s.size == s.admissible
    # most critical first: each type's targets by score, the types by their best target
    sc = scores(abilene_kg)
    kind = {"fiber_link_failure": "link", "router_failure": "router"}
    for et, ts in s.options.items():
        if et in kind:
            assert [sc[kind[et]][t] for t in ts] == sorted((sc[kind[et]][t] for t in ts), reverse=True)
    assert next(iter(s.options)) == "router_failure"     # KansasCity carries more than any link


def test_bounded_admissible_and_deterministic():
    kg = kg_from_ref("as:800", seed=1)
    ev = [Event(event_type="fiber_link_failure", target=kg.links[5], timestamp=10.0, severity="high")]
    opts = admissible_events(kg, ev, at=20.0)
    assert sum(map(len, opts.values())) > 1000
    a = shortlist(kg, opts, ev, seed=3, limit=64)
    assert a.size <= 64 and a.admissible == sum(map(len, opts.values()))
    for et, targets in a.options.items():
        assert set(targets) <= set(opts[et]) and len(set(targets)) == len(targets)
    assert a == shortlist(kg, opts, ev, seed=3, limit=64)
    assert a.options != shortlist(kg, opts, ev, seed=4, limit=64).options    # the exploration share moves
    rec = a.record()
    assert rec["offered"] == a.size and rec["neighbourhood"] > 0 and rec["critical"] > 0 and rec["explore"] > 0
    near = neighbourhood(kg, ev)
    assert any(t in near for ts in a.options.values() for t in ts)


def test_criticality_is_the_share_of_demand_crossing_and_bridges_break_ties():
    # a ring with a tail: every score is the share of all demand whose path crosses the element
    # (recomputed here from the flows), the tail link (a bridge) carries BRIDGE_TIE more
    g = nx.Graph()
    for u, v in [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A"), ("D", "E")]:
        g.add_edge(u, v, delay_ms=1.0, capacity_mbps=1000.0)
    kg = build_kg(g)
    sc = scores(kg)
    flows = [kg.attrs("flow", f) for f in kg.flows]
    total = sum(f["demand_mbps"] for f in flows)
    bridge = next(l for l in kg.links if set(kg.link_ends(l)) == {"D", "E"})
    for l in kg.links:
        share = sum(f["demand_mbps"] for f in flows if l in f["links"]) / total
        assert sc["link"][l] == pytest.approx(share + (BRIDGE_TIE if l == bridge else 0.0), abs=1e-12)
    assert sc["router"]["E"] == pytest.approx(sum(f["demand_mbps"] for f in flows if "E" in f["path"]) / total)
    assert sc["link"][bridge] > 0 and max(sc["router"].values()) <= 1.0
    s = shortlist(kg, {"fiber_link_failure": kg.links}, limit=2)
    assert s.options["fiber_link_failure"][0] == max(sc["link"], key=sc["link"].get)


def test_the_kg_free_ablation_samples_uniformly():
    kg = kg_from_ref("as:800", seed=1)
    opts = admissible_events(kg, [])
    s = shortlist(kg, opts, seed=1, limit=40, use_kg=False)
    assert s.size <= 40 and s.sources["explore"] == s.size


def test_after_a_failure_the_scores_follow_the_rerouted_traffic(abilene_kg):
    """Once KansasCity is down: it and its links carry nothing, the flows it displaced count on
    their live shortest paths (Atlanta-Houston gains), flows from or to it count nowhere, and an
    event that only degrades a link leaves the paths as they are."""
    kg = abilene_kg
    before = scores(kg)
    down = [Event(event_type="router_failure", target="KansasCity", timestamp=10.0, severity="high")]
    after = scores(kg, down)
    assert after["router"]["KansasCity"] == 0.0
    assert all(after["link"][l] == 0.0 for l in kg.links if "KansasCity" in kg.link_ends(l))
    assert after["link"]["Atlanta-Houston"] > before["link"]["Atlanta-Houston"] + 0.1
    total = sum(kg.attrs("flow", f)["demand_mbps"] for f in kg.flows)
    # Seattle (no rerouted path crosses it) loses exactly its flows to and from KansasCity
    lost = sum(kg.attrs("flow", f)["demand_mbps"] for f in kg.flows
               if {kg.attrs("flow", f)["path"][0], kg.attrs("flow", f)["path"][-1]} == {"Seattle", "KansasCity"})
    assert lost > 0
    assert after["router"]["Seattle"] == pytest.approx(before["router"]["Seattle"] - lost / total)
    # a power outage takes down every router in its radius (its own effect), not just its target
    from harness.scenario import types as event_types

    outage = Event(event_type="power_outage", target="KansasCity", timestamp=10.0, severity="high",
                   params={"radius_km": 1000.0})
    dark = event_types.effect_of(kg, outage).routers_down
    assert len(dark) > 1
    assert scores(kg, [outage]) == scores(kg, [Event(event_type="router_failure", target=r, timestamp=10.0,
                                                     severity="high") for r in sorted(dark)])
    degraded = [Event(event_type="link_degradation", target="Atlanta-Houston", timestamp=10.0, severity="high")]
    assert scores(kg, degraded) == before
