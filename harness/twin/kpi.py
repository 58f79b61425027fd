"""The KPI record both twins produce, so their results compare row by row.

A :class:`ScenarioResult` holds one :class:`KPIRow` per phase — ``baseline`` (no events),
``failure`` (after all events, before mitigation), ``mitigated`` (after the mitigation) —
plus a per-event timeline, the mitigation actions applied, what the twin did and did not
model, and one :class:`SLAVerdict` per knowledge-graph service, SLA metric and phase
(:mod:`harness.twin.sla`). A KPI that a twin did not measure is ``None``, never a made-up number.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Phase = Literal["baseline", "failure", "mitigated"]
PHASES: tuple[str, ...] = ("baseline", "failure", "mitigated")
#: KPIs where lower is better, in the order reports show them.
KPIS: tuple[str, ...] = (
    "latency_ms_mean", "latency_ms_p95", "loss_pct", "reroute_time_ms_max", "reroute_time_ms_mean",
    "max_link_util", "congested_links", "impacted_nodes", "unreachable_pairs", "cascade_depth",
)
#: KPIs :meth:`ScenarioResult.effectiveness` does not score: each phase's reroute time
#: measures that phase's own trigger (the events, then the mitigation), so the two do not compare.
NOT_SCORED: frozenset[str] = frozenset({"reroute_time_ms_max", "reroute_time_ms_mean"})
from harness.monitoring import CONGESTION_THRESHOLD  # noqa: E402,F401 (part of the KPI record)


def impacted_routers(kg, broken: dict[str, bool], failed_routers=()) -> set[str]:
    """The impacted-node rule both twins share.

    A router is impacted when it has failed, or when more than half of the monitored flows
    it sends or receives are broken (unreachable, or outside their service's SLA).
    ``broken`` maps flow names to whether that flow is broken; flows not in it are not
    monitored. A bridge cut thus impacts exactly the smaller side it cuts off.
    """
    total: dict[str, int] = {}
    bad: dict[str, int] = {}
    for f, is_broken in broken.items():
        a = kg.attrs("flow", f)
        for r in (a["src"], a["dst"]):
            total[r] = total.get(r, 0) + 1
            bad[r] = bad.get(r, 0) + int(is_broken)
    return set(failed_routers) | {r for r, n in total.items() if bad[r] * 2 > n}


class KPIRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario_id: str
    twin: str
    phase: Phase
    latency_ms_mean: float | None = None
    latency_ms_p95: float | None = None
    loss_pct: float | None = None
    reroute_time_ms_max: float | None = None
    reroute_time_ms_mean: float | None = None
    max_link_util: float | None = None
    congested_links: int | None = None
    congested_link_names: list[str] = Field(default_factory=list)
    impacted_nodes: int | None = None
    impacted_node_names: list[str] = Field(default_factory=list)
    unreachable_pairs: int | None = None
    cascade_depth: int | None = None

    def kpis(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in KPIS}


#: The SLA metrics a service bounds: one-way latency (ms) and loss (%), the knowledge graph's
#: ``sla_latency_ms`` and ``sla_loss_pct`` (in :class:`harness.twin.sla.FlowSample`'s field order).
SLA_METRICS: tuple[str, ...] = ("latency_ms", "loss_pct")


class SLAVerdict(BaseModel):
    """One service's SLA bound on one metric, judged on one phase (see :mod:`harness.twin.sla`).

    ``violated`` is ``None`` when the twin did not measure the metric (``note`` says why).
    ``worst`` is the largest value measured on the service's flows (an unreachable flow has no
    latency; its measured loss counts) and ``excess`` = ``worst - bound`` (> 0: over the bound
    by that much; <= 0: headroom).
    ``flows`` are the violating flows, unreachable ones first, then worst first;
    ``unreachable`` of them had no route (an unreachable flow violates every bound).
    ``measured`` of the service's ``total`` flows were measured in the phase.
    """

    model_config = ConfigDict(extra="forbid")

    service: str
    phase: Phase
    metric: Literal["latency_ms", "loss_pct"]
    bound: float
    violated: bool | None
    worst: float | None = None
    excess: float | None = None
    flows: list[str] = Field(default_factory=list)
    unreachable: int = 0
    measured: int = 0
    total: int = 0
    note: str = ""


class ScenarioResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario_id: str
    twin: str
    rows: dict[Phase, KPIRow]
    timeline: list[dict[str, Any]] = Field(default_factory=list)
    mitigation: dict[str, Any] = Field(default_factory=dict)   # strategy and actions
    modelled: list[str] = Field(default_factory=list)
    not_modelled: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    #: per service, SLA metric and phase; empty in results written before verdicts existed
    sla: list[SLAVerdict] = Field(default_factory=list)

    def row(self, phase: str) -> KPIRow:
        return self.rows[phase]  # type: ignore[index]

    def effectiveness(self) -> dict[str, float | None]:
        """Relative improvement of ``mitigated`` over ``failure`` per KPI (the paper's measure).

        ``(failure - mitigated) / |failure|``: 1 = fully repaired, 0 = unchanged, negative =
        worse; ``-1`` when a KPI that was 0 became worse. ``None`` (n/a) where there is no
        improvement to measure: either value missing, no mitigated phase, nothing to repair
        (0 in both phases), and always for the reroute times (:data:`NOT_SCORED`): the
        mitigated phase's reroute time is the reroute the mitigation itself triggers, not
        a repair of the failure's — a mitigation that changed nothing would otherwise score
        1.0 on it.
        """
        if "mitigated" not in self.rows or "failure" not in self.rows:
            return {k: None for k in KPIS}
        f, m = self.rows["failure"].kpis(), self.rows["mitigated"].kpis()
        out: dict[str, float | None] = {}
        for k in KPIS:
            if k in NOT_SCORED or f[k] is None or m[k] is None or f[k] == m[k] == 0:
                out[k] = None
            elif f[k] == 0:
                out[k] = -1.0
            else:
                out[k] = (f[k] - m[k]) / abs(f[k])
        return out

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> "ScenarioResult":
        return cls.model_validate(json.loads(text))

    def long_rows(self) -> list[dict[str, Any]]:
        """Long format: one ``(scenario_id, twin, phase, kpi, value)`` record per KPI."""
        return [{"scenario_id": self.scenario_id, "twin": self.twin, "phase": phase, "kpi": k, "value": v}
                for phase, row in self.rows.items() for k, v in row.kpis().items()]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.long_rows(), columns=["scenario_id", "twin", "phase", "kpi", "value"])
