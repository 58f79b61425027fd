"""Twin fidelity figures and the healthy-baseline rule, on hand-made results (figures by hand)."""

from __future__ import annotations

import pytest

from harness.campaign.fidelity import _cascade_reasons, compare, summarise
from harness.twin.emulation.twin import baseline_health
from harness.twin.kpi import KPIRow, ScenarioResult


def result(twin, base_loss, fail, *, meta=None, not_modelled=()):
    rows = {"baseline": KPIRow(scenario_id="s", twin=twin, phase="baseline", loss_pct=base_loss),
            "failure": KPIRow(scenario_id="s", twin=twin, phase="failure", **fail)}
    return ScenarioResult(scenario_id="s", twin=twin, rows=rows, timeline=[], mitigation={},
                          modelled=[], not_modelled=list(not_modelled), meta=meta or {})


def test_cascades_are_compared_on_both_twins():
    base = {"loss_pct": 10.0, "impacted_node_names": ["C"]}
    flow = result("flow", 0.0, {**base, "cascade_depth": 2},
                  meta={"induced_links": [["A-B"], ["B-C"]], "induced_routers": [[], []]})
    same = result("emulation", 0.0, {**base, "cascade_depth": 2},
                  meta={"induced_links": [["A-B"], ["B-C"]], "induced_routers": [[], []]})
    row = compare(flow, same)
    assert row["cascade_agree"] is True and row["disagree"] == []
    assert _cascade_reasons(flow, same) == ["cascade of depth 2 on both twins, failing the same elements (A-B, B-C)"]
    short = result("emulation", 0.0, {**base, "cascade_depth": 1},
                   meta={"induced_links": [["A-B"]], "induced_routers": [["C"]], "cascade": {"max_rounds": 1}})
    row = compare(flow, short)
    assert row["cascade_agree"] is False and row["disagree"] == ["cascade_depth"]
    assert row["reasons"] == ["cascade depth 2 on the flow twin, 1 on the emulation; induced failures: flow A-B, "
                              "B-C; emulation A-B, C", "the emulation stops after 1 cascade rounds"]
    none = compare(result("flow", 0.0, {**base, "cascade_depth": 0}), result("emulation", 0.0, {**base, "cascade_depth": 0}))
    assert none["cascade_agree"] is True and none["reasons"] == []


def test_baseline_health_by_traffic_and_probe_loss():
    ok = result("emulation", 0.4, {}, meta={"probe_loss_pct": {"baseline": 0.0}})
    assert baseline_health(ok) == {"healthy": True, "loss_pct": 0.4, "probe_loss_pct": 0.0, "limit_pct": 0.5}
    bad = result("emulation", 0.1, {}, meta={"probe_loss_pct": {"baseline": 2.0},
                                             "load_avg": {"after": [3.1], "cpus": 2}})
    h = baseline_health(bad)
    assert not h["healthy"] and h["reason"] == "baseline probe loss 2.00 % above 0.5 % (load average 3.1 on 2 CPUs)"


def test_compare_figures_and_reasons():
    flow = result("flow", 0.0, {"loss_pct": 10.0, "max_link_util": 0.5, "reroute_time_ms_mean": 20.0,
                                "impacted_node_names": ["A"], "cascade_depth": 2})
    emu = result("emulation", 0.0, {"loss_pct": 8.0, "max_link_util": 0.52, "reroute_time_ms_mean": 35.0,
                                    "impacted_node_names": ["A", "B"]},
                 meta={"senders": ["event 0 ddos_spike: 9 sources, 4 senders used"]})
    row = compare(flow, emu)
    # loss |10 - 8| / 8 = 0.25 > 0.10; utilisation 0.02 / 0.52 = 0.038; reroute 15 ms > 10 ms
    assert row["loss_pct_relerr"] == 0.25 and round(row["max_link_util_relerr"], 4) == 0.0385
    assert row["reroute_diff_ms"] == 15.0 and row["impacted_jaccard"] == 0.5
    assert row["disagree"] == ["impacted", "loss_pct", "reroute_time"]
    assert row["reasons"] == ["cascade of depth 2 on the flow twin; the emulation did not check for cascades",
                              "injection not fully sent: event 0 ddos_spike: 9 sources, 4 senders used"]
    assert row["cascade_depth_flow"] == 2 and row["cascade_depth_emulation"] is None and row["cascade_agree"] is None
    # small losses are compared against a 1 % floor: 0.1 vs 0.2 % is 0.1 apart, no disagreement
    calm = compare(result("flow", 0.0, {"loss_pct": 0.1}), result("emulation", 0.0, {"loss_pct": 0.2}))
    assert calm["loss_pct_relerr"] == 0.1 and calm["disagree"] == [] and calm["reasons"] == []
    odd = compare(result("flow", 0.0, {"loss_pct": 50.0}), result("emulation", 0.0, {"loss_pct": 5.0}))
    assert odd["reasons"] == ["unexplained"]
    sick = compare(flow, result("emulation", 3.0, {"loss_pct": 8.0}))
    assert not sick["healthy"] and sick["reasons"][0].startswith("unhealthy emulation baseline: baseline traffic loss 3.00 %")
    s = summarise([row, calm, odd, sick])
    # the unhealthy one is left out of the figures: 3 healthy, impacted agree in calm and odd
    assert s["scenarios"] == 4 and s["healthy"] == 3 and round(s["impacted_agree_pct"], 1) == 66.7
    assert s["loss_pct_relerr_median"] == 0.25 and s["disagreements"] == 3


def test_probes_are_part_of_the_traffic_they_measure():
    """A monitored flow's background is its demand less its probes' bytes (both directions:
    requests s->d, replies d->s), so the wire carries the knowledge graph's demand."""
    import networkx as nx

    from harness.kg import build_kg
    from harness.twin.emulation.background import (FLOOR_PPS, FRAME_BYTES, MIN_FRAME_BYTES, WATCH_PPS,
                                                   plan_background)
    from harness.twin.emulation.twin import PROBE_FRAME_BYTES, probe_load

    # A->B's probe achieved 20 Hz, B->A's 25: each direction carries one's requests and the other's replies
    assert probe_load({("A", "B"): 20.0, ("B", "A"): 25.0}) == {("A", "B"): 98 * 8 * 45 / 1e6,
                                                                  ("B", "A"): 98 * 8 * 45 / 1e6}
    assert PROBE_FRAME_BYTES == 98
    g = nx.Graph(name="pair", source="synthetic", dropped=[])
    g.add_edge("A", "B", delay_ms=1.0, capacity_mbps=10_000.0, dist_km=None, conduit=None)
    for n in g:
        g.nodes[n].update(label=n, lat=None, lon=None)
    kg = build_kg(g)
    full = plan_background(kg, 1e-3)
    rate = dict(full.per_src["A"])["B"]
    plan = plan_background(kg, 1e-3, probe_mbps={("A", "B"): 0.0196, ("B", "A"): 1e3})
    assert dict(plan.per_src["A"])["B"] == rate - 0.0196
    assert "B" not in plan.per_src and plan.sinks == ["B"]         # B's probes outweigh its flow
    assert plan.probe_excess_mbps == 1e3 - dict(full.per_src["B"])["A"]
    # every monitored flow sends >= FLOOR_PPS of its own packets (one-way judgement): smaller
    # frames at the same bit rate, or minimum frames at the floor when its demand is below that
    low = plan_background(kg, 1e-5, probe_mbps={("B", "A"): 1e3}, floor_pairs=[("A", "B"), ("B", "A")])
    a_b = dict(low.per_src["A"])["B"]
    assert a_b == dict(plan_background(kg, 1e-5).per_src["A"])["B"]          # bit rate kept
    assert low.flow_pps("A", "B", a_b) >= FLOOR_PPS and MIN_FRAME_BYTES <= low.frame("A", "B") < FRAME_BYTES
    b_a = dict(low.per_src["B"])["A"]
    assert low.frame("B", "A") == MIN_FRAME_BYTES and low.flow_pps("B", "A", b_a) == pytest.approx(FLOOR_PPS)
    assert low.floor_pairs == 2 and low.floor_excess_mbps == pytest.approx(b_a)
    assert plan_background(kg, 1e-3, floor_pairs=[("A", "B")]).frames == {}    # already above the floor
    # a monitored flow across a degraded link sends WATCH_PPS, within the watch budget
    watched = plan_background(kg, 1e-5, floor_pairs=[("A", "B"), ("B", "A")], watch_pairs=[("A", "B"), ("X", "Y")])
    w = dict(watched.per_src["A"])["B"]
    assert watched.flow_pps("A", "B", w) == pytest.approx(WATCH_PPS, rel=0.02) and watched.watch_pairs == 1
    assert watched.flow_pps("B", "A", dict(watched.per_src["B"])["A"]) == pytest.approx(FLOOR_PPS, rel=0.02)
    shared = plan_background(kg, 1e-5, floor_pairs=[("A", "B"), ("B", "A")], watch_pairs=[("A", "B"), ("B", "A")],
                             watch_budget_pps=60.0)
    assert shared.watch_pps == 30.0 and shared.flow_pps("B", "A", dict(shared.per_src["B"])["A"]) >= 30.0


def test_injected_traffic_rides_on_every_sources_sender(tmp_path):
    """Surges and UDP floods from every source the event names, in the background plan (no
    sender cap), scaled like the background; SYN and spoofed floods stay with Scapy."""
    import networkx as nx

    from harness.kg import build_kg
    from harness.scenario.events.base import Effect, Traffic
    from harness.twin.emulation.background import _window, plan_background
    from harness.twin.emulation.inject import carried_traffic

    eff = Effect(traffic=[Traffic("A", "C", 5.0, "s1"), Traffic("B", "C", 3.0, "f1", kind="flood"),
                          Traffic("A", "C", 3.0, "f2", kind="flood", protocol="syn"),
                          Traffic("B", "C", 3.0, "f3", kind="flood", spoofed=True)])
    assert [t.id for t in carried_traffic(eff)] == ["s1", "f1"]
    g = nx.Graph(name="line", source="synthetic", dropped=[])
    for u, v in ("AB", "BC"):
        g.add_edge(u, v, delay_ms=1.0, capacity_mbps=10_000.0, dist_km=None, conduit=None)
    for n in g:
        g.nodes[n].update(label=n, lat=None, lon=None)
    kg = build_kg(g)
    bursts = [{"event": 0, "src": t.src, "dst": t.dst, "mbps": t.mbps * 1e-3, "start_file": tmp_path / "start-0"}
              for t in carried_traffic(eff)]
    plan = plan_background(kg, 1e-3, max_pps=10.0, bursts=bursts)     # a tiny budget: scaled down
    assert plan.scale < 1
    assert plan.bursts["A"] == [{"event": 0, "dst": "C", "mbps": 5e-3 * plan.scale,
                                 "start_file": str(tmp_path / "start-0")}]
    assert plan.record()["injected_flows"] == 2
    assert _window(str(tmp_path / "start-0")) is None                  # not scheduled yet
    (tmp_path / "start-0").write_text("100.5 102.25\n")
    assert _window(str(tmp_path / "start-0")) == (100.5, 102.25)


def test_a_sampled_emulation_beside_a_flow_twin_judging_every_flow_is_a_reason():
    fail = {"loss_pct": 10.0, "impacted_node_names": ["A"]}
    emu = result("emulation", 0.0, {**fail, "impacted_node_names": []},
                 meta={"pairs_sampled": True, "monitored_flows": ["A~B", "B~A"]})
    every = compare(result("flow", 0.0, fail, meta={"monitored_flows": 12}), emu)
    assert every["disagree"] == ["impacted"]
    assert every["reasons"] == ["the emulation monitors a sample of 2 flows, the flow twin judged 12: impacted nodes "
                                "and reroute time are over different flows"]
    # judged on the same sample (FlowTwin.run(monitored=...)), a disagreement stays unexplained
    same = compare(result("flow", 0.0, fail, meta={"monitored_flows": 2}), emu)
    assert same["reasons"] == ["unexplained"]


def test_reasons_for_a_flow_twin_cascade_that_trips_more_and_a_cascade_reroute():
    flow = result("flow", 0.0, {"loss_pct": 10.0, "impacted_node_names": ["A", "B"], "cascade_depth": 1,
                                "reroute_time_ms_mean": 20.0},
                  meta={"induced_links": [[]], "induced_routers": [["A", "B"]]})
    emu = result("emulation", 0.0, {"loss_pct": 10.0, "impacted_node_names": ["A"], "cascade_depth": 1,
                                    "reroute_time_ms_mean": 140.0},
                 meta={"induced_links": [[]], "induced_routers": [["A"]],
                       "cascade": {"max_rounds": 2, "rounds": [{"round": 1, "routers": ["A"]}]}})
    row = compare(flow, emu)
    assert row["disagree"] == ["impacted", "reroute_time"]
    assert row["reasons"][1:] == [
        "the flow twin trips more: it counts traffic dropped further than one hop upstream as load (not modelled: "
        "loss reducing downstream load beyond one hop)",
        "pairs rerouted by the cascade are timed by the 40 ms probes through the event's congestion (the fast probes "
        "stop before the cascade phase)"]
