"""Every event type on the emulation twin (root, real OVS + os-ken), beside the flow twin:
router overload (the controller's router capacity meter), traffic surge (iperf3) and its
rate limit, link degradation that ends before the failure window (per-event KPIs show
it, the failure window does not), wrong next hop (a forwarding loop) and its rollback,
and the traffic-weighted loss of the background replay."""

from __future__ import annotations

import os

import pytest

from harness.kg.build import build_kg
from harness.scenario.validate import validate_scenario
from harness.twin.emulation.measure import Probe, traffic_loss
from harness.twin.emulation.twin import (EmulationTwin, control_plane_record, degraded_pairs, reroute_record,
                                         rerouted_pairs,
                                         watched_pairs)
from harness.twin.flow.engine import EngineConfig
from harness.twin.flow.twin import FlowTwin

RING = [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")]
#: These tests check each event type's mechanics and mitigation on both twins with cascades
#: off (the shared Motter-Lai rule fails elements in several of these scenarios on both twins:
#: tests/emulation/test_emulated_cascades.py tests cascades).
NO_CASCADE = EngineConfig(cascade=False)


def scenario(kg, sid, *events):
    return validate_scenario(kg, {"id": sid, "events": list(events)})


def test_traffic_loss_counts_packets_by_send_time_bin():
    sent = {("A", "B"): {100: 10, 101: 10, 102: 10}, ("A", "C"): {101: 4}}
    recv = {("A", "B"): {100: 10, 101: 5, 102: 5}, ("A", "D"): {101: 3}}   # A->D offered nothing
    # window [10.1, 10.3) holds bins 101 and 102 (10 bins per second)
    assert traffic_loss(sent, recv, 10.1, 10.3, 10) == {("A", "B"): (20, 10), ("A", "C"): (4, 0)}
    assert traffic_loss(sent, recv, 10.0, 10.1, 10) == {("A", "B"): (10, 10)}
    assert traffic_loss({("A", "B"): {100: 4}}, {("A", "B"): {100: 6}}, 10.0, 10.1, 10) == {("A", "B"): (4, 4)}
    assert traffic_loss(sent, recv, 20.0, 21.0, 10) == {}
    # only whole bins: [10.05, 10.25) holds bin 101 alone (100 and 102 straddle its ends)
    assert traffic_loss(sent, recv, 10.05, 10.25, 10) == {("A", "B"): (10, 5), ("A", "C"): (4, 0)}
    assert traffic_loss(sent, recv, 10.05, 10.15, 10) == {}


def test_rerouted_pairs_are_path_changes_and_failed_elements():
    before = {"A>C": ["A", "B", "C"], "C>A": ["C", "B", "A"], "A>B": ["A", "B"], "B>A": ["B", "A"],
              "D>C": ["D", "C"], "A>D": ["A", "D"]}
    after = dict(before, **{"A>C": ["A", "D", "C"]})
    # A>C changed path: both directions count (a probe's reply takes the reverse path)
    assert rerouted_pairs(before, after) == {("A", "C"), ("C", "A")}
    # A-B failed during the scenario and came back before `after`: A<->B crossed it too
    assert rerouted_pairs(before, before, failed_links={"A-B"}) == {("A", "C"), ("C", "A"), ("A", "B"), ("B", "A")}
    # a failed router reroutes every pair through it; a pair that vanished changed too
    assert rerouted_pairs(before, before, failed_routers={"D"}) == {("D", "C"), ("C", "D"), ("A", "D"), ("D", "A")}
    assert rerouted_pairs(before, {k: v for k, v in before.items() if k != "D>C"}) == {("D", "C"), ("C", "D")}


def test_degraded_pairs_are_the_monitored_flows_across_a_degraded_link():
    from harness.scenario.events.base import Effect

    paths = {"A>C": ["A", "B", "C"], "C>A": ["C", "D", "A"], "A>D": ["A", "D"], "B>C": ["B", "C"]}
    pairs = [("A", "C"), ("C", "A"), ("A", "D"), ("B", "C")]
    lossy = Effect(link_loss_pct={"A-B": 5.0})
    # one-way: A>C crosses A-B, its reverse C>A does not; a link cut is no degradation
    assert degraded_pairs(paths, pairs, [lossy, Effect(links_down=frozenset({"A-D"}))]) == [("A", "C")]
    assert degraded_pairs(paths, pairs, [Effect(link_capacity={"B-C": 0.5})]) == [("A", "C"), ("B", "C")]
    assert degraded_pairs(paths, pairs, []) == []


def test_watched_pairs_spread_over_the_pairs_a_failure_moves():
    from harness.scenario.events.base import Effect

    # a star through hub H: every pair's path crosses H-A or not; cut H-A
    spokes = "ABCDEFG"
    paths = {f"{x}>{y}": [x, "H", y] for x in spokes for y in spokes if x != y}
    pairs = [tuple(k.split(">")) for k in paths]
    cut = [Effect(links_down=frozenset({"A-H"}))]
    hit = sorted(p for p in pairs if "A" in p)     # 12 pairs cross A-H
    assert watched_pairs(paths, pairs, cut, cap=20) == hit
    some = watched_pairs(paths, pairs, cut, cap=4)
    # spread evenly in sorted order, not the first four (all of them from A)
    assert some == [hit[0], hit[3], hit[6], hit[9]] and {p[0] for p in some} != {"A"}
    assert watched_pairs(paths, pairs, cut, cap=0) == [] and watched_pairs(paths, pairs, [], cap=4) == []


def test_detection_is_timed_from_the_latest_injection_a_cascade_round_included():
    recs = [{"reason": "A-B down", "t_event": 10.012, "compute_ms": 0.5, "flows_changed": 4},
            {"reason": "C down", "t_event": 11.52, "compute_ms": 0.7, "flows_changed": 2},
            {"reason": "late", "t_event": 20.0, "compute_ms": 0.1}]
    # the event at 10.0, a cascade round taking C down at 11.5; the window ends at 15
    out = control_plane_record(recs, [10.0, 11.5], 9.95, 15.0)
    assert [(r["reason"], r["detect_ms"]) for r in out] == [("A-B down", 12.0), ("C down", 20.0)]


def probe(src, dst, lost_from, lost_until, interval=0.005, t0=10.0, t1=12.0):
    """A probe every ``interval`` from t0 to t1 whose requests in [lost_from, lost_until) were lost."""
    p = Probe(src, dst, interval)
    for k in range(int(round((t1 - t0) / interval))):
        t = t0 + k * interval
        ok = not lost_from <= t < lost_until
        p.sends.append((t, ok, 1.0 if ok else None))
        if ok:
            p.replies.append((t + 0.001, k, 1.0))
    return p


def test_reroute_record_times_recovered_pairs_and_leaves_out_cut_off_ones():
    timed = {("A", "C"): probe("A", "C", 11.0, 11.02), ("B", "C"): probe("B", "C", 11.0, 99.0),
             ("A", "D"): probe("A", "D", 11.0, 11.03)}
    rerouted = {("A", "C"), ("B", "C"), ("A", "D")}
    after = {"A>C": ["A", "D", "C"], "B>C": ["B", "E", "C"]}   # A>D: no path after (a later failure cut it off)
    rec = reroute_record(timed, list(timed), rerouted, after, trigger=11.0, until=12.0, fast={("A", "C")})
    # A>C: the first reply after the trigger (11.0) came at 11.021, less one probe interval;
    # B>C never resumed: cut off, not rerouted; A>D resumed but has no path after: a later
    # failure cut it off, so it is unreachable, not rerouted
    assert set(rec) == {"A>C"}
    assert rec["A>C"]["gap_ms"] == pytest.approx(16.0, abs=0.5)
    assert rec["A>C"]["switches"] == 3 and rec["A>C"]["fast"] is True


@pytest.fixture(scope="module")
def ring(tmp_path_factory, graph):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    kg = build_kg(graph(RING))
    with EmulationTwin(run_dir=tmp_path_factory.mktemp("events"), max_cascade_rounds=0) as twin:
        yield twin, kg


@pytest.mark.root
def test_router_overload_drops_at_the_router_meter(ring):
    twin, kg = ring
    over = scenario(kg, "overload", {"event_type": "router_overload", "target": "B", "timestamp": 5,
                                     "params": {"capacity_factor": 0.3}})
    r = twin.run(kg, over, "auto")
    meters = r.meta["router_meters"]     # read before the overload was rolled back
    base, fail, mit = r.row("baseline"), r.row("failure"), r.row("mitigated")
    cap = twin.net.router_capacity["B"]
    assert cap == pytest.approx(kg.attrs("resource", "cpu_B")["capacity"] * 1e-3, rel=1e-5)
    assert r.timeline[0]["capacity_mbps"] == pytest.approx(0.3 * cap, rel=1e-5)
    # B's meter dropped packets; nobody else's did (their capacity is twice their load)
    assert meters["B"]["dropped_packets"] > 100
    assert all(m["dropped_packets"] == 0 for r_, m in meters.items() if r_ != "B"), meters
    assert base.loss_pct < 3.0
    assert fail.loss_pct > base.loss_pct + 10.0, (base.loss_pct, fail.loss_pct)
    assert "B" in fail.impacted_node_names
    # auto = reroute around B's links: transit avoids B, only B's own flows still cross it
    assert mit.loss_pct < 0.8 * fail.loss_pct, (fail.loss_pct, mit.loss_pct)
    flow = FlowTwin(config=NO_CASCADE).run(kg, over, "auto")
    assert flow.row("failure").loss_pct > 10.0 and "B" in flow.row("failure").impacted_node_names
    assert any("router forwarding capacity" in m for m in r.modelled)
    assert twin.net.client.health()["router_capacity_changed"] == {}    # restored after the run
    print(f"overload B x0.3: loss emulation {base.loss_pct:.1f} -> {fail.loss_pct:.1f} -> {mit.loss_pct:.1f} % "
          f"(probes {r.meta['probe_loss_pct']}), flow {flow.row('failure').loss_pct:.1f} -> "
          f"{flow.row('mitigated').loss_pct:.1f} %; B meter dropped {meters['B']['dropped_packets']} packets")


@pytest.mark.root
def test_traffic_surge_congests_and_rate_limit_relieves(ring):
    twin, kg = ring
    surge = scenario(kg, "surge", {"event_type": "traffic_surge", "target": "C", "timestamp": 5,
                                   "params": {"sources": ["A"], "multiplier": 12.0}})
    r = twin.run(kg, surge, "rate_limit")
    base, fail, mit = r.row("baseline"), r.row("failure"), r.row("mitigated")
    ach = r.timeline[0]["achieved"][0]
    # sent by A's own traffic sender, from the event's start to its end (no extra process)
    assert ach["generator"] == "background sender" and ach["src"] == "A" and ach["dst"] == "C"
    assert ach["achieved_mbps"] > 0.8 * ach["target_mbps"], ach
    demand = next(kg.attrs("flow", f)["demand_mbps"] for f in kg.flows
                  if kg.attrs("flow", f)["src"] == "A" and kg.attrs("flow", f)["dst"] == "C")
    assert ach["target_mbps"] == pytest.approx(11.0 * demand * 1e-3, rel=1e-4)
    assert fail.max_link_util > max(0.8, base.max_link_util + 0.2), (base.max_link_util, fail.max_link_util)
    assert fail.loss_pct > base.loss_pct + 2.0, (base.loss_pct, fail.loss_pct)
    assert r.mitigation["actions"][0]["action"] == "rate_limit" and r.mitigation["actions"][0]["router"] == "A"
    # the meter on A's host port relieves the links A's surge congests; having no classifier it
    # also cuts A's own flows (by more than their share: a token bucket at ~7x overload), so the
    # traffic-weighted loss falls less than the congestion does
    assert mit.loss_pct < fail.loss_pct, (fail.loss_pct, mit.loss_pct)
    assert mit.max_link_util < fail.max_link_util - 0.1 and mit.congested_links < fail.congested_links, (fail, mit)
    # The flow twin splits A->C over both ring halves (ECMP) where the controller pins one
    # path: both lose traffic, and the rate limit helps on both.
    flow = FlowTwin(config=NO_CASCADE).run(kg, surge, "rate_limit")
    assert flow.row("failure").loss_pct > 2.0 and flow.row("mitigated").loss_pct < flow.row("failure").loss_pct
    print(f"surge A->C x12 ({ach['achieved_mbps']} Mbit/s): util {base.max_link_util:.2f} -> {fail.max_link_util:.2f} "
          f"-> {mit.max_link_util:.2f}; loss {fail.loss_pct:.1f} -> {mit.loss_pct:.1f} % "
          f"(flow twin {flow.row('failure').loss_pct:.1f} -> {flow.row('mitigated').loss_pct:.1f} %)")


@pytest.mark.root
def test_degradation_that_ends_shows_only_in_its_own_event_window(ring):
    twin, kg = ring
    sc = scenario(kg, "degrade-then-cut",
                  {"event_type": "link_degradation", "target": "A-B", "timestamp": 0, "duration_s": 10,
                   "params": {"loss_pct": 40.0, "capacity_factor": 1.0}},
                  {"event_type": "fiber_link_failure", "target": "C-D", "timestamp": 40, "independent": True})
    r = twin.run(kg, sc, None)
    tl = r.timeline
    assert [(x["index"], bool(x.get("ended"))) for x in tl] == [(0, False), (0, True), (1, False)]
    degraded, ended, cut = tl
    # 40 % loss per crossing of A-B, on the pairs that cross it, while it lasts
    assert degraded["loss_pct"] > 5.0 and degraded["probe_loss_pct"] > 5.0, degraded
    assert degraded["window_s"] == pytest.approx(ended["injected_at"] - degraded["injected_at"], abs=1e-3)
    assert ended["loss_pct"] < degraded["loss_pct"] / 3, (degraded["loss_pct"], ended["loss_pct"])
    assert cut["reroute_time_ms_max"] is not None and cut["unreachable_pairs"] == 0
    # the failure window comes after the degradation ended: its loss is gone there
    assert r.row("failure").loss_pct < degraded["loss_pct"] / 3
    assert twin.net.injected["loss"] == {} and twin.net.injected["down_links"] == []
    flow = FlowTwin(config=NO_CASCADE).run(kg, sc)
    assert flow.timeline[0]["loss_pct"] > 5.0 and flow.row("failure").loss_pct < 1.0
    print(f"degradation 40 %: event window loss {degraded['loss_pct']:.1f} % (probes {degraded['probe_loss_pct']:.1f} %, "
          f"flow twin {flow.timeline[0]['loss_pct']:.1f} %), after it ended {ended['loss_pct']:.2f} %")


@pytest.mark.root
def test_wrong_next_hop_loops_until_rollback(tmp_path, graph):
    kg = build_kg(graph([("A", "B"), ("B", "C")]))
    mis = scenario(kg, "wnh", {"event_type": "misconfiguration", "target": "B", "timestamp": 5,
                               "params": {"mode": "wrong_next_hop", "destinations": ["C"], "next_hop": "A"}})
    with EmulationTwin(run_dir=tmp_path) as twin:
        r = twin.run(kg, mis, "rollback")
        assert twin.net.client.health()["misconfigs"] == []
    fail, mit = r.row("failure"), r.row("mitigated")
    # B sends C's traffic back to A, A to B again: A->C and B->C loop until their TTL expires
    assert fail.unreachable_pairs == 2, fail
    assert mit.unreachable_pairs == 0 and mit.loss_pct < 5.0, mit
    flow = FlowTwin(config=NO_CASCADE).run(kg, mis, "rollback")
    assert flow.row("failure").unreachable_pairs == fail.unreachable_pairs
    assert set(flow.row("failure").impacted_node_names) == set(fail.impacted_node_names)
    assert r.timeline[0]["unreachable_pairs"] == 2


@pytest.mark.root
def test_power_outage_fails_every_router_in_the_radius(graph, tmp_path):
    """On the equator B is 33.4 km from A and C 55.6 km (0.3° and 0.5° of longitude at
    111.195 km per degree): a 50 km outage at A takes A and B down on both twins, and the
    emulation brings them back afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    g = graph(RING + [("C", "E"), ("E", "A")])
    for n, lon in {"A": 0.0, "B": 0.3, "C": 0.5, "D": 1.0, "E": None}.items():
        g.nodes[n].update(lat=None if lon is None else 0.0, lon=lon)
    kg = build_kg(g)
    s = scenario(kg, "outage", {"event_type": "power_outage", "target": "A", "timestamp": 5})
    with EmulationTwin(run_dir=tmp_path) as twin:
        r = twin.run(kg, s, "auto")
        assert twin.net.injected["down_routers"] == []          # rolled back after the run
        # one address plan: the emulated hosts have the knowledge graph's addresses
        assert all(twin.net.host_ip(x) == kg.attrs("host", f"h_{x}")["ip"] for x in kg.routers)
    flow = FlowTwin(config=NO_CASCADE).run(kg, s, "auto")
    assert "routers A, B down" in r.timeline[0]["done"]
    for res in (r, flow):
        fail = res.row("failure")
        assert {"A", "B"} <= set(fail.impacted_node_names), (res.twin, fail.impacted_node_names)
        assert fail.unreachable_pairs > 0
    assert r.row("baseline").unreachable_pairs == 0


def test_schedule_is_data_in_execution_order():
    from harness.scenario.model import Event
    from harness.twin.emulation.twin import schedule

    a = Event(event_type="fiber_link_failure", target="A-B", timestamp=1, duration_s=1)
    b = Event(event_type="router_failure", target="C", timestamp=2)
    steps = schedule([(0, a), (1, b)], at={0: 10.0, 1: 11.0}, undo_at={0: 11.0})
    # a's undo is due with b's injection: the undo goes first
    assert [(s.at, s.action, s.index) for s in steps] == [(10.0, "inject", 0), (11.0, "undo", 0), (11.0, "inject", 1)]


@pytest.mark.root
def test_both_twins_plan_from_what_their_monitoring_sees(ring):
    """Three symptoms at once — a lossy link, a router whose forwarding drifted from the
    controller's intent, a source sending twice its baseline — found by each twin's own
    monitoring (drop counters, a flow-table audit, ingress counters), and the same plan."""
    twin, kg = ring
    sc = scenario(kg, "symptoms",
                  {"event_type": "link_degradation", "target": "A-B", "timestamp": 0,
                   "params": {"loss_pct": 20.0, "capacity_factor": 1.0}},
                  {"event_type": "misconfiguration", "target": "C", "timestamp": 1,
                   "params": {"mode": "blackhole", "destinations": ["A"]}},
                  # D->C is one hop: the surge's iperf3 control connection must not cross the
                  # lossy link (20 % loss can hold its TCP handshake past the window); x4
                  {"event_type": "traffic_surge", "target": "C", "timestamp": 2,
                   "params": {"sources": ["D"], "multiplier": 4.0}})
    r = twin.run(kg, sc, "auto")
    flow = FlowTwin(config=NO_CASCADE).run(kg, sc, "auto")
    for res in (r, flow):
        view = res.mitigation["view"]
        assert "A-B" in view["lossy_links"], (res.twin, view)
        assert list(view["forwarding_drift"]) == ["C"], (res.twin, view)
        assert list(view["surging_sources"]) == ["D"], (res.twin, view)
        acts = res.mitigation["actions"]
        assert {(a["action"], a.get("router")) for a in acts if a["action"] != "add_capacity"} >= {
            ("reroute", None), ("rate_limit", "D"), ("rollback", "C")}, (res.twin, acts)
        assert "A-B" in next(a for a in acts if a["action"] == "reroute")["avoid_links"]
    assert "10.0.0." in r.mitigation["view"]["forwarding_drift"]["C"][0]   # the switch's own entry
    # the rollback brings C->A back on both; the meter on D cuts D's own flows too (no
    # classifier), so the traffic-weighted loss need not fall
    for res in (r, flow):
        assert res.row("failure").unreachable_pairs >= 1 and res.row("mitigated").unreachable_pairs == 0, (
            res.twin, res.meta.get("traffic_pair_loss"), res.meta.get("pair_loss_pct"), res.mitigation)
    print(f"emulation view: {r.mitigation['view']}\nflow view: {flow.mitigation['view']}\n"
          f"loss emulation {r.row('failure').loss_pct:.1f} -> {r.row('mitigated').loss_pct:.1f} %, "
          f"flow {flow.row('failure').loss_pct:.1f} -> {flow.row('mitigated').loss_pct:.1f} %")
