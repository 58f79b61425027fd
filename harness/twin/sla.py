"""SLA verdicts: every knowledge-graph service's SLA judged per phase, from per-flow samples.

Chaos Toolkit's steady-state hypothesis, for networks: each service of the knowledge graph
bounds its flows' one-way latency (``sla_latency_ms``) and loss (``sla_loss_pct``); a twin
records what it measured of each flow in each phase as :class:`FlowSample` (both twins, the
same shape), and :func:`judge` turns those samples into one
:class:`~harness.twin.kpi.SLAVerdict` per service, metric and phase. A flow violates a bound
when its value is above it (the flow twin's impacted-node rule uses the same comparison; a
loss measured on a count of packets only when it is above beyond sampling error, as the
emulation's impacted-node rule judges it), and an unreachable flow violates every bound. ``ani run --fail-on sla`` (and a campaign's
``fail_on: [sla]``) fail when a verdict of the *steady* phase — :func:`steady_phase`: the
mitigated phase, or the failure phase when no mitigation ran — is violated.

Engines take data and return data: nothing here reads a twin or prints.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, NamedTuple

from harness.errors import KnowledgeGraphError
from harness.kg.model import KnowledgeGraph
from harness.twin.kpi import PHASES, SLA_METRICS, ScenarioResult, SLAVerdict


class FlowSample(NamedTuple):
    """What a twin measured of one flow in one phase.

    ``latency_ms``: one-way latency (``None``: not measured, or no route); ``loss_pct``: the
    flow's loss (``None``: not measured); ``reachable``: the flow had a route (the twin's own
    reachability rule); ``loss_packets``: how many packets a *measured* loss is the share of
    (``None``: an exact figure, as the flow twin computes) — then the loss is over its bound
    only beyond sampling error (:func:`loss_exceeds`)."""

    latency_ms: float | None
    loss_pct: float | None
    reachable: bool
    loss_packets: int | None = None

    def loss_over(self, bound_pct: float) -> bool:
        """The loss is above ``bound_pct`` — a measured one (``loss_packets`` given) beyond
        sampling error (:func:`loss_exceeds`); no loss figure is never over."""
        if self.loss_pct is None:
            return False
        if self.loss_packets is None:
            return self.loss_pct > bound_pct + EXACT_SLACK
        return loss_exceeds(round(self.loss_pct * self.loss_packets / 100.0), self.loss_packets, bound_pct)


#: An exact figure (the flow twin's) this close above its bound is *at* it: computed in floating
#: point, a 5 % link loss is 100 * (1 - 0.95) = 5.000000000000004 %, which is not over a 5 % SLA.
EXACT_SLACK = 1e-9

#: z of the one-sided 97.5 % bound :func:`loss_exceeds` uses.
LOSS_CONFIDENCE_Z = 1.96


def loss_exceeds(lost: int, n: int, bound_pct: float, z: float = LOSS_CONFIDENCE_Z) -> bool:
    """Whether ``lost`` of ``n`` packets is a loss above ``bound_pct`` beyond sampling error:
    the Wilson score interval's lower end (one-sided 97.5 %) is above the bound.

    A window holds tens of packets of a small flow (20 at the background floor in 2 s), where
    one lost packet is 5 %: judged on the raw share, a flow on a link losing exactly its
    service's bound (1 % for voice) was "broken" in about one window in five. With the bound:
    1 of 20 lost is not above 1 %, 2 of 20 are (lower end 2.8 %); 100 % loss always is.
    """
    if n <= 0 or lost <= 0:
        return False
    p = lost / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return 100.0 * (centre - margin) / (1 + z2 / n) > bound_pct


#: per phase, per flow name: its sample; flows a twin did not measure are absent
Samples = Mapping[str, Mapping[str, FlowSample]]


def judge(kg: KnowledgeGraph, samples: Samples, *, not_measured: Mapping[str, str] | None = None,
          coverage: str = "") -> list[SLAVerdict]:
    """The SLA verdicts of every service in ``kg`` for every phase in ``samples``.

    Parameters
    ----------
    kg : KnowledgeGraph
        Its ``service`` nodes give the bounds (``sla_latency_ms``, ``sla_loss_pct``) and the
        member flows.
    samples : mapping
        ``{phase: {flow: FlowSample}}``; a flow missing from a phase was not measured there.
    not_measured : mapping, optional
        ``{metric: reason}`` for a metric the twin does not measure at all: its verdicts are
        ``violated=None`` with the reason as their note.
    coverage : str
        What the measured flows are when they are not all of a service's flows (e.g. "the
        monitored sample"), added to the note of such verdicts.

    Raises
    ------
    KnowledgeGraphError
        A service lacks an SLA bound or names a flow the graph does not have.
    """
    not_measured = dict(not_measured or {})
    services = []
    for service in sorted(kg.names("service")):
        attrs = kg.attrs("service", service)
        members = list(attrs.get("flows", ()))
        for f in members:
            if not kg.has("flow", f):
                raise KnowledgeGraphError(f"service {service!r} names flow {f!r}, which is not in the graph")
        for metric in SLA_METRICS:
            if f"sla_{metric}" not in attrs:
                raise KnowledgeGraphError(f"service {service!r} has no sla_{metric} bound")
        services.append((service, attrs, members))
    out: list[SLAVerdict] = []
    for phase in (p for p in PHASES if p in samples):
        got = samples[phase]
        for service, attrs, members in services:
            measured = [(f, got[f]) for f in members if f in got]
            for metric in SLA_METRICS:
                out.append(_verdict(service, phase, metric, float(attrs[f"sla_{metric}"]), measured,
                                    len(members), not_measured.get(metric), coverage))
    return out


def _verdict(service: str, phase: str, metric: str, bound: float, measured: list[tuple[str, FlowSample]],
             total: int, reason: str | None, coverage: str) -> SLAVerdict:
    base = dict(service=service, phase=phase, metric=metric, bound=bound, total=total)
    if reason is not None:
        return SLAVerdict(**base, violated=None, note=reason)
    k = SLA_METRICS.index(metric)          # FlowSample's field of the metric
    unreachable = sorted(f for f, s in measured if not s.reachable)
    values = [(f, float(s[k])) for f, s in measured if s[k] is not None]
    counted = len(measured) - sum(1 for _, s in measured if s.reachable and s[k] is None)
    if not counted:
        return SLAVerdict(**base, violated=None, note=f"none of the service's {total} flows was measured")
    sample = dict(measured)
    over = sorted(((f, v) for f, v in values
                   if (sample[f].loss_over(bound) if metric == "loss_pct" else v > bound + EXACT_SLACK)),
                  key=lambda x: (-x[1], x[0]))
    cut_off = set(unreachable)
    worst = max((v for _, v in values), default=None)
    notes = []
    if counted < total:
        notes.append(f"{counted} of {total} flows measured" + (f" ({coverage})" if coverage else ""))
    return SLAVerdict(**base, violated=bool(unreachable or over),
                      worst=None if worst is None else round(worst, 6),
                      excess=None if worst is None else round(worst - bound, 6),
                      flows=unreachable + [f for f, _ in over if f not in cut_off], unreachable=len(unreachable),
                      measured=counted, note="; ".join(notes))


def steady_phase(result: ScenarioResult) -> str:
    """The phase whose SLA is the steady-state hypothesis: ``mitigated`` when a mitigation
    ran, else ``failure``."""
    return "mitigated" if "mitigated" in result.rows else "failure"


def violations(result: ScenarioResult, phase: str | None = None) -> list[SLAVerdict]:
    """The violated verdicts of ``phase`` (default :func:`steady_phase`) in ``result``."""
    phase = phase or steady_phase(result)
    return [v for v in result.sla if v.phase == phase and v.violated]


def summary(verdicts: Iterable[SLAVerdict], max_flows: int = 3) -> str:
    """One line per verdict, for messages, e.g. ``voice loss_pct > 1: 30 flows, 2 unreachable,
    worst 100 (+99): a~b, c~d, e~f, … 27 more``."""
    lines = []
    for v in verdicts:
        parts = [f"{len(v.flows)} flows"]
        if v.unreachable:
            parts.append(f"{v.unreachable} unreachable")
        if v.excess is not None and v.excess > 0:
            parts.append(f"worst {_g(v.worst)} ({_signed(v.excess)})")
        names = ", ".join(v.flows[:max_flows]) + (f", … {len(v.flows) - max_flows} more" if len(v.flows) > max_flows else "")
        lines.append(f"{v.service} {v.metric} > {_g(v.bound)}: {', '.join(parts)}: {names}")
    return "\n".join(lines)


def _g(x: float) -> str:
    return f"{x:.4g}"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.4g}"
