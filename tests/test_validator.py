"""The causal validator: a library of named bad scenarios, one (or more) per rule."""

from __future__ import annotations

import pytest

from harness.errors import ScenarioInvalid
from harness.scenario import Scenario, check_scenario, read_scenarios, validate_scenario


def ev(event_type, target, t, **kw):
    return {"event_type": event_type, "target": target, "timestamp": t, **kw}


def sc(*events, **kw):
    return {"id": "t", "topology": "topozoo/Abilene", "events": list(events), **kw}


CUT = ev("fiber_link_failure", "Denver-KansasCity", 10)

# name: (scenario, index of the bad event, rule, words the reason must contain)
BAD = {
    "no events": (sc(), None, "schema", "events"),
    "unknown field": ({**sc(CUT), "colour": "red"}, None, "schema", "colour"),
    "negative timestamp": (sc(ev("router_failure", "Denver", -1)), 0, "schema", "timestamp"),
    "bad severity": (sc(ev("router_failure", "Denver", 1, severity="extreme")), 0, "schema", "severity"),
    "unknown event type": (sc(ev("alien_invasion", "Denver", 1)), 0, "schema", "unknown event type 'alien_invasion'"),
    "unknown param": (sc(ev("router_failure", "Denver", 1, params={"force": True})), 0, "schema", "force"),
    "param out of range": (sc(ev("router_overload", "Denver", 1, params={"capacity_factor": 3})), 0, "schema",
                           "capacity_factor"),
    "unknown router": (sc(ev("router_failure", "Gotham", 1)), 0, "R1-target", "unknown router 'Gotham'"),
    "wrong kind": (sc(ev("fiber_link_failure", "Denver", 1)), 0, "R1-target", "it is a router"),
    "shell metacharacters": (sc(ev("router_failure", "Denver; rm -rf /", 1)), 0, "R1-target", "unknown router"),
    "path separator": (sc(ev("fiber_link_failure", "../../etc/passwd", 1)), 0, "R1-target", "unknown link"),
    "unknown srlg": (sc(ev("srlg_failure", "srlg99", 1)), 0, "R1-target", "unknown srlg"),
    "unknown source": (sc(ev("ddos_spike", "Atlanta", 1, params={"sources": ["Mordor"]})), 0, "R1-target", "Mordor"),
    "source is target": (sc(ev("ddos_spike", "Atlanta", 1, params={"sources": ["Atlanta"]})), 0, "R1-target",
                         "target itself"),
    "next hop not neighbour": (sc(ev("misconfiguration", "Denver", 1, params={"mode": "wrong_next_hop",
                                                                              "next_hop": "NewYork"})),
                               0, "R1-target", "not a neighbour"),
    "wrong next hop missing": (sc(ev("misconfiguration", "Denver", 1, params={"mode": "wrong_next_hop"})), 0,
                               "R1-target", "needs params.next_hop"),
    "link failed twice": (sc(CUT, ev("fiber_link_failure", "Denver-KansasCity", 20)), 1, "R2-alive", "already down"),
    "overload failed router": (sc(ev("router_failure", "Denver", 5), ev("router_overload", "Denver", 9)), 1,
                               "R2-alive", "already down"),
    "link of failed router": (sc(ev("router_failure", "Denver", 5), ev("fiber_link_failure", "Denver-Seattle", 9)), 1,
                              "R2-alive", "endpoint router is down"),
    "degrade twice": (sc(ev("link_degradation", "Denver-Seattle", 5), ev("link_degradation", "Denver-Seattle", 9)), 1,
                      "R2-alive", "already degraded"),
    "timestamps go back": (sc(ev("router_overload", "Denver", 50), ev("router_overload", "KansasCity", 20)), 1,
                           "R3-time", "before the previous"),
    "beyond horizon": (sc(ev("router_overload", "Denver", 700)), 0, "R3-time", "horizon"),
    "ddos from cut-off source": (
        sc(ev("router_failure", "Sunnyvale", 1), ev("router_failure", "Denver", 2),
           ev("ddos_spike", "Atlanta", 3, params={"sources": ["Seattle"]})), 2, "R5-reach", "cannot reach"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_named_bad_scenarios(abilene_kg, name):
    scenario, index, rule, words = BAD[name]
    reasons = check_scenario(abilene_kg, scenario)
    assert not isinstance(reasons, Scenario), f"{name}: accepted"
    assert any(r.index == index and r.rule == rule and words in r.message for r in reasons), \
        f"{name}: {[str(r) for r in reasons]}"
    with pytest.raises(ScenarioInvalid) as info:
        validate_scenario(abilene_kg, scenario)
    assert info.value.reasons == reasons
    assert rule in str(info.value)


def test_all_reasons_collected(abilene_kg):
    reasons = check_scenario(abilene_kg, sc(ev("router_failure", "Gotham", 1), CUT,
                                            ev("fiber_link_failure", "Denver-KansasCity", 0)))
    rules = {(r.index, r.rule) for r in reasons}
    assert (0, "R1-target") in rules and (2, "R2-alive") in rules and (2, "R3-time") in rules


@pytest.fixture(scope="module")
def geant_kg():
    from harness.kg import build_kg
    from harness.topology import load_topology

    return build_kg(load_topology("topozoo/Geant2012"))


def test_unconnected_event_rejected_unless_independent(geant_kg):
    kg, first, second = geant_kg, "BE-NL", "GR-IT"
    # Ground truth, computed here from the KG's plain attributes: no shared or neighbouring
    # router, no shared SRLG, and the second link lies on no path of a flow over the first.
    topo = kg.topology
    ends1, ends2 = set(kg.link_ends(first)), set(kg.link_ends(second))
    near = ends1 | {n for r in ends1 for n in topo.neighbors(r)}
    assert not ends2 & near
    assert not set(kg.related(f"link:{first}", "shares_risk")) & set(kg.related(f"link:{second}", "shares_risk"))
    on_paths = {x for f in kg.flows if first in kg.attrs("flow", f)["links"]
                for x in kg.attrs("flow", f)["links"] + kg.attrs("flow", f)["path"]}
    assert second not in on_paths
    scenario = {"id": "t", "events": [ev("link_degradation", first, 1), ev("link_degradation", second, 2)]}
    reasons = check_scenario(kg, scenario)
    assert [(r.index, r.rule) for r in reasons] == [(1, "R4-causal")]
    scenario["events"][1]["independent"] = True
    assert len(validate_scenario(kg, scenario).events) == 2


def test_recovery_after_duration(abilene_kg):
    s = validate_scenario(abilene_kg, sc(ev("fiber_link_failure", "Denver-KansasCity", 10, duration_s=5),
                                         ev("fiber_link_failure", "Denver-KansasCity", 20)))
    assert [e.timestamp for e in s.events] == [10, 20]


def test_connected_through_affected_flow_path(abilene_kg):
    # Seattle is far from the Atlanta-Houston link, but flows from Seattle run over it?
    # Pick an element on the path of a flow the first event affects, not adjacent to it.
    first = "Denver-KansasCity"
    flows = [f for f in abilene_kg.flows if first in abilene_kg.attrs("flow", f)["links"]]
    near = {"Denver", "KansasCity", "Seattle", "Sunnyvale", "Houston", "Indianapolis"}
    far_links = {l for f in flows for l in abilene_kg.attrs("flow", f)["links"]
                 if not set(abilene_kg.link_ends(l)) & near}
    assert far_links, "test premise: some affected flow crosses a link far from the cut"
    link = sorted(far_links)[0]
    validate_scenario(abilene_kg, sc(ev("fiber_link_failure", first, 1), ev("link_degradation", link, 2)))


def test_params_normalised_with_severity_defaults(abilene_kg):
    s = validate_scenario(abilene_kg, sc(ev("router_overload", "Denver", 1, severity="high"),
                                         ev("link_degradation", "Denver-Seattle", 2, severity="low")))
    assert s.events[0].params == {"capacity_factor": 0.25}
    assert s.events[1].params == {"loss_pct": 1.0, "capacity_factor": 1.0}


def test_shipped_examples_are_valid(abilene_kg):
    from pathlib import Path

    from harness.kg import build_kg
    from harness.topology import load_topology

    graphs = {"topozoo/Abilene": abilene_kg, "topozoo/Geant2012": build_kg(load_topology("topozoo/Geant2012"))}
    files = sorted([*Path("scenarios/abilene").glob("*.yaml"), *Path("scenarios/geant").glob("*.yaml")])
    kinds = set()
    for f in files:
        for raw in read_scenarios(f):
            s = validate_scenario(graphs[raw["topology"]], raw)
            kinds |= {e.event_type for e in s.events}
    assert len(files) >= 8
    assert {"fiber_link_failure", "router_overload", "ddos_spike", "router_failure"} <= kinds


def test_srlg_failure_keeps_an_earlier_shorter_cut_down():
    """Regression (issue 12): cut A-B for 5 s at t=1, fail srlg1 (A-B, A-C) for good at t=2:
    A-B stays down, so cutting it again at t=10 is refused."""
    from harness.kg import build_kg
    from harness.topology import load_topology

    kg = build_kg(load_topology("square"))
    reasons = check_scenario(kg, sc(ev("fiber_link_failure", "A-B", 1, duration_s=5),
                                    ev("srlg_failure", "srlg1", 2), ev("fiber_link_failure", "A-B", 10)))
    assert [str(r) for r in reasons] == ["event 2: [R2-alive] link A-B is already down"]


@pytest.mark.parametrize("written, canonical", [
    (("fiber_link_failure", "KansasCity-Denver"), "Denver-KansasCity"),      # either orientation
    (("fiber_link_failure", "kansas city-denver"), "Denver-KansasCity"),
    (("router_failure", "Kansas City"), "KansasCity"),                       # the label in the data
    (("router_failure", "kansascity"), "KansasCity"),
    (("router_failure", "Washington DC"), "WashingtonDc"),
])
def test_forgiving_names_resolve_to_canonical_ids(abilene_kg, written, canonical):
    from harness.scenario.validate import renamed

    raw = sc(ev(*written, 1))
    s = validate_scenario(abilene_kg, raw)
    assert s.events[0].target == canonical
    assert renamed(raw, s) == [f"event 0: target {written[1]!r} read as {canonical}"]


def test_unknown_names_get_did_you_mean_and_metacharacters_never_resolve(abilene_kg):
    reasons = check_scenario(abilene_kg, sc(ev("router_failure", "Kansas Citty", 1)))
    assert "did you mean KansasCity?" in str(reasons[0])
    reasons = check_scenario(abilene_kg, sc(ev("ddos_spike", "Denver", 1, params={"sources": ["newyorkk"]})))
    assert "sources names an unknown router 'newyorkk'; did you mean NewYork?" in str(reasons[0])
    assert isinstance(check_scenario(abilene_kg, sc(ev("router_failure", "Denver;", 1))), list)
    s = validate_scenario(abilene_kg, sc(ev("ddos_spike", "Denver", 1, params={"sources": ["new york"]})))
    assert s.events[0].params["sources"] == ["NewYork"]


def test_surge_without_flows_and_misconfiguration_towards_a_dead_router_are_refused():
    """Regressions (issue 12): a surge whose sources send nothing to the target was accepted as
    a no-op; misconfiguration destinations were not checked for liveness."""
    from harness.kg import build_kg
    from harness.topology import load_topology

    kg = build_kg(load_topology("topozoo/Abilene"), max_flows=3)     # most pairs carry no flow
    flows = {(kg.attrs("flow", f)["src"], kg.attrs("flow", f)["dst"]) for f in kg.flows}
    src, dst = next((s, d) for s in kg.routers for d in kg.routers if s != d and (s, d) not in flows)
    reasons = check_scenario(kg, sc(ev("traffic_surge", dst, 1, params={"sources": [src]})))
    assert [r.rule for r in reasons] == ["R5-reach"] and "the surge would change nothing" in str(reasons[0])
    s, d = next(iter(flows))
    assert not isinstance(check_scenario(kg, sc(ev("traffic_surge", d, 1, params={"sources": [s]}))), list)
    abilene = build_kg(load_topology("topozoo/Abilene"))
    reasons = check_scenario(abilene, sc(ev("router_failure", "Denver", 1),
                                         ev("misconfiguration", "KansasCity", 2, params={"destinations": ["Denver"]})))
    assert [str(r) for r in reasons] == ["event 1: [R2-alive] destination router Denver is down"]
