"""SLA verdicts on the emulation (root): the same records as the flow twin's, from real packets."""

from __future__ import annotations

import os

import pytest

from harness.kg.build import build_kg
from harness.scenario.validate import validate_scenario
from harness.twin.emulation.twin import NO_DELAY_LATENCY_NOTE, EmulationTwin
from harness.twin.flow.twin import FlowTwin
from harness.twin.sla import steady_phase, violations

BRIDGED_RING = [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A"), ("D", "E"), ("E", "F")]


@pytest.mark.root
def test_emulation_result_carries_sla_verdicts_like_the_flow_twin(tmp_path, graph):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    kg = build_kg(graph(BRIDGED_RING))
    cut = validate_scenario(kg, {"id": "bridge", "events": [
        {"event_type": "fiber_link_failure", "target": "D-E", "timestamp": 1}]})
    flow = FlowTwin().run(kg, cut, "auto")
    with EmulationTwin(run_dir=tmp_path, window_s=1.5, max_cascade_rounds=0) as twin:
        emu = twin.run(kg, cut, "auto")
        twin.max_pairs = 12                       # a covering sample of the 30 flows
        sampled = twin.run(kg, cut, None)
    key = lambda v: (v.service, v.metric, v.phase)
    assert sorted(map(key, emu.sla)) == sorted(map(key, flow.sla))          # same verdicts, same shape
    assert {type(v) for v in emu.sla} == {type(v) for v in flow.sla}
    judged_latency = bool(emu.meta["fidelity"].get("delay"))
    for v in emu.sla:
        assert v.total == len(kg.attrs("service", v.service)["flows"])
        if v.metric == "latency_ms" and not judged_latency:
            assert v.violated is None and v.note == NO_DELAY_LATENCY_NOTE      # said, not faked
        else:
            assert v.measured == v.total and v.note == ""                     # every pair monitored
    # baseline holds; the bridge cut cuts E and F off and no mitigation can restore them
    assert not any(v.violated for v in emu.sla if v.phase == "baseline")
    assert steady_phase(emu) == "mitigated"
    unreachable = lambda r, ph: {f for v in r.sla if v.phase == ph and v.metric == "loss_pct"
                                 for f in v.flows[:v.unreachable]}
    assert len(unreachable(emu, "failure")) == emu.row("failure").unreachable_pairs == 16
    assert unreachable(emu, "failure") == unreachable(flow, "failure")
    assert {(v.service, v.metric) for v in violations(emu) if v.metric == "loss_pct"} == \
        {(v.service, v.metric) for v in violations(flow) if v.metric == "loss_pct"}
    # with a monitored sample, each verdict says how many of the service's flows were measured
    assert sampled.meta["pairs_sampled"] and steady_phase(sampled) == "failure"
    loss = [v for v in sampled.sla if v.metric == "loss_pct"]
    assert sum(v.measured for v in loss if v.phase == "failure") == 12
    assert all(v.note.endswith("flows measured (the emulation's monitored sample of pairs)")
               for v in loss if v.measured < v.total)
    assert any(v.measured < v.total for v in loss)
