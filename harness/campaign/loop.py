"""The closed loop: generate → validate → simulate → mitigate → measure → feed back.

:func:`run_campaign` runs a :class:`~harness.campaign.spec.CampaignSpec` into a campaign
directory (:mod:`harness.campaign.store`). Each iteration, every generator arm proposes
``per_iteration`` scenarios (persisted before anything else happens, so a resumed campaign
sees the very same proposals), the validator accepts or rejects each with reasons, the flow
twin screens every accepted scenario under every mitigation strategy, the emulation twin (if
the spec asks for it) validates the top-k most damaging plus a fixed random sample, and a
compact feedback summary goes back to each arm. Every unit is skipped when it already exists,
so ``resume=True`` continues exactly where a killed campaign stopped.

Twin runs go through a *runner* (``runner.map(twin_name, kg, jobs)`` yields one
:class:`~harness.twin.kpi.ScenarioResult` per ``(scenario, mitigation)`` job, in order). The
default :class:`LocalRunner` runs them here, one after another;
:class:`harness.remote.dask_dispatch.DaskRunner` sends them to a Dask cluster. Either way the
loop alone writes the units, in the same order, so the directory format, resume and results
do not depend on where the twins ran.
"""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from harness.campaign.feedback import build_feedback
from harness.campaign.sla import steady_state_check
from harness.campaign.spec import CampaignSpec, GeneratorArm, load_spec
from harness.campaign.store import CampaignStore
from harness.errors import CampaignError
from harness.generate import GenState
from harness.generate.registry import make_arm
from harness.kg import build_kg
from harness.kg.model import KnowledgeGraph
from harness.scenario.model import Scenario
from harness.scenario.validate import Reason, check_scenario
from harness.topology import load_topology
from harness.twin import make_twin
from harness.twin.kpi import ScenarioResult

#: Rule of a proposal outside the operator's scope (spec event_types, max_events).
SCOPE = "scope"

Progress = Callable[[str, int, int], None]
Job = tuple[Scenario, "str | None"]   # a scenario and the mitigation strategy to pass the twin (None: none)


class Runner(Protocol):
    """Where twin runs happen. ``map`` yields one result per job, in the order of ``jobs``."""

    def map(self, twin_name: str, kg: KnowledgeGraph, jobs: list[Job]) -> Iterator[ScenarioResult]: ...

    def close(self) -> None: ...


class LocalRunner:
    """The default runner: twins built by ``twin_factory`` in this process, run one job at a time.

    The flow twin is used as is; any other twin (emulation) is checked with ``is_available()``
    and entered as a context manager on first use, and left again by :meth:`close`.
    """

    def __init__(self, twin_factory: Callable[[str], object] = make_twin):
        self.twin_factory = twin_factory
        self.twins: dict[str, object] = {}
        self.entered: list[object] = []

    def _twin(self, name: str):
        if name not in self.twins:
            twin = self.twin_factory(name)
            if name != "flow":
                if not twin.is_available():
                    raise CampaignError(f"the spec asks for the {name} twin, but it is not available here "
                                        f"(see `ani doctor`); remove twins.{name} to run flow-only")
                twin.__enter__()
                self.entered.append(twin)
            self.twins[name] = twin
        return self.twins[name]

    def map(self, twin_name: str, kg: KnowledgeGraph, jobs: list[Job]) -> Iterator[ScenarioResult]:
        twin = self._twin(twin_name) if jobs else None
        for scenario, mitigation in jobs:
            yield twin.run(kg, scenario, mitigation)

    def close(self) -> None:
        while self.entered:
            self.entered.pop().__exit__(None, None, None)


@dataclass
class CampaignSummary:
    root: Path
    iterations: int
    proposed: int = 0
    accepted: int = 0
    rejected: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    twin_s: dict[str, float] = field(default_factory=dict)
    #: the steady-state SLA check (:func:`harness.campaign.sla.steady_state_check`) when the
    #: spec's ``fail_on`` has ``sla``, else None
    sla: dict | None = None


def campaign_kg(spec: CampaignSpec) -> KnowledgeGraph:
    topo = load_topology(spec.topology, seed=spec.traffic.seed)
    return build_kg(topo, traffic=spec.traffic.model, seed=spec.traffic.seed, load=spec.traffic.load)


def prepare(root: str | Path, spec: CampaignSpec | None, resume: bool) -> tuple[CampaignStore, CampaignSpec]:
    store = CampaignStore(root)
    existing = store.spec_path().is_file()
    if resume:
        if not existing:
            raise CampaignError(f"{root} is not a campaign directory (no spec.yaml); nothing to resume")
        stored = load_spec(store.spec_path())
        if spec is not None and spec != stored:
            raise CampaignError(f"{root} was started with a different spec; resume it without a spec or use a new directory")
        for tmp in store.root.rglob(".*.tmp"):
            tmp.unlink()
        return store, stored
    if spec is None:
        raise CampaignError("a new campaign needs a spec")
    if existing or (store.root.exists() and any(store.root.iterdir())):
        raise CampaignError(f"{root} already holds a campaign; use --resume to continue it or choose a new directory")
    store.root.mkdir(parents=True, exist_ok=True)
    store.write_spec(spec)
    return store, spec


def run_campaign(root: str | Path, spec: CampaignSpec | None = None, *, resume: bool = False,
                 progress: Progress | None = None, twin_factory: Callable[[str], object] = make_twin,
                 runner: Runner | None = None) -> CampaignSummary:
    """Run (or resume) a campaign in ``root``; returns counts and timings.

    ``runner`` evaluates the twin runs (default: a :class:`LocalRunner` over ``twin_factory``,
    closed here; a runner passed in is left open for its owner to close).
    """
    t_start = time.perf_counter()
    store, spec = prepare(root, spec, resume)
    note = progress or (lambda stage, done, total: None)
    kg = campaign_kg(spec)
    summary = CampaignSummary(root=store.root, iterations=spec.budget.iterations)
    arms = {arm.label: arm for arm in spec.generators}
    generators: dict[str, object] = {}
    own_runner = runner is None
    if runner is None:
        # The emulation keeps its controller log and probe output in the campaign directory.
        session_logs = store.root / "logs" / f"emulation-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"

        def factory(name: str):
            if name == "emulation" and twin_factory is make_twin:
                return make_twin(name, run_dir=session_logs)
            return twin_factory(name)

        runner = LocalRunner(factory)
    llm_server = None
    try:
        if any(a.generator == "llm" for a in spec.generators) and spec.llm.url is None:
            llm_server = _LazyServer(store.root / "logs")
        total_units = spec.budget.iterations * len(arms)
        for it in range(spec.budget.iterations):
            for j, (label, arm) in enumerate(arms.items()):
                note(f"iteration {it + 1}/{spec.budget.iterations}: {label} proposes", it * len(arms) + j, total_units)
                proposals = _proposals(store, kg, spec, arm, it, generators, llm_server)
                summary.proposed += len(proposals["scenarios"])
                accepted = _validate(store, kg, arm, it, proposals["scenarios"], spec)
                summary.accepted += len(accepted)
                summary.rejected += len(proposals["scenarios"]) - len(accepted)
                _run_twin(store, runner, "flow", kg, [(label, s) for s in accepted], it, spec.mitigation, summary,
                          note, f"iteration {it + 1}: flow twin on {label}")
            if spec.twins.emulation is not None:
                chosen = _select_for_emulation(store, spec, it)
                if chosen:
                    _run_twin(store, runner, "emulation", kg, chosen, it, spec.mitigation[:1], summary,
                              note, f"iteration {it + 1}: emulation twin")
            store.rebuild_views()
        note("done", total_units, total_units)
    finally:
        for gen in generators.values():
            if hasattr(gen, "close"):
                gen.close()
        if own_runner:
            runner.close()
        if llm_server is not None:
            llm_server.stop()
    if "sla" in spec.fail_on:
        summary.sla = steady_state_check(store)
    summary.elapsed_s = time.perf_counter() - t_start
    return summary


class _LazyServer:
    """Starts the embedded model on first use, once per campaign."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.server = None

    def url_and_model(self) -> tuple[str, str]:
        if self.server is None:
            from harness.llm import EmbeddedServer

            self.server = EmbeddedServer().start()
        return self.server.url, self.server.model

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _generator(spec: CampaignSpec, arm: GeneratorArm, generators: dict, llm_server):
    if arm.label not in generators:
        llm: dict = {}
        if arm.generator == "llm":
            url, model = spec.llm.url, spec.llm.model
            if url is None:
                url, model = llm_server.url_and_model()
            llm = dict(llm_url=url, model=model, temperature=spec.llm.temperature, compact_grammar=spec.llm.url is None)
        generators[arm.label] = make_arm(arm.generator, unconstrained=arm.unconstrained, no_kg=arm.no_kg,
                                         no_feedback=arm.no_feedback, screen=arm.screen, incidents=arm.incidents, **llm)
    return generators[arm.label]


def _proposals(store: CampaignStore, kg, spec: CampaignSpec, arm: GeneratorArm, it: int, generators, llm_server) -> dict:
    rel = store.proposal_rel(arm.label, it)
    if store.has(rel):
        return store.read_unit(rel)
    gen = _generator(spec, arm, generators, llm_server)
    # Mutation works on everything the campaign has found so far; the others on their own history.
    history = [Scenario.model_validate(r["scenario"]) for r in store.scenarios()
               if r["label"] == arm.label or arm.generator == "mutate"]
    state = GenState(topology=spec.topology, iteration=it, history=history, max_events=spec.max_events,
                     horizon_s=spec.horizon_s, event_types=spec.event_types)
    feedback = build_feedback({r["scenario"]["id"]: r for r in store.scenarios()},
                              [mr for mr in store.results()], store.rejected(), arm.label)
    before = len(getattr(gen, "records", []))
    scenarios = gen.propose(kg, state, feedback, spec.budget.per_iteration, seed=spec.seed * 1000 + it)
    records = list(getattr(gen, "records", [])[before:])
    body = {"label": arm.label, "iteration": it, "scenarios": [s.model_dump(mode="json") for s in scenarios],
            "records": records, "feedback": feedback.as_text()}
    store.write_unit(rel, body)
    return body


def _unit_id(store: CampaignStore, data: dict, label: str, it: int, k: int) -> str:
    """The proposal's id, fit for a file name and unique in the campaign (deterministically).

    An id another arm or iteration already holds gets ``-<label>-<iteration>`` appended.
    """
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", text)

    sid = safe(str(data.get("id") or f"{label}-{it}-{k}"))
    for rel in (f"scenarios/{sid}.json", f"rejected/{sid}.json"):
        if store.has(rel):
            body = store.read_unit(rel)
            if (body["label"], body["iteration"]) != (label, it):
                return safe(f"{sid}-{label}-{it}")
    return sid


def scope_reasons(spec: CampaignSpec, data: dict) -> list[Reason]:
    """Where a proposal leaves the operator's scope: more events than ``max_events`` (the
    attack budget) or an event type outside ``event_types``."""
    events = data.get("events") if isinstance(data.get("events"), list) else []
    out = []
    if len(events) > spec.max_events:
        out.append(Reason(None, SCOPE, f"{len(events)} events exceed the campaign's attack budget of "
                                       f"max_events={spec.max_events}"))
    if spec.event_types is not None:
        for i, e in enumerate(events):
            et = e.get("event_type") if isinstance(e, dict) else None
            if et not in spec.event_types:
                out.append(Reason(i, SCOPE, f"event type {et!r} is outside the campaign's event_types "
                                            f"({', '.join(spec.event_types)})"))
    return out


def _validate(store: CampaignStore, kg, arm: GeneratorArm, it: int, raw: list[dict],
              spec: CampaignSpec) -> list[Scenario]:
    """Accept or reject each proposal once (the operator's scope, then the causal validator);
    stored verdicts are reused on resume."""
    accepted = []
    for k, data in enumerate(raw):
        sid = _unit_id(store, data, arm.label, it, k)
        rel_ok, rel_bad = f"scenarios/{sid}.json", f"rejected/{sid}.json"
        if store.has(rel_ok):
            accepted.append(Scenario.model_validate(store.read_unit(rel_ok)["scenario"]))
            continue
        if store.has(rel_bad):
            continue
        data = {**data, "id": sid}
        verdict = scope_reasons(spec, data) or check_scenario(kg, data)
        if isinstance(verdict, Scenario):
            store.write_unit(rel_ok, {"label": arm.label, "iteration": it, "scenario": verdict.model_dump(mode="json")})
            accepted.append(verdict)
        else:
            store.write_unit(rel_bad, {"label": arm.label, "iteration": it, "scenario": data,
                                       "reasons": [r.to_dict() for r in verdict]})
    return accepted


def _run_twin(store: CampaignStore, runner: Runner, twin: str, kg, items: list[tuple[str, Scenario]], it: int,
              mitigations: list[str], summary: CampaignSummary, note: Progress, stage: str) -> None:
    """Run every missing (scenario, mitigation) of ``items`` on ``twin`` through ``runner``; write each unit."""
    jobs = [(label, s, m) for label, s in items for m in mitigations
            if not store.has(store.result_rel(s.id, twin, m))]
    note(stage, 0, len(jobs))
    t0 = time.perf_counter()
    results = runner.map(twin, kg, [(s, None if m == "none" else m) for _, s, m in jobs])
    for k, ((label, s, m), result) in enumerate(zip(jobs, results, strict=True)):
        t1 = time.perf_counter()
        summary.twin_s[twin] = summary.twin_s.get(twin, 0.0) + t1 - t0
        store.write_unit(store.result_rel(s.id, twin, m),
                         {"label": label, "iteration": it, "mitigation": m, "result": result.model_dump(mode="json")})
        summary.runs[twin] = summary.runs.get(twin, 0) + 1
        note(stage, k + 1, len(jobs))
        t0 = time.perf_counter()


def _select_for_emulation(store: CampaignStore, spec: CampaignSpec, it: int) -> list[tuple[str, Scenario]]:
    """This iteration's top-k by flow-twin loss, plus a fixed random sample of the rest."""
    sel = spec.twins.emulation
    rows = {r["scenario"]["id"]: r for r in store.scenarios() if r["iteration"] == it}
    scored = []
    for meta, res in store.results():
        if res.twin == "flow" and res.scenario_id in rows and meta["mitigation"] == spec.mitigation[0]:
            f = res.row("failure")
            scored.append((-(f.loss_pct or 0), -(f.impacted_nodes or 0), res.scenario_id))
    scored.sort()
    top = [sid for *_, sid in scored[: sel.top_k]]
    rest = sorted(sid for *_, sid in scored[sel.top_k:])
    sample = random.Random(f"{spec.seed}:{it}").sample(rest, min(sel.sample, len(rest)))
    return [(rows[sid]["label"], Scenario.model_validate(rows[sid]["scenario"])) for sid in top + sample]
