"""SLA verdicts: the judgement on a hand-built graph, both on the flow twin's results, and the
``--fail-on sla`` / ``fail_on: [sla]`` exit status."""

from __future__ import annotations

import json

import networkx as nx
import pytest
import yaml
from click.testing import CliRunner

from harness.campaign import parse_spec, run_campaign
from harness.campaign.sla import steady_state_check
from harness.campaign.store import CampaignStore
from harness.cli.main import EXIT_SLA, _register, cli
from harness.errors import CampaignError, KnowledgeGraphError
from harness.kg import kg_from_ref
from harness.kg.model import KnowledgeGraph, nid
from harness.scenario import read_scenarios, validate_scenario
from harness.twin.flow.twin import FlowTwin
from harness.twin.kpi import KPIRow, ScenarioResult
from harness.twin.sla import FlowSample, judge, loss_exceeds, steady_phase, summary, violations

_register()


def tiny_kg(extra_flow: str | None = None) -> KnowledgeGraph:
    """Two services over four flows: voice (a~b, b~a, a~c: 10 ms, 1 %) and data (c~a: 50 ms, 5 %)."""
    g = nx.MultiDiGraph(topology="tiny")
    for f in ("a~b", "b~a", "a~c", "c~a"):
        g.add_node(nid("flow", f), kind="flow", name=f)
    g.add_node(nid("service", "voice"), kind="service", name="voice", sla_latency_ms=10.0, sla_loss_pct=1.0,
               flows=["a~b", "b~a", "a~c"] + ([extra_flow] if extra_flow else []))
    g.add_node(nid("service", "data"), kind="service", name="data", sla_latency_ms=50.0, sla_loss_pct=5.0,
               flows=["c~a"])
    return KnowledgeGraph(g)


OK = FlowSample(5.0, 0.0, True)
SAMPLES = {
    "baseline": {"a~b": OK, "b~a": FlowSample(9.0, 0.5, True), "a~c": OK, "c~a": FlowSample(20.0, 1.0, True)},
    "failure": {"a~b": FlowSample(15.0, 0.0, True), "b~a": FlowSample(12.5, 1.0, True),   # 1.0: on the bound
                "a~c": FlowSample(None, 100.0, False), "c~a": FlowSample(49.0, 4.0, True)},
}


def verdict(verdicts, service, phase, metric):
    (v,) = [v for v in verdicts if (v.service, v.phase, v.metric) == (service, phase, metric)]
    return v


def test_verdicts_per_service_metric_and_phase():
    vs = judge(tiny_kg(), SAMPLES)
    assert len(vs) == 2 * 2 * 2                                   # services x metrics x phases
    ok = verdict(vs, "voice", "baseline", "latency_ms")
    assert (ok.violated, ok.bound, ok.worst, ok.excess, ok.flows) == (False, 10.0, 9.0, -1.0, [])
    assert (ok.measured, ok.total, ok.note) == (3, 3, "")
    lat = verdict(vs, "voice", "failure", "latency_ms")
    # the unreachable flow first, then worst first; by how much: the worst over the bound
    assert lat.violated and lat.flows == ["a~c", "a~b", "b~a"] and lat.unreachable == 1
    assert (lat.worst, lat.excess) == (15.0, 5.0)
    loss = verdict(vs, "voice", "failure", "loss_pct")
    assert loss.violated and loss.flows == ["a~c"] and (loss.worst, loss.excess) == (100.0, 99.0)
    data = verdict(vs, "data", "failure", "loss_pct")
    assert data.violated is False and data.excess == pytest.approx(-1.0)
    assert verdict(vs, "data", "failure", "latency_ms").violated is False


def test_a_measured_loss_is_over_its_bound_only_beyond_sampling_error():
    """Loss counted on packets (the emulation) is judged with a Wilson bound: 1 lost of 20 (5 %)
    is not over voice's 1 %, 2 of 20 are; the same 5 % as an exact figure (the flow twin) is."""
    assert not loss_exceeds(1, 20, 1.0) and loss_exceeds(2, 20, 1.0) and loss_exceeds(20, 20, 1.0)
    assert not loss_exceeds(0, 20, 0.0) and not loss_exceeds(3, 200, 1.0) and loss_exceeds(5, 200, 1.0)
    samples = {"failure": {"a~b": FlowSample(5.0, 5.0, True, 20), "b~a": FlowSample(5.0, 10.0, True, 20),
                           "a~c": FlowSample(5.0, 5.0, True), "c~a": OK}}
    loss = verdict(judge(tiny_kg(), samples), "voice", "failure", "loss_pct")
    assert loss.violated and loss.flows == ["b~a", "a~c"] and loss.worst == 10.0
    # an exact figure at its bound, as floating point computes it (1 - 0.95), is not over it
    at = 100 * (1 - 0.95)
    assert at > 5.0 and not FlowSample(1.0, at, True).loss_over(5.0) and FlowSample(1.0, 5.001, True).loss_over(5.0)


def test_a_flow_exactly_at_its_loss_bound_is_not_broken():
    """The flow twin's 5 % degradation on a data flow (bound 5 %) breaks nothing: the flow twin
    computes 5.000000000000004 %, which once counted data flows as over their SLA."""
    kg = kg_from_ref("topozoo/Abilene")
    data = kg.attrs("service", "data")["sla_loss_pct"]
    s = validate_scenario(kg, {"id": "d", "events": [{"event_type": "link_degradation", "target": "Denver-Seattle",
                                                      "timestamp": 1.0, "params": {"loss_pct": data,
                                                                                  "capacity_factor": 1.0}}]})
    r = FlowTwin().run(kg, s)
    v = verdict(r.sla, "data", "failure", "loss_pct")
    assert v.worst == pytest.approx(data) and not v.violated
    assert any(verdict(r.sla, svc, "failure", "loss_pct").violated for svc in ("voice", "video"))


def test_unmeasured_flows_and_metrics_are_said():
    part = {"failure": {f: s for f, s in SAMPLES["failure"].items() if f != "a~c"}}
    vs = judge(tiny_kg(), part, coverage="the monitored sample",
               not_measured={"latency_ms": "not judged: no propagation delay"})
    lat = verdict(vs, "voice", "failure", "latency_ms")
    assert lat.violated is None and lat.note == "not judged: no propagation delay" and lat.flows == []
    loss = verdict(vs, "voice", "failure", "loss_pct")
    assert loss.violated is False and loss.measured == 2 and loss.total == 3
    assert loss.note == "2 of 3 flows measured (the monitored sample)"
    none = judge(tiny_kg(), {"failure": {"a~b": OK}})
    assert verdict(none, "data", "failure", "loss_pct").violated is None
    assert "none of the service's 1 flows was measured" in verdict(none, "data", "failure", "loss_pct").note


def test_bad_services_are_clear_errors():
    with pytest.raises(KnowledgeGraphError, match="service 'voice' names flow 'x~y'"):
        judge(tiny_kg("x~y"), SAMPLES)
    kg = tiny_kg()
    del kg.graph.nodes[nid("service", "data")]["sla_loss_pct"]
    with pytest.raises(KnowledgeGraphError, match="service 'data' has no sla_loss_pct bound"):
        judge(kg, SAMPLES)


def result_with(verdicts, phases=("baseline", "failure")) -> ScenarioResult:
    rows = {p: KPIRow(scenario_id="s", twin="flow", phase=p) for p in phases}
    return ScenarioResult(scenario_id="s", twin="flow", rows=rows, sla=verdicts)


def test_steady_phase_violations_and_serialisation():
    r = result_with(judge(tiny_kg(), SAMPLES))
    assert steady_phase(r) == "failure"
    assert [(v.service, v.metric) for v in violations(r)] == [("voice", "latency_ms"), ("voice", "loss_pct")]
    assert violations(r, "baseline") == []
    assert "voice loss_pct > 1: 1 flows, 1 unreachable, worst 100 (+99): a~c" in summary(violations(r))
    back = ScenarioResult.from_json(r.to_json())
    assert back.sla == r.sla
    mitigated = result_with(judge(tiny_kg(), {**SAMPLES, "mitigated": SAMPLES["baseline"]}),
                            ("baseline", "failure", "mitigated"))
    assert steady_phase(mitigated) == "mitigated" and violations(mitigated) == []
    # a result written before verdicts existed still loads, with none
    old = json.loads(r.to_json())
    del old["sla"]
    assert ScenarioResult.from_json(json.dumps(old)).sla == []


# --------------------------------------------------------------------------- the flow twin
def flow_result(path: str, mitigation: str | None = "auto") -> ScenarioResult:
    raw = read_scenarios(path)[0]
    kg = kg_from_ref(raw["topology"])
    return FlowTwin().run(kg, validate_scenario(kg, raw), mitigation)


def test_flow_twin_judges_every_service_from_every_flow():
    r = flow_result("scenarios/abilene/fiber_cut.yaml")
    kg = kg_from_ref("topozoo/Abilene")
    assert {(v.service, v.metric, v.phase) for v in r.sla} == {
        (s, m, p) for s in kg.names("service") for m in ("latency_ms", "loss_pct") for p in r.rows}
    assert all(v.measured == v.total == len(kg.attrs("service", v.service)["flows"]) for v in r.sla)
    assert not any(v.violated for v in r.sla if v.phase == "baseline")
    # an unreachable flow violates every bound: the verdicts' unreachable flows are the row's
    fail = [v for v in r.sla if v.phase == "failure" and v.metric == "loss_pct"]
    assert sum(v.unreachable for v in fail) == r.row("failure").unreachable_pairs > 0
    assert all(v.violated and v.worst == 100.0 and v.excess == 100.0 - v.bound for v in fail)
    assert ScenarioResult.from_json(r.to_json()).sla == r.sla


def test_flow_twin_verdict_without_violation():
    r = flow_result("scenarios/geant/srlg_failure.yaml", None)
    assert steady_phase(r) == "failure" and violations(r) == []
    assert all(v.violated is False and v.excess < 0 for v in r.sla)


# --------------------------------------------------------------------------- CLI exit status
def test_run_fail_on_sla_exit_status():
    bad = CliRunner().invoke(cli, ["run", "scenarios/abilene/fiber_cut.yaml", "--fail-on", "sla"])
    assert bad.exit_code == EXIT_SLA == 3, bad.output
    assert "SLA in the steady state (mitigated phase): violated: data latency_ms" in bad.output
    assert "voice loss_pct > 1: 28 flows, 28 unreachable, worst 100 (+99)" in bad.output
    assert "SLA violated in the steady state of 1 of 1 scenarios: abilene-fiber-cut (mitigated)" in bad.output
    good = CliRunner().invoke(cli, ["run", "scenarios/geant/srlg_failure.yaml", "--mitigate", "none",
                                    "--fail-on", "sla"])
    assert good.exit_code == 0, good.output
    assert "SLA in the steady state (failure phase): met" in good.output
    # without --fail-on the verdicts are printed and the run succeeds
    plain = CliRunner().invoke(cli, ["run", "scenarios/abilene/fiber_cut.yaml"])
    assert plain.exit_code == 0 and "FAIL 100 (+99)" in plain.output
    assert CliRunner().invoke(cli, ["run", "scenarios/abilene/fiber_cut.yaml", "--fail-on", "slo"]).exit_code == 2


# --------------------------------------------------------------------------- campaigns
SPEC = {"name": "sla", "topology": "topozoo/Abilene", "generators": [{"generator": "rule"}],
        "budget": {"iterations": 1, "per_iteration": 2}, "mitigation": ["auto"], "seed": 3}


def test_campaign_fail_on_is_validated():
    assert parse_spec(SPEC).fail_on == []
    assert parse_spec({**SPEC, "fail_on": ["sla"]}).fail_on == ["sla"]
    with pytest.raises(CampaignError, match="fail_on.0: Input should be 'sla'"):
        parse_spec({**SPEC, "fail_on": ["latency"]})


def test_campaign_fail_on_sla_exit_status(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "fail_on": ["sla"]}))
    r = CliRunner().invoke(cli, ["campaign", "run", str(spec), "-o", str(tmp_path / "c")])
    check = steady_state_check(CampaignStore(tmp_path / "c"))
    assert check["results"] == 2 and check["unjudged"] == 0
    # the rule generator's Abilene scenarios break SLAs the mitigation cannot restore
    assert check["violations"], check
    assert r.exit_code == EXIT_SLA, r.output
    v = check["violations"][0]
    assert f"  {v['scenario_id']} (rule, flow twin, mitigation auto, mitigated phase): " in r.output
    # the same campaign without fail_on succeeds; resuming with it judges every stored result
    quiet = tmp_path / "quiet.yaml"
    quiet.write_text(yaml.safe_dump(SPEC))
    assert CliRunner().invoke(cli, ["campaign", "run", str(quiet), "-o", str(tmp_path / "q")]).exit_code == 0
    assert run_campaign(tmp_path / "q", resume=True).sla is None
    again = CliRunner().invoke(cli, ["campaign", "run", str(tmp_path / "c"), "--resume"])
    assert again.exit_code == EXIT_SLA and "nothing new" in again.output


def test_campaign_check_passes_when_every_sla_holds(tmp_path):
    root = tmp_path / "c"
    run_campaign(root, parse_spec({**SPEC, "fail_on": ["sla"]}))
    store = CampaignStore(root)
    kept = None
    # keep one result and make it one that holds (the Geant SRLG cut): the check reads the directory
    for p in sorted((root / "results").glob("*.json")):
        if kept is None:
            kept = p
            body = store.read_unit(p.relative_to(root))
            good = flow_result("scenarios/geant/srlg_failure.yaml", None)
            store.write_unit(str(p.relative_to(root)), {**body, "result": good.model_dump(mode="json")})
        else:
            p.unlink()
    check = steady_state_check(CampaignStore(root))
    assert check == {"results": 1, "unjudged": 0, "violations": []}
    old = CampaignStore(root).read_unit(kept.relative_to(root))
    del old["result"]["sla"]
    CampaignStore(root).write_unit(str(kept.relative_to(root)), old)
    assert steady_state_check(CampaignStore(root))["unjudged"] == 1
