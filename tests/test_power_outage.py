"""``power_outage`` end to end off the emulation: registry, validator, flow twin, generators,
mitigation and report (the emulation test is in tests/emulation/test_events.py).

The test network lies on the equator, where one degree of longitude is 2πR/360 =
111.195 km (R = 6371.0088 km): B is 0.3° = 33.4 km from A, C 0.5° = 55.6 km, D 1° =
111.2 km, and E has no coordinates. By hand: an outage at A with the default 50 km fails
A and B; with 60 km also C; at E it fails E alone.
"""

from __future__ import annotations

import networkx as nx
import pytest

from harness.campaign.report import scenario_type
from harness.errors import ConfigError
from harness.generate.rule import rule_order
from harness.kg import build_kg
from harness.mitigate import plan
from harness.scenario import types
from harness.scenario.causal import admissible_events, blast_radius
from harness.scenario.validate import check_scenario, notes, validate_scenario
from harness.twin.flow.twin import FlowTwin, failure_view, state_for

COORDS = {"A": (0.0, 0.0), "B": (0.0, 0.3), "C": (0.0, 0.5), "D": (0.0, 1.0), "E": (None, None)}


def site_graph() -> nx.Graph:
    g = nx.Graph(name="sites", source="synthetic", dropped=[])
    for u, v in [("A", "B"), ("B", "C"), ("C", "D"), ("D", "E"), ("E", "A")]:
        g.add_edge(u, v, delay_ms=1.0, capacity_mbps=1000.0, dist_km=None, delay_source="synthetic",
                   capacity_source="default", conduit=None, parallel=1)
    for n, (lat, lon) in COORDS.items():
        g.nodes[n].update(label=n, lat=lat, lon=lon)
    return g


@pytest.fixture(scope="module")
def kg():
    return build_kg(site_graph())


def outage(target, **params):
    return {"event_type": "power_outage", "target": target, "timestamp": 10.0, "params": params}


@pytest.mark.parametrize("target, radius, expected", [
    ("A", None, {"A", "B"}), ("A", 60.0, {"A", "B", "C"}), ("A", 0.0, {"A"}), ("A", 112.0, {"A", "B", "C", "D"}),
    ("C", 25.0, {"B", "C"}), ("E", 500.0, {"E"}),
])
def test_routers_within_the_radius_fail(kg, target, radius, expected):
    params = {} if radius is None else {"radius_km": radius}
    s = validate_scenario(kg, {"id": "p", "events": [outage(target, **params)]})
    assert s.events[0].params["radius_km"] == (50.0 if radius is None else radius)
    assert types.effect_of(kg, s.events[0]).routers_down == expected
    assert set(blast_radius(kg, s.events)["elements"]) == {f"router:{r}" for r in expected}


def test_router_without_coordinates_fails_alone_and_the_validator_says_so(kg):
    s = validate_scenario(kg, {"id": "p", "events": [outage("E")]})
    assert notes(kg, s) == ["event 0: router E has no coordinates: the power outage fails it alone"]
    assert notes(kg, validate_scenario(kg, {"id": "q", "events": [outage("A")]})) == []


def test_validator_knows_what_the_outage_killed(kg):
    dead = check_scenario(kg, {"id": "p", "events": [
        outage("A"), {"event_type": "router_failure", "target": "B", "timestamp": 20.0}]})
    assert [str(r) for r in dead] == ["event 1: [R2-alive] router B is already down"]
    # a DDoS from a source the outage killed, and one at a target it killed
    from_dead = check_scenario(kg, {"id": "p", "events": [
        outage("A"), {"event_type": "ddos_spike", "target": "D", "timestamp": 20.0, "params": {"sources": ["B"]}}]})
    assert any("source router B is down" in str(r) for r in from_dead)
    at_dead = check_scenario(kg, {"id": "p", "events": [
        outage("A"), {"event_type": "ddos_spike", "target": "B", "timestamp": 20.0}]})
    assert [r.rule for r in at_dead] == ["R2-alive"]
    # everything comes back after duration_s
    ok = check_scenario(kg, {"id": "p", "events": [
        {**outage("A"), "duration_s": 5.0}, {"event_type": "router_failure", "target": "B", "timestamp": 20.0}]})
    assert not isinstance(ok, list), ok
    # a bad radius is a schema error naming the parameter
    bad = check_scenario(kg, {"id": "p", "events": [outage("A", radius_km=-1)]})
    assert "power_outage parameter radius_km" in str(bad[0])


def test_flow_twin_fails_every_router_in_the_radius(kg):
    s = validate_scenario(kg, {"id": "p", "events": [outage("A", radius_km=60.0)]})
    state = state_for(kg, s.events, at=10.0)
    assert state.failed_routers == {"A", "B", "C"}
    r = FlowTwin().run(kg, s, "auto")
    fail = r.row("failure")
    assert {"A", "B", "C"} <= set(fail.impacted_node_names)
    dead_flows = [f for f in kg.flows if {kg.attrs("flow", f)["src"], kg.attrs("flow", f)["dst"]} & {"A", "B", "C"}]
    assert fail.unreachable_pairs == len(dead_flows) > 0
    assert r.mitigation["actions"][0]["action"] == "reroute"   # auto: routers down -> reroute
    # after duration_s the flow twin counts nothing any more
    ended = validate_scenario(kg, {"id": "q", "events": [{**outage("A"), "duration_s": 5.0}]})
    assert state_for(kg, ended.events, at=16.0).failed_routers == frozenset()


def test_mitigation_report_and_generators_know_the_type(kg):
    s = validate_scenario(kg, {"id": "p", "events": [outage("A")]})
    eng = FlowTwin().engine(kg)
    state = state_for(kg, s.events, at=10.0)
    actions = plan("auto", kg, failure_view(kg, eng.baseline, eng.evaluate(state), state))
    assert [a["action"] for a in actions][:1] == ["reroute"]
    assert scenario_type(s) == "power outage"
    assert "power_outage" in admissible_events(kg)
    order = rule_order(kg)
    assert [t for t, _ in order].count("power_outage") == len(kg.routers)
    assert order.index(("power_outage", "A")) > max(i for i, (t, _) in enumerate(order) if t == "router_failure")


def test_a_twin_refuses_a_type_it_cannot_realise():
    with pytest.raises(ConfigError, match=r"power_outage \(needs routers_down\)"):
        types.require_effects("toy", types.EFFECT_KINDS - {"routers_down"})
    types.require_effects("full", types.EFFECT_KINDS)   # both real twins support every kind


def test_registry_refuses_duplicates_and_unknown_effects():
    with pytest.raises(ConfigError, match="already registered"):
        types.register(types.get("power_outage"))

    class Bogus(types.EventType):
        name, target_kind, label, description = "bogus", "router", "bogus", "bogus"
        effect_kinds = frozenset({"teleport"})

    with pytest.raises(ConfigError, match="unknown effect kinds"):
        types.register(Bogus())
    assert "bogus" not in types.names()
