"""Cascades measured on the emulation (root, real OVS + os-ken): the shared Motter–Lai rule on
the loads the link shapers' counters show, induced failures taken down on the live network,
``cascade_depth`` measured on both twins. Run under the shared lock:
``flock /tmp/ani-heavy.lock pytest tests/emulation/test_emulated_cascades.py``."""

from __future__ import annotations

import os

import pytest

from harness.kg.build import build_kg
from harness.scenario.validate import validate_scenario
from harness.twin.emulation.cascade import direction_rates, element_loads, floor_mbps
from harness.twin.emulation.twin import EmulationTwin
from harness.twin.flow.twin import FlowTwin

RING = [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")]


def test_loads_from_shaper_counters():
    q0 = {"t": 10.0, "dirs": {("A", "B"): (0, 0, 0), ("B", "A"): (0, 0, 0), ("B", "C"): (0, 0, 0)}}
    # A->B sent 1 Mbit in 1 s in 1000-byte frames and dropped 25 more frames: offered 1.2 Mbit/s
    q1 = {"t": 11.0, "dirs": {("A", "B"): (125_000, 125, 25), ("B", "A"): (12_500, 10, 0),
                              ("B", "C"): (50_000, 50, 0)}}
    rates = direction_rates(q0, q1)
    assert rates[("A", "B")] == pytest.approx({"carried": 1.0, "offered": 1.2})
    links, routers = element_loads(rates)
    assert links == pytest.approx({"A-B": 1.2, "B-C": 0.4})          # busier direction, offered
    # a router's load: what its neighbours' shapers sent towards it (transit + delivered)
    assert routers == pytest.approx({"A": 0.1, "B": 1.0, "C": 0.4})
    assert floor_mbps(1.0) == pytest.approx(1514 * 8 / 1e6)


@pytest.fixture(scope="module")
def ring(tmp_path_factory, graph):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    kg = build_kg(graph(RING))
    with EmulationTwin(run_dir=tmp_path_factory.mktemp("cascade")) as twin:
        yield twin, kg


@pytest.mark.root
def test_a_surge_induces_failures_on_both_twins(ring):
    twin, kg = ring
    surge = validate_scenario(kg, {"id": "surge-cascade", "events": [
        {"event_type": "traffic_surge", "target": "C", "timestamp": 0,
         "params": {"sources": ["A"], "multiplier": 12.0}}]})
    r = twin.run(kg, surge, None)
    flow = FlowTwin().run(kg, surge, None)
    cas = r.meta["cascade"]
    assert cas["alpha"] == 1.0 and cas["checks"] >= 1
    depth = r.row("failure").cascade_depth
    assert depth == len(cas["rounds"]) >= 1, cas
    first = cas["rounds"][0]
    # every element the emulation failed was measured over its tolerance: its load above
    # (1 + alpha) x its baseline load or above its capacity
    for el, (load, base, cap) in first["loads"].items():
        assert load > min(2.0 * base, cap if cap is not None else float("inf")), (el, load, base, cap)
    # the induced elements are down in the failure window and named in the result
    assert r.meta["induced_links"] == [x["links"] for x in cas["rounds"]]
    assert r.row("baseline").cascade_depth == 0
    assert flow.row("failure").cascade_depth >= 1
    print(f"surge A->C x12: emulation depth {depth} {cas['rounds']}; flow depth "
          f"{flow.row('failure').cascade_depth} {flow.meta['induced_links']} {flow.meta['induced_routers']}")


@pytest.mark.root
def test_random_loss_does_not_cascade(ring):
    twin, kg = ring
    lossy = validate_scenario(kg, {"id": "lossy", "events": [
        {"event_type": "link_degradation", "target": "A-B", "timestamp": 0,
         "params": {"loss_pct": 5.0, "capacity_factor": 1.0}}]})
    r = twin.run(kg, lossy, None)
    assert r.row("failure").cascade_depth == 0, r.meta["cascade"]
    assert r.meta["cascade"]["rounds"] == [] and r.meta["cascade"]["checks"] == 1
    assert FlowTwin().run(kg, lossy, None).row("failure").cascade_depth == 0
