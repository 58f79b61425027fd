"""The report's content as plain data: columns with units, worst-scenario ranking, what each
scenario broke and whom it hurt, mitigation effects, rejected proposals per arm.

Nothing here draws or writes HTML; :mod:`.html` renders these records and :mod:`.figures`
draws them, so the ranking and the wording are tested without a browser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.scenario import types as event_types
from harness.scenario.model import Scenario
from harness.twin.kpi import KPIS, NOT_SCORED, ScenarioResult


@dataclass(frozen=True)
class Column:
    """A table column: the record key, a header for people, its unit and its precision."""

    key: str
    header: str
    unit: str | None = None
    decimals: int | None = None   # None: text

    @property
    def title(self) -> str:
        return f"{self.header} ({self.unit})" if self.unit else self.header

    def fmt(self, value) -> str:
        return fmt(value, self.decimals)


#: The KPIs for people: header, unit, precision (counts are whole numbers per scenario).
KPI_COLUMNS: dict[str, Column] = {c.key: c for c in (
    Column("latency_ms_mean", "Mean latency", "ms", 2),
    Column("latency_ms_p95", "p95 latency", "ms", 2),
    Column("loss_pct", "Lost traffic", "%", 2),
    Column("reroute_time_ms_max", "Max reroute time", "ms", 1),
    Column("reroute_time_ms_mean", "Mean reroute time", "ms", 1),
    Column("max_link_util", "Max link utilisation", "share of capacity", 2),
    Column("congested_links", "Congested links", None, 0),
    Column("impacted_nodes", "Impacted nodes", None, 0),
    Column("unreachable_pairs", "Unreachable pairs", None, 0),
    Column("cascade_depth", "Cascade depth", "rounds", 0),
)}
assert tuple(KPI_COLUMNS) == KPIS


def kpi_column(key: str, *, mean: bool = False, suffix: str = "", prefix: str = "") -> Column:
    """A KPI's column; ``mean=True`` for a mean over scenarios (counts get one decimal)."""
    c = KPI_COLUMNS[key]
    dec = 1 if mean and c.decimals == 0 else c.decimals
    return Column(key, (prefix + c.header[0].lower() + c.header[1:] if prefix else c.header) + suffix, c.unit, dec)


def fmt(value, decimals: int | None) -> str:
    """One number as the report shows it: fixed precision per column, ``n/a`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if decimals is None:
        return str(value)
    return f"{float(value):,.{decimals}f}"


# ---------------------------------------------------------------------------- what broke
def failure_elements(kg, scenario: Scenario, res: ScenarioResult | None) -> dict[str, list[str]]:
    """What a scenario took down, degraded and congested, in the failure phase (plain data).

    ``failed_links``/``failed_routers``: taken down by the events (their types' effects at the
    last event's time, as the flow twin applies them); ``cascade_links``/``cascade_routers``:
    failed by the cascade on the twin that produced ``res``, in order; ``down_links``: every
    link that carries nothing (failed, or an end router failed); ``degraded_links``/
    ``degraded_routers``: lossy, narrowed, slowed or misrouting elements;
    ``congested_links``/``impacted_nodes``: ``res``'s failure row.
    """
    from harness.twin.flow.twin import state_for

    state = state_for(kg, scenario.events, at=scenario.events[-1].timestamp)
    meta = res.meta if res else {}
    cascade_links = [x for rnd in meta.get("induced_links") or [] for x in rnd]
    cascade_routers = [x for rnd in meta.get("induced_routers") or [] for x in rnd]
    routers = set(state.failed_routers) | set(cascade_routers)
    down = set(state.failed_links) | set(cascade_links) | {
        l for l in kg.links if set(kg.link_ends(l)) & routers}
    misrouting = set(state.blackhole) | set(state.wrong_next_hop)
    row = res.row("failure") if res else None
    return {
        "failed_links": sorted(state.failed_links),
        "failed_routers": sorted(state.failed_routers),
        "cascade_links": cascade_links,
        "cascade_routers": cascade_routers,
        "down_links": sorted(down),
        "degraded_links": sorted((set(state.link_loss) | set(state.link_capacity_factor)) - down),
        "degraded_routers": sorted((set(state.router_capacity_factor) | misrouting) - routers),
        "congested_links": list(row.congested_link_names) if row else [],
        "impacted_nodes": list(row.impacted_node_names) if row else [],
    }


def services_hit(kg, links, routers) -> dict[str, tuple[int, int]]:
    """Per service: how many of its flows are routed (baseline paths, from the knowledge graph)
    over any of ``links`` or ``routers``, and how many flows it has."""
    links, routers = set(links), set(routers)
    out: dict[str, list[int]] = {}
    for f in kg.flows:
        a = kg.attrs("flow", f)
        s = a.get("service") or "unassigned"
        hit = bool(set(a.get("links") or ()) & links or set(a.get("path") or ()) & routers)
        cell = out.setdefault(s, [0, 0])
        cell[0] += hit
        cell[1] += 1
    return {s: (h, n) for s, (h, n) in sorted(out.items())}


def event_text(e) -> str:
    return f"{event_types.get(e.event_type).label} on {e.target}"


def why(kg, scenario: Scenario, flow: ScenarioResult | None) -> dict:
    """Why a scenario hurts: events, failed, degraded and congested elements, services hit,
    cascade — each as short phrases (plain data: ``{"events", "failed", "degraded",
    "congested", "services", "cascade"}``, lists of strings, empty when there is nothing to
    say)."""
    el = failure_elements(kg, scenario, flow)
    failed = []
    if el["failed_links"]:
        failed.append(f"links {', '.join(el['failed_links'])}")
    if el["failed_routers"]:
        failed.append(f"routers {', '.join(el['failed_routers'])}")
    cascade = []
    if flow is not None and flow.row("failure").cascade_depth:
        rounds = [[*ls, *rs] for ls, rs in zip(flow.meta.get("induced_links") or [],
                                                flow.meta.get("induced_routers") or [])]
        cascade.append(f"depth {flow.row('failure').cascade_depth}: "
                       + "; then ".join(", ".join(r) for r in rounds if r))
    hit = services_hit(kg, el["down_links"] + el["congested_links"] + el["degraded_links"],
                       el["failed_routers"] + el["cascade_routers"] + el["degraded_routers"])
    return {"events": [event_text(e) for e in scenario.events], "failed": failed,
            "degraded": el["degraded_links"] + el["degraded_routers"], "congested": list(el["congested_links"]),
            "services": [f"{s} {h} of {n} flows" for s, (h, n) in hit.items() if h],
            "cascade": cascade}


# ---------------------------------------------------------------------------- ranking
def rank_worst(rows: list[dict]) -> list[dict]:
    """Scenarios worst first: lost traffic, then impacted nodes, then unreachable pairs (flow
    twin, failure phase); ties broken by id so the order is stable. Rows need ``scenario_id``,
    ``loss_pct``, ``impacted_nodes``, ``unreachable_pairs``; each returned row gets ``rank``."""
    order = sorted(rows, key=lambda r: (-(r.get("loss_pct") or 0.0), -(r.get("impacted_nodes") or 0),
                                        -(r.get("unreachable_pairs") or 0), r["scenario_id"]))
    return [{**r, "rank": i + 1} for i, r in enumerate(order)]


# ---------------------------------------------------------------------------- mitigation
def mitigation_effect(res: ScenarioResult) -> dict:
    """A run's mitigation in words and numbers: ``strategy``, ``actions`` (phrases), ``notes``
    (why no action can help, from the planner), ``rows`` (KPI, failure, mitigated,
    effectiveness; n/a where :meth:`~ScenarioResult.effectiveness` does not score) and a
    one-line ``verdict``."""
    mit = res.mitigation or {}
    applied = mit.get("applied") or []
    actions = [a.get("done") for a in applied if a.get("done")] or [action_text(a) for a in mit.get("actions") or []]
    out = {"strategy": mit.get("strategy"), "actions": actions, "notes": list(mit.get("notes") or []), "rows": []}
    if "mitigated" not in res.rows:
        out["verdict"] = "No mitigation was run."
        return out
    eff = res.effectiveness()
    f, m = res.row("failure").kpis(), res.row("mitigated").kpis()
    changed = []
    for k in KPIS:
        out["rows"].append({"kpi": KPI_COLUMNS[k].title, "failure": f[k], "mitigated": m[k],
                            "effectiveness": eff[k], "decimals": KPI_COLUMNS[k].decimals,
                            "note": "not scored: this phase's reroute is the mitigation's own" if k in NOT_SCORED
                            else ""})
        if k not in NOT_SCORED and f[k] is not None and m[k] is not None and f[k] != m[k]:
            c = KPI_COLUMNS[k]
            changed.append(f"{c.header.lower()} {fmt(f[k], c.decimals)} → {fmt(m[k], c.decimals)}"
                           + (f" {c.unit}" if c.unit else ""))
    if not mit.get("actions"):
        out["verdict"] = "No action was taken."
    elif not changed:
        out["verdict"] = "The actions changed no KPI."
    else:
        out["verdict"] = "Changed: " + "; ".join(changed) + "."
    return out


def action_text(a: dict) -> str:
    """A planned action as a phrase: its name and its non-empty parameters."""
    params = params_text({k: v for k, v in a.items() if k != "action"})
    return str(a.get("action", "?")).replace("_", " ") + (f" ({params})" if params else "")


def params_text(params: dict) -> str:
    """Parameters as a phrase: ``flag`` for true flags, numbers to 4 significant digits,
    lists joined; empty and false values left out."""
    def one(k, v):
        name = k.replace("_", " ")
        if v is True:
            return name
        if isinstance(v, float):
            return f"{name} {v:.4g}"
        return f"{name} {', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"

    return ", ".join(one(k, v) for k, v in params.items() if v not in (None, False, [], {}, ""))


# ---------------------------------------------------------------------------- fidelity
DISAGREEMENT_NAMES = {"impacted": "impacted nodes", "loss_pct": "lost traffic", "max_link_util": "max link utilisation",
                      "reroute_time": "reroute time", "cascade_depth": "cascade depth"}


def disagreement_text(keys: list[str]) -> str:
    """The figures :func:`harness.campaign.fidelity.disagreements` names, for people."""
    return ", ".join(DISAGREEMENT_NAMES.get(k, k.replace("_", " ")) for k in keys)


# ---------------------------------------------------------------------------- rejected
def rejected_by_arm(labels: list[str], rejected: list[dict], proposals: list[dict]) -> dict[str, list[dict]]:
    """Rejected proposals per generator arm: the validator's refusals (``rejected/``, each with
    its rule and reason) and model outputs that never became a scenario (a proposal record
    without an id, with the generator's reason). Rows: ``iteration``, ``scenario``, ``event``
    (1-based, or None), ``rule``, ``reason``."""
    out: dict[str, list[dict]] = {label: [] for label in labels}
    for r in rejected:
        reasons = r.get("reasons") or [{}]
        for why_ in reasons:
            idx = why_.get("index")
            out.setdefault(r["label"], []).append({
                "iteration": r["iteration"], "scenario": (r.get("scenario") or {}).get("id") or "—",
                "event": None if idx is None else idx + 1, "rule": why_.get("rule") or "?",
                "reason": why_.get("message") or "?"})
    for p in proposals:
        for rec in p.get("records") or []:
            if rec.get("id") is None:
                out.setdefault(p["label"], []).append({
                    "iteration": p["iteration"], "scenario": "—", "event": None, "rule": "unreadable",
                    "reason": rec.get("reason") or "the output was not a scenario"})
    return out
