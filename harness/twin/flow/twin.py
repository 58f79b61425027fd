"""The flow-level twin: knowledge graph + scenario -> engine states -> the KPI record.

Event semantics: each event's :class:`~harness.scenario.events.base.Effect` (from its type in
:mod:`harness.scenario.types`) becomes an engine :class:`~harness.twin.flow.engine.NetState`:
links and routers down, router and link capacity factors, random link loss, extra demands
(surges, attacks), blackholed or misrouted destinations. An event with ``duration_s`` stops
counting once it has ended.

KPIs: over the knowledge graph's flows (attack and surge traffic is not monitored):
latency mean and p95 over reachable flows; loss = lost / offered traffic (%);
``impacted_nodes`` = failed routers plus routers most of whose flows (as source or
destination; more than half) are unreachable or break their service's SLA (latency or loss
bound) — see :func:`harness.twin.kpi.impacted_routers`; ``unreachable_pairs`` = flows with
no route. SLA verdicts (:mod:`harness.twin.sla`): every monitored flow's latency, loss and
reachability per phase, against its service's bounds. Router forwarding capacities come from the knowledge graph's CPU resources.
Cascades: the Motter–Lai rule of :mod:`harness.twin.cascade` (the emulation applies the same
rule to its measured loads): an element trips when its load exceeds
``min((1 + alpha) × its baseline load, its capacity)``, never below its baseline load.
Reroute time per affected flow (a flow whose route changed and is still reachable) =
detection + controller computation + installation per switch on its new route, with
:class:`RerouteModel` constants measured on the emulation: the shipped ones are
``reroute_calibration.json`` beside this module, written by
``benchmarks/reroute_calibration.py --write`` (fiber cuts on the emulation, timed by 5 ms
probes and the controller's own log; the file says on which machine, when, and from how
many samples); ``ani campaign fidelity --calibrate`` fits them to a campaign's own runs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.kg.model import KnowledgeGraph
from harness.mitigate import FailureView, outlook, plan
from harness.scenario import types as event_types
from harness.scenario.events.base import EFFECT_KINDS
from harness.scenario.model import Event, Scenario
from harness.twin.flow.engine import Demand, EngineConfig, FlowEngine, NetState, Outcome, build
from harness.twin.kpi import CONGESTION_THRESHOLD, KPIRow, ScenarioResult
from harness.twin.sla import EXACT_SLACK, FlowSample, judge

MODELLED = [
    "shortest-delay routing with ECMP, recomputed after failures",
    "per-direction link load and utilisation from the KG traffic matrix",
    "M/M/1 queueing delay (capped) plus propagation delay",
    "overload loss on saturated links and routers, random loss on degraded links",
    "Motter-Lai cascades of overloaded links and routers",
    "reroute time from detection + computation + per-switch installation constants measured on the emulation "
    "at three network sizes (interpolated by the network's switch count)",
]
NOT_MODELLED = [
    "TCP congestion control and packet-level transients",
    "router processing delay and control-plane convergence dynamics",
    "BGP policy",
    "loss reducing downstream load beyond one hop (a router's cascade load is what its incoming links carry "
    "after the upstream router's drop; further drops still count)",
]


#: The shipped reroute constants and their provenance (see :meth:`RerouteModel.shipped`).
CALIBRATION_FILE = Path(__file__).with_name("reroute_calibration.json")


@dataclass(frozen=True)
class RerouteModel:
    """Reroute time = detection + computation + install_per_switch × switches on the new path.

    ``detection_ms``: from the failure to the controller's port status; ``computation_ms``:
    the controller's recompute and flow-mods sent; ``install_per_switch_ms``: what the
    measured interruption adds per switch on the new path. ``source`` says where the
    figures come from. The default is :meth:`shipped`.

    The constants depend on the size of the emulated network they were measured on: every
    switch of the emulation is a bridge of *one* userspace Open vSwitch process on the host,
    so a larger network detects a port going down and installs the new flows later
    (``benchmarks/reroute_calibration.py``: fiber cuts timed by 5 ms probes on this 2-core
    machine, 2026-12-05 — median gap 19.3 ms on Abilene's 11 switches, 40.3 ms on
    BtEurope's 22, 89.8 ms on Geant2012's 37, 65.8 ms there in an earlier run; without
    background traffic Geant2012's cuts still took 50-75 ms, so it is the network's size,
    not its traffic). A hardware network has no such coupling between its switches:
    recalibrate there (``ani campaign fidelity --calibrate``). ``switches`` is the size
    these constants were measured on (``None``: any); ``sizes`` holds calibrations at other
    sizes, and :meth:`for_network` interpolates linearly between the two around a network's
    size — never beyond the largest or below the smallest measured (their constants apply,
    and ``source`` says so).
    """

    detection_ms: float
    computation_ms: float
    install_per_switch_ms: float
    source: str = field(default="", compare=False)
    switches: int | None = None
    sizes: tuple["RerouteModel", ...] = ()

    def time_ms(self, switches: int) -> float:
        return self.detection_ms + self.computation_ms + self.install_per_switch_ms * switches

    def for_network(self, switches: int) -> "RerouteModel":
        """The constants for a network of ``switches`` switches (see the class doc)."""
        points = sorted((m for m in (self, *self.sizes) if m.switches is not None), key=lambda m: m.switches)
        if len(points) < 2:
            return self
        lo, hi = points[0], points[-1]
        if switches <= lo.switches or switches >= hi.switches:
            at = lo if switches <= lo.switches else hi
            note = "" if switches == at.switches else f", not measured at {switches}: that of {at.switches} switches"
            return replace(at, sizes=(), source=f"{self.source}; measured at {at.switches} switches{note}")
        a, b = next((x, y) for x, y in zip(points, points[1:]) if x.switches <= switches <= y.switches)
        w = (switches - a.switches) / (b.switches - a.switches)

        def mix(k: str) -> float:
            return round((1 - w) * getattr(a, k) + w * getattr(b, k), 3)

        return RerouteModel(mix("detection_ms"), mix("computation_ms"), mix("install_per_switch_ms"),
                            f"{self.source}; interpolated between {a.switches} and {b.switches} switches", switches)

    @classmethod
    def from_file(cls, path: str | Path) -> "RerouteModel":
        """Constants from a calibration file (``ani campaign fidelity --calibrate``, or the
        shipped one; see :meth:`from_record`); a clear error when it cannot be read."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read reroute calibration {path}: {exc}") from None
        return cls.from_record(data, str(path))

    @classmethod
    def from_record(cls, data: dict, where: str = "the calibration") -> "RerouteModel":
        """Constants from a calibration record (:func:`harness.campaign.fidelity.fit_reroute`):
        ``{"points": [{"switches", "detection_ms", "computation_ms", "install_per_switch_ms",
        ...}, ...], "provenance": {...}}`` (one point per network size), or one set of
        constants at the top level. ``where`` names it in errors and in ``source``."""
        try:
            points = [cls(float(x["detection_ms"]), float(x["computation_ms"]), float(x["install_per_switch_ms"]),
                          switches=None if x.get("switches") is None else int(x["switches"]))
                      for x in (data["points"] if "points" in data else [data])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cannot read reroute calibration {where}: {exc}") from None
        if not points:
            raise ConfigError(f"reroute calibration {where}: no points")
        if any(min(m.detection_ms, m.computation_ms, m.install_per_switch_ms) < 0 for m in points):
            raise ConfigError(f"reroute calibration {where}: constants must be >= 0")
        sizes = [m.switches for m in points]
        if len(points) > 1 and (None in sizes or len(set(sizes)) != len(sizes)):
            raise ConfigError(f"reroute calibration {where}: several points need distinct switch counts, got {sizes}")
        prov = data.get("provenance") or {}
        said = ", ".join(f"{k} {prov[k]}" for k in ("machine", "date", "samples") if k in prov)
        points.sort(key=lambda m: m.switches or 0)
        return replace(points[0], sizes=tuple(points[1:]), source=Path(where).name + (f" ({said})" if said else ""))

    @classmethod
    def shipped(cls) -> "RerouteModel":
        """The constants measured on the emulation, shipped in :data:`CALIBRATION_FILE`."""
        return cls.from_file(CALIBRATION_FILE)


@dataclass
class FlowTwin:
    """The fast twin. ``with FlowTwin() as twin: twin.run(kg, scenario, "auto")``."""

    config: EngineConfig = field(default_factory=EngineConfig)
    reroute: RerouteModel = field(default_factory=RerouteModel.shipped)
    name: str = "flow"
    _engines: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        event_types.require_effects(self.name, EFFECT_KINDS)   # the engine realises every kind

    def is_available(self) -> bool:
        return True

    def __enter__(self) -> "FlowTwin":
        return self

    def __exit__(self, *exc) -> None:
        self._engines.clear()

    # ------------------------------------------------------------------ engine
    def engine(self, kg: KnowledgeGraph) -> FlowEngine:
        """The engine for ``kg`` (built once per knowledge graph and cached)."""
        key = id(kg)
        if key not in self._engines:
            demands = [Demand(a["src"], a["dst"], a["demand_mbps"], f) for f in kg.flows
                       for a in (kg.attrs("flow", f),)]
            cpu = {r: kg.attrs("resource", f"cpu_{r}")["capacity"] for r in kg.routers}
            config = self.config if self.config.router_capacity is not None else replace(self.config, router_capacity=cpu)
            eng = build(kg.topology, demands, config)
            # the services' SLA bounds of the monitored flows, for every row's impacted nodes
            self._engines[key] = (kg, eng, sla_bounds(kg, eng.baseline.demand_ids[:len(kg.flows)]))
        return self._engines[key][1]

    # ------------------------------------------------------------------ run
    def run(self, kg: KnowledgeGraph, scenario: Scenario, mitigation: str | None = None,
            monitored: list[str] | None = None) -> ScenarioResult:
        """The scenario's KPI record. ``monitored``: judge the flow-level KPIs (latency,
        impacted nodes, unreachable pairs, reroute time, SLA verdicts) on these KG flows only,
        as the emulation does with a sample of a large graph's flows (its
        ``meta["monitored_flows"]``) — to compare the twins on the same flows; loss and
        utilisation stay over all traffic. Every flow by default."""
        t0 = time.perf_counter()
        eng = self.engine(kg)
        base = eng.baseline
        watch = _watched(kg, base, monitored)
        names = {f for f, w in zip(base.demand_ids, watch) if w}
        model = self.reroute.for_network(len(kg.routers))     # the constants at this network's size
        timeline = []
        for i, e in enumerate(scenario.events):
            state = state_for(kg, scenario.events[: i + 1], at=e.timestamp)
            out = eng.evaluate(state)
            row = self._row(kg, scenario.id, "failure", base, out, base, watch, model)
            timeline.append({"index": i, "t": e.timestamp, "event_type": e.event_type, "target": e.target,
                             **row.kpis(), "impacted_node_names": row.impacted_node_names})
        # events are in time order (rule R3): the last timeline state is the failure state
        failure_state, failure = state, out
        rows = {"baseline": self._row(kg, scenario.id, "baseline", base, base, base, watch, model),
                "failure": self._row(kg, scenario.id, "failure", base, failure, base, watch, model)}
        mitigation_info: dict = {}
        outcomes = {"baseline": base, "failure": failure}
        if mitigation and mitigation != "none":
            view = failure_view(kg, base, failure, failure_state)
            actions = plan(mitigation, kg, view)
            mitigated = outcomes["mitigated"] = eng.evaluate(apply_actions(failure_state, actions))
            rows["mitigated"] = self._row(kg, scenario.id, "mitigated", base, mitigated, failure, watch, model)
            mitigation_info = {"strategy": mitigation, "actions": actions, "view": view.summary(),
                               "notes": outlook(kg, view, actions)}
        return ScenarioResult(scenario_id=scenario.id, twin=self.name, rows=rows, timeline=timeline,
                              mitigation=mitigation_info, modelled=MODELLED, not_modelled=NOT_MODELLED,
                              sla=judge(kg, {ph: {f: x for f, x in flow_samples(o, len(kg.flows)).items()
                                                  if f in names}
                                             for ph, o in outcomes.items()},
                                        coverage="" if monitored is None else "the monitored flows"),
                              meta={"elapsed_s": round(time.perf_counter() - t0, 6),
                                    "monitored_flows": int(watch.sum()),
                                    "reroute_model": {"detection_ms": model.detection_ms,
                                                      "computation_ms": model.computation_ms,
                                                      "install_per_switch_ms": model.install_per_switch_ms,
                                                      "switches": len(kg.routers), "source": model.source},
                                    "ecmp_split_flows": ecmp_split_flows(failure, len(kg.flows)),
                                    "induced_links": [list(x) for x in failure.induced_links],
                                    "induced_routers": [list(x) for x in failure.induced_routers]})

    def _row(self, kg: KnowledgeGraph, sid: str, phase: str, base: Outcome, out: Outcome, before: Outcome,
             watch: np.ndarray, model: RerouteModel) -> KPIRow:
        n = len(kg.flows)
        ids = out.demand_ids[:n]
        reach = out.reachable[:n]
        lat = out.latency_ms[:n][reach & watch]
        impacted = impacted_nodes(kg, out, self._engines[id(kg)][2], watch)
        reroute = []
        if phase != "baseline":
            changed = np.nonzero(reach & watch & _route_changed(before, out, n))[0]
            for i in changed:
                reroute.append(model.time_ms(len(out.paths(ids[i])) + 1))
        live = ~out.link_failed
        util = out.link_utilisation[live]
        congested = sorted(l for l, u, ok in zip(out.link_ids, out.link_utilisation, live)
                           if ok and u >= CONGESTION_THRESHOLD)
        return KPIRow(
            scenario_id=sid, twin=self.name, phase=phase,
            latency_ms_mean=_num(lat.mean()) if lat.size else None,
            latency_ms_p95=_num(np.percentile(lat, 95)) if lat.size else None,
            loss_pct=loss_pct(out, n),
            reroute_time_ms_max=max(reroute) if reroute else 0.0,
            reroute_time_ms_mean=round(sum(reroute) / len(reroute), 6) if reroute else 0.0,
            max_link_util=_num(util.max()) if util.size else 0.0,
            congested_links=len(congested), congested_link_names=congested,
            impacted_nodes=len(impacted), impacted_node_names=sorted(impacted),
            unreachable_pairs=int((~reach & watch).sum()),
            cascade_depth=int(out.cascade_rounds),
        )


def _watched(kg: KnowledgeGraph, base: Outcome, monitored: list[str] | None) -> np.ndarray:
    """Per KG flow (engine order): is it monitored; unknown names are refused."""
    ids = base.demand_ids[:len(kg.flows)]
    if monitored is None:
        return np.ones(len(ids), dtype=bool)
    unknown = sorted(set(monitored) - set(ids))
    if unknown:
        raise ConfigError(f"monitored flows not in the knowledge graph {kg.name}: {', '.join(unknown[:5])}"
                          + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""))
    return np.isin(np.asarray(ids, dtype=object), list(monitored))


def baseline_latency_ms(kg: KnowledgeGraph) -> dict[str, float]:
    """Per KG flow: its latency (ms) on the healthy network, as the flow twin computes it."""
    with FlowTwin() as twin:
        base = twin.engine(kg).baseline
    n = len(kg.flows)
    return {f: float(x) for f, x, ok in zip(base.demand_ids[:n], base.latency_ms[:n], base.reachable[:n]) if ok}


def lost_mbps(out: Outcome, n: int) -> float:
    """Traffic of the first ``n`` (monitored) demands that is not delivered, Mbit/s."""
    return float((out.offered_mbps[:n] * out.loss_fraction[:n]).sum())


def loss_pct(out: Outcome, n: int) -> float:
    """Lost over offered traffic of the first ``n`` (monitored) demands, percent."""
    total = float(out.offered_mbps[:n].sum())
    return round(100 * lost_mbps(out, n) / total, 6) if total else 0.0


def flow_samples(out: Outcome, n: int) -> dict[str, FlowSample]:
    """Per monitored flow (the first ``n`` demands): its latency, loss and reachability in
    ``out``, for :func:`harness.twin.sla.judge` (every flow is measured)."""
    lat, loss, reach = out.latency_ms[:n].tolist(), (out.loss_fraction[:n] * 100).tolist(), out.reachable[:n].tolist()
    return {f: FlowSample(lat[i] if reach[i] else None, loss[i], reach[i]) for i, f in enumerate(out.demand_ids[:n])}


def sla_bounds(kg: KnowledgeGraph, flows) -> tuple[np.ndarray, np.ndarray]:
    """Per flow (in the order given): its service's loss bound (%) and latency bound (ms)."""
    slas = [kg.attrs("service", kg.attrs("flow", f)["service"]) for f in flows]
    return (np.array([s["sla_loss_pct"] for s in slas], dtype=float),
            np.array([s["sla_latency_ms"] for s in slas], dtype=float))


#: id(kg) -> (kg, demand ids, router names, src index, dst index) of the monitored flows
_ENDPOINTS: dict[int, tuple] = {}


def _endpoints(kg: KnowledgeGraph, ids) -> tuple[list[str], np.ndarray, np.ndarray]:
    hit = _ENDPOINTS.get(id(kg))
    if hit is None or hit[0] is not kg or hit[1] != ids:
        routers = list(kg.routers)
        index = {r: i for i, r in enumerate(routers)}
        attrs = [kg.attrs("flow", f) for f in ids]
        src = np.array([index[a["src"]] for a in attrs], dtype=np.intp)
        dst = np.array([index[a["dst"]] for a in attrs], dtype=np.intp)
        if len(_ENDPOINTS) >= 8:
            _ENDPOINTS.pop(next(iter(_ENDPOINTS)))
        hit = _ENDPOINTS[id(kg)] = (kg, ids, routers, src, dst)
    return hit[2], hit[3], hit[4]


def impacted_nodes(kg: KnowledgeGraph, out: Outcome, bounds: tuple[np.ndarray, np.ndarray],
                   watch: np.ndarray | None = None) -> set[str]:
    """The shared impacted-node rule (:func:`harness.twin.kpi.impacted_routers`) on an engine
    outcome: a monitored flow is broken when unreachable or outside its service's SLA;
    ``bounds`` from :func:`sla_bounds` over the KG flows, ``watch`` the monitored ones (all
    by default). The same rule, counted with arrays (the sweep calls it once per failure
    set: on as:5000, 9,854 times)."""
    n = len(kg.flows)
    loss_sla, latency_sla = bounds
    with np.errstate(invalid="ignore"):
        broken = (~out.reachable[:n] | (out.loss_fraction[:n] * 100 > loss_sla + EXACT_SLACK)
                  | (out.latency_ms[:n] > latency_sla + EXACT_SLACK))
    routers, src, dst = _endpoints(kg, tuple(out.demand_ids[:n]))
    m = len(routers)
    w = np.ones(n) if watch is None else watch.astype(float)
    total = np.bincount(src, weights=w, minlength=m) + np.bincount(dst, weights=w, minlength=m)
    bad = np.bincount(src, weights=broken * w, minlength=m) + np.bincount(dst, weights=broken * w, minlength=m)
    return set(out.failed_routers) | {routers[i] for i in np.flatnonzero(bad * 2 > total)}


def ecmp_split_flows(out: Outcome, n: int) -> int:
    """How many of the first ``n`` (monitored) flows are split over equal-cost paths."""
    coo = out._fractions[:n, : out._n_arcs].tocoo()
    return int(np.unique(coo.row[(coo.data > 1e-9) & (coo.data < 1 - 1e-9)]).size)


def _route_changed(before: Outcome, after: Outcome, n: int) -> np.ndarray:
    """Per monitored flow: does its route (links and split) differ between two outcomes?"""
    a, b = before._fractions[:n, : before._n_arcs], after._fractions[:n, : after._n_arcs]
    diff = abs(a - b)
    return np.asarray(diff.max(axis=1).todense()).ravel() > 1e-9


def _num(x) -> float:
    return round(float(x), 6)


# --------------------------------------------------------------------------- events -> state

def state_for(kg: KnowledgeGraph, events: list[Event], at: float) -> NetState:
    """The engine state after ``events`` at time ``at`` (ended events no longer count).

    Each event's :class:`~harness.scenario.events.base.Effect` comes from its type; later
    events override an element's loss and link capacity, the lowest router capacity wins."""
    failed_links: set[str] = set()
    failed_routers: set[str] = set()
    cap_factor: dict[str, float] = {}
    loss: dict[str, float] = {}
    router_factor: dict[str, float] = {}
    extra: list[Demand] = []
    blackhole: dict = {}
    wrong: dict = {}
    for i, e in enumerate(events):
        if e.end() <= at:
            continue
        eff = event_types.effect_of(kg, e, i)
        failed_links |= eff.links_down
        failed_routers |= eff.routers_down
        for r, f in eff.router_capacity.items():
            router_factor[r] = min(router_factor.get(r, 1.0), f)
        loss.update({l: pct / 100.0 for l, pct in eff.link_loss_pct.items()})
        cap_factor.update(eff.link_capacity)
        extra += [Demand(t.src, t.dst, t.mbps, t.id) for t in eff.traffic]
        for m in eff.misroutes:
            if m.next_hop is None:
                blackhole[m.router] = m.destinations
            else:
                wrong[m.router] = (m.destinations, m.next_hop)
    return NetState(failed_links=frozenset(failed_links), failed_routers=frozenset(failed_routers),
                    link_capacity_factor=cap_factor, link_loss=loss, router_capacity_factor=router_factor,
                    extra_demands=tuple(extra), blackhole=blackhole, wrong_next_hop=wrong)


def failure_view(kg: KnowledgeGraph, base: Outcome, out: Outcome, state: NetState) -> FailureView:
    """What an operator's monitoring would see of ``out`` (the failure state), in the
    emulation's terms: port status (failed links and routers, induced ones included), port
    counters (per-link load, utilisation, drops), per-router forwarding drops, each router's
    hosts' sending rate now and in the baseline ``base`` (ingress counters), and the
    forwarding entries of ``state`` that differ from the IGP's (a configuration audit).
    Nothing here says which event caused what."""
    live = ~out.link_failed
    n = len(kg.flows)
    srcs = [kg.attrs("flow", f)["src"] for f in out.demand_ids[:n]] + [d.src for d in state.extra_demands]

    def per_source(o: Outcome, k: int) -> dict[str, float]:
        rates: dict[str, float] = {}
        for r, x in zip(srcs[:k], o.offered_mbps[:k].tolist()):
            rates[r] = rates.get(r, 0.0) + x
        return rates

    drift: dict[str, list[str]] = {}
    for r, dsts in state.blackhole.items():
        drift.setdefault(r, []).append(f"drops traffic for {'every destination' if dsts is None else ', '.join(sorted(dsts))}")
    for r, (dsts, via) in state.wrong_next_hop.items():
        drift.setdefault(r, []).append(
            f"sends traffic for {'every destination' if dsts is None else ', '.join(sorted(dsts))} to {via}")
    return FailureView(
        failed_links=set(out.failed_links), failed_routers=set(out.failed_routers),
        link_utilisation={l: float(u) for l, u, ok in zip(out.link_ids, out.link_utilisation, live) if ok},
        link_load_mbps={l: float(x) for l, x, ok in zip(out.link_ids, out.link_load_mbps, live) if ok},
        link_capacity_mbps={l: float(x) for l, x in zip(out.link_ids, out.link_capacity_mbps)},
        link_loss_pct={l: 100.0 * float(x) for l, x, ok in zip(out.link_ids, out.link_loss, live) if ok and x > 0},
        router_drop_pct={r: 100.0 * float(x) for r, x, dead in zip(out.router_ids, out.router_loss, out.router_failed)
                         if x > 0 and not dead},
        source_mbps=per_source(out, len(srcs)), source_baseline_mbps=per_source(base, n),
        forwarding_drift=drift,
    )


def apply_actions(state: NetState, actions: list[dict]) -> NetState:
    """The engine state with mitigation actions applied (failed elements stay failed)."""
    avoid = set(state.avoid_links)
    load_aware = state.load_aware
    limits = dict(state.rate_limit)
    extra_cap = dict(state.extra_capacity)
    blackhole, wrong = dict(state.blackhole), dict(state.wrong_next_hop)
    for a in actions:
        kind = a["action"]
        if kind == "reroute":
            avoid |= set(a.get("avoid_links", ()))
            load_aware = load_aware or bool(a.get("load_aware"))
        elif kind == "rate_limit":
            limits[a["router"]] = min(limits.get(a["router"], math.inf), float(a["mbps"]))
        elif kind == "add_capacity":
            extra_cap[a["link"]] = extra_cap.get(a["link"], 0.0) + float(a["mbps"])
        elif kind == "rollback":
            blackhole.pop(a["router"], None)
            wrong.pop(a["router"], None)
        else:
            raise ConfigError(f"unknown mitigation action {kind!r}")
    return replace(state, avoid_links=frozenset(avoid), load_aware=load_aware, rate_limit=limits,
                   extra_capacity=extra_cap, blackhole=blackhole, wrong_next_hop=wrong)
