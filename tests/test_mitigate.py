"""The mitigation planner sees only what monitoring sees (issue 12, item 1).

The planner's inputs are the knowledge graph and a :class:`FailureView`; these tests check
it cannot reach the scenario, that the same symptoms give the same plan whatever caused
them, and each symptom -> action rule on hand-made views (figures worked by hand below).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import networkx as nx
import pytest

import harness.mitigate as mitigate
from harness.kg import build_kg
from harness.mitigate import FailureView, cannot_help, outlook, plan
from harness.mitigate.strategies import RATE_LIMIT_HEADROOM
from harness.monitoring import SURGE_RATIO
from harness.scenario.validate import validate_scenario
from harness.twin.flow.twin import FlowTwin, failure_view, state_for


def ring_with_stub() -> nx.Graph:
    """A-B-C-D-A ring, D-E-F stub (D-E, E-F are bridges)."""
    g = nx.Graph(name="stub", source="synthetic", dropped=[])
    for u, v in ["AB", "BC", "CD", "DA", "DE", "EF"]:
        g.add_edge(u, v, delay_ms=1.0, capacity_mbps=1000.0, dist_km=None, conduit=None)
    for n in "ABCDEF":
        g.nodes[n].update(label=n, lat=None, lon=None)
    return g


@pytest.fixture(scope="module")
def kg():
    return build_kg(ring_with_stub(), traffic="uniform")


def test_the_planner_cannot_reach_the_scenario():
    assert list(inspect.signature(plan).parameters) == ["strategy", "kg", "view"]
    for fn in mitigate.STRATEGIES.values():
        assert list(inspect.signature(fn).parameters)[:2] == ["kg", "view"]
    pkg = Path(mitigate.__file__).parent
    for src in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(src.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith(("harness.scenario", "harness.twin")) for n in names), (src, names)


def run_flow(kg, events, strategy="auto"):
    s = validate_scenario(kg, {"id": "t", "topology": "stub", "events": events})
    with FlowTwin() as twin:
        r = twin.run(kg, s, strategy)
        eng = twin.engine(kg)
        state = state_for(kg, s.events, at=s.events[-1].timestamp)
        view = failure_view(kg, eng.baseline, eng.evaluate(state), state)
    return r, view


def test_the_flow_twins_plan_is_the_planners_answer_to_its_view(kg):
    r, view = run_flow(kg, [{"event_type": "ddos_spike", "target": "C", "timestamp": 1.0,
                             "params": {"sources": ["A", "F"], "intensity": 2.0}}])
    assert r.mitigation["actions"] == plan("auto", kg, view)
    assert FailureView.from_record(view.record()) == view
    assert plan("auto", kg, FailureView.from_record(view.record())) == r.mitigation["actions"]
    assert set(r.mitigation["view"]["surging_sources"]) == {"A", "F"}


def test_same_symptoms_same_plan_whatever_the_cause(kg):
    """A router failure at B and cutting both of B's links look alike to monitoring apart
    from B itself being down: the reroute avoids the same links either way, and a
    misconfiguration is found by the audit, not from the event."""
    r1, v1 = run_flow(kg, [{"event_type": "router_failure", "target": "B", "timestamp": 1.0}])
    r2, v2 = run_flow(kg, [{"event_type": "fiber_link_failure", "target": "A-B", "timestamp": 1.0},
                           {"event_type": "fiber_link_failure", "target": "B-C", "timestamp": 2.0}])
    assert v1.failed_links == v2.failed_links == {"A-B", "B-C"}
    reroute = lambda r: [a for a in r.mitigation["actions"] if a["action"] == "reroute"]
    assert reroute(r1) == reroute(r2)
    r3, v3 = run_flow(kg, [{"event_type": "misconfiguration", "target": "D", "timestamp": 1.0,
                            "params": {"mode": "blackhole"}}])
    assert list(v3.forwarding_drift) == ["D"]
    assert {"action": "rollback", "router": "D"} in r3.mitigation["actions"]


def test_rate_limit_from_observed_rates_only():
    # A sends 30 Mbit/s against 10 at baseline (3x >= 1.5x): limited to 10 x 1.1;
    # B at 1.4x its baseline is not; C sends without a baseline (0): limited to 0
    view = FailureView(source_mbps={"A": 30.0, "B": 14.0, "C": 5.0},
                       source_baseline_mbps={"A": 10.0, "B": 10.0})
    assert SURGE_RATIO == 1.5 and RATE_LIMIT_HEADROOM == 1.1
    assert plan("rate_limit", None, view) == [{"action": "rate_limit", "router": "A", "mbps": 11.0},
                                              {"action": "rate_limit", "router": "C", "mbps": 0.0}]
    view.failed_routers = {"A"}   # a failed router's hosts send nothing into the network
    assert [a["router"] for a in plan("rate_limit", None, view)] == ["C"]


def test_reroute_avoids_what_monitoring_flags(kg):
    view = FailureView(failed_links={"A-D"},
                       link_utilisation={"A-B": 0.9, "B-C": 0.5, "C-D": 0.1},
                       link_capacity_mbps={"B-C": 1000.0, "C-D": 500.0, "D-E": 1000.0},   # C-D slowed
                       link_loss_pct={"D-E": 2.0, "E-F": 0.5},   # 2 % >= 1 % alarm, 0.5 % under
                       router_drop_pct={"F": 5.0})               # F overloaded: its link E-F
    (action,) = plan("reroute", kg, view)
    assert action == {"action": "reroute", "avoid_links": ["A-B", "C-D", "D-E", "E-F"], "load_aware": True}


def test_a_bridge_cut_is_said_to_be_beyond_mitigation(kg):
    view = FailureView(failed_links={"D-E"})
    lost = cannot_help(kg, view)
    expected = sorted(f for f in kg.flows
                      if ({kg.attrs("flow", f)["src"], kg.attrs("flow", f)["dst"]} & {"E", "F"})
                      and not {kg.attrs("flow", f)["src"], kg.attrs("flow", f)["dst"]} <= {"E", "F"})
    assert lost == expected and len(lost) == 16   # 2 x 4 routers x 2 directions
    notes = outlook(kg, view, plan("auto", kg, view))
    assert len(notes) == 1 and notes[0].startswith("16 flows are cut off")
    assert outlook(kg, FailureView(), plan("auto", kg, FailureView())) == [
        "monitoring saw nothing this strategy acts on: no action taken"]


def test_a_surge_does_not_fail_its_own_source(kg):
    r, view = run_flow(kg, [{"event_type": "ddos_spike", "target": "C", "timestamp": 1.0,
                             "params": {"sources": ["A", "F"], "intensity": 3.0}}], "rate_limit")
    tripped = {x for rnd in r.meta["induced_routers"] for x in rnd}
    assert not tripped & {"A", "F"}
    assert {a["router"] for a in r.mitigation["actions"]} == {"A", "F"}
    assert r.row("mitigated").loss_pct < r.row("failure").loss_pct
