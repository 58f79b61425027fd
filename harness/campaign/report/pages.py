"""One page per scenario: its events, what it broke (a map per twin), KPIs per phase on each
twin, the per-event timeline, the mitigation and its effect (or why no action can help),
and a warning when the twins disagree on it."""

from __future__ import annotations

from html import escape
from pathlib import Path

from harness.campaign.report import figures
from harness.campaign.report.data import (KPI_COLUMNS, Column, event_text, failure_elements, fmt,
                                          mitigation_effect, params_text, why, disagreement_text)
from harness.campaign.report.html import bullets, img_file, page, table, warn
from harness.fileio import atomic_write
from harness.scenario import types as event_types
from harness.scenario.model import Scenario
from harness.twin.kpi import KPIS

TWIN_NAMES = {"flow": "flow twin", "emulation": "emulation"}
EVENT_COLUMNS = [Column("n", "#", None, 0), Column("t", "Time", "s", 1), Column("type", "Event"),
                 Column("target", "Target"), Column("severity", "Severity"), Column("duration", "Duration", "s", 1),
                 Column("params", "Parameters")]
TIMELINE_KPIS = ("loss_pct", "latency_ms_mean", "max_link_util", "congested_links", "impacted_nodes",
                 "unreachable_pairs", "cascade_depth", "reroute_time_ms_max")


def scenario_href(sid: str) -> str:
    """The page of a scenario, relative to the report's index."""
    return f"scenarios/{sid}.html"


def twin_order(key: tuple[str, str]) -> tuple:
    return (key[0] != "flow", key[0], key[1] == "none", key[1])


def write_scenario_page(out: Path, kg, unit: dict, scenario: Scenario, runs: dict, fid: dict | None,
                        rank: int | None, main_mitigation: str) -> Path:
    """Write ``out/scenarios/<id>.html`` and its maps; ``runs`` maps ``(twin, mitigation)``
    to ``(meta, result)``, ``fid`` is the scenario's fidelity row (or None)."""
    sid = scenario.id
    folder = out / "scenarios"
    keys = sorted(runs, key=twin_order)
    parts = [f"<h1>Scenario {escape(sid)}</h1>",
             f"<p>{escape(scenario.description) or '<i>no description</i>'}</p>",
             f"<p class='muted'>Generator <b>{escape(unit['label'])}</b>, iteration {unit['iteration'] + 1}; "
             f"topology <code>{escape(scenario.topology)}</code>"
             + (f"; rank {rank} by lost traffic on the flow twin" if rank else "") + ".</p>"]
    parts += _fidelity(fid)

    parts.append("<h2 id='events'>Events</h2>")
    parts.append(table([{"n": i + 1, "t": e.timestamp, "type": event_types.get(e.event_type).label,
                         "target": e.target, "severity": e.severity, "duration": e.duration_s,
                         "params": params_text(e.params) or "—"}
                        for i, e in enumerate(scenario.events)], EVENT_COLUMNS))

    # the main run of each twin: the campaign's first mitigation, else whatever ran
    main: dict[str, tuple] = {}
    for twin, mit in keys:
        if twin not in main or mit == main_mitigation:
            main[twin] = runs[(twin, mit)]
    parts.append("<h2 id='impact'>What it broke</h2>")
    if "flow" in main:
        w = why(kg, scenario, main["flow"][1])
        items = [("Failed", w["failed"]), ("Degraded", [", ".join(w["degraded"])] if w["degraded"] else []),
                 ("Congested links", [", ".join(w["congested"])] if w["congested"] else []),
                 ("Cascade", w["cascade"]), ("Services with flows over failed or congested elements",
                                             w["services"])]
        parts.append(bullets([f"<b>{escape(k)}:</b> {escape('; '.join(v))}" for k, v in items if v])
                     or "<p>Nothing failed or congested on the flow twin.</p>")
    for twin, (meta, res) in sorted(main.items(), key=lambda kv: kv[0] != "flow"):
        marks = {**failure_elements(kg, scenario, res), "targets": [e.target for e in scenario.events]}
        name = f"{sid}.{twin}.png"
        title = f"{sid} on the {TWIN_NAMES.get(twin, twin)}, failure phase: " + "; ".join(
            event_text(e) for e in scenario.events)
        figures.network(kg, marks, title if len(title) < 160 else title[:157] + "…", folder / name)
        parts.append(f"<h3>Map, {escape(TWIN_NAMES.get(twin, twin))}</h3>" + img_file(name, f"map of {sid} ({twin})"))
        row = res.row("failure")
        parts.append(f"<p class='muted'>Impacted nodes ({len(row.impacted_node_names)}): "
                     f"{escape(', '.join(row.impacted_node_names) or 'none')}.</p>")

    parts.append("<h2 id='kpis'>KPIs per phase</h2>" + _kpi_table(runs, keys))

    parts.append("<h2 id='timeline'>Per-event timeline</h2>")
    for twin, (meta, res) in sorted(main.items(), key=lambda kv: kv[0] != "flow"):
        parts.append(f"<h3>{escape(TWIN_NAMES.get(twin, twin).capitalize())}</h3>" + _timeline(res))

    parts.append("<h2 id='mitigation'>Mitigation</h2>")
    shown = 0
    for twin, mit in keys:
        if mit == "none":
            continue
        shown += 1
        parts.append(_mitigation(TWIN_NAMES.get(twin, twin), runs[(twin, mit)][1]))
    if not shown:
        parts.append("<p>No mitigation was run on this scenario.</p>")

    notes = []
    for twin, (meta, res) in sorted(main.items(), key=lambda kv: kv[0] != "flow"):
        if res.not_modelled:
            notes.append(f"<b>{escape(TWIN_NAMES.get(twin, twin).capitalize())}</b> does not model: "
                         + escape("; ".join(res.not_modelled)) + ".")
    if notes:
        parts.append("<h2 id='modelled'>What the twins leave out</h2>" + "".join(f"<p>{n}</p>" for n in notes))
    path = folder / f"{sid}.html"
    atomic_write(path, page(f"ani scenario {sid}", "".join(parts),
                            nav="<a href='../report.html'>&larr; campaign report</a>"
                                "<a href='../report.html#worst'>worst scenarios</a>"))
    return path


def _fidelity(fid: dict | None) -> list[str]:
    if not fid:
        return []
    if not fid.get("healthy", True):
        return [warn(f"The emulation's baseline was not healthy ({escape(str(fid.get('unhealthy_reason')))}): "
                     "its figures below are not comparable with the flow twin's.")]
    if fid["disagree"]:
        return [warn(f"The twins disagree on this scenario ({escape(disagreement_text(fid['disagree']))}): "
                     f"{escape('; '.join(fid['reasons']))}. Read its figures with care.")]
    return ["<p class='muted'>The flow twin and the emulation agree on this scenario within the fidelity "
            "tolerances.</p>"]


def _kpi_table(runs: dict, keys: list) -> str:
    """KPIs down, (twin, phase) across: baseline and failure once per twin, the mitigated phase
    once per mitigation strategy."""
    cols: list[tuple[str, object]] = []
    seen_twin = set()
    for twin, mit in keys:
        res = runs[(twin, mit)][1]
        tn = TWIN_NAMES.get(twin, twin)
        if twin not in seen_twin:
            seen_twin.add(twin)
            cols += [(f"{tn}: baseline", res.row("baseline")), (f"{tn}: failure", res.row("failure"))]
        if "mitigated" in res.rows:
            cols.append((f"{tn}: mitigated ({mit})", res.row("mitigated")))
    head = "<th>KPI</th>" + "".join(f"<th>{escape(h)}</th>" for h, _ in cols)
    body = []
    for k in KPIS:
        c = KPI_COLUMNS[k]
        body.append(f"<tr><td>{escape(c.title)}</td>" + "".join(
            f"<td class='num'>{fmt(getattr(r, k), c.decimals)}</td>" for _, r in cols) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _timeline(res) -> str:
    cols = [Column("n", "#", None, 0), Column("t", "Time", "s", 1), Column("event", "Event")]
    cols += [KPI_COLUMNS[k] for k in TIMELINE_KPIS]
    rows = []
    for t in res.timeline:
        label = event_types.get(t["event_type"]).label if t.get("event_type") in event_types.names() else \
            str(t.get("event_type"))
        rows.append({**{k: t.get(k) for k in TIMELINE_KPIS}, "n": (t.get("index") or 0) + 1, "t": t.get("t"),
                     "event": f"{label} on {t.get('target')}"})
    if not rows:
        return "<p>This twin recorded no per-event timeline.</p>"
    return ("<p class='muted'>The network after each event, before any mitigation.</p>" + table(rows, cols))


def _mitigation(twin: str, res) -> str:
    m = mitigation_effect(res)
    out = [f"<h3>{escape(twin.capitalize())}, strategy <code>{escape(str(m['strategy']))}</code></h3>"]
    out.append("<p><b>Actions:</b> " + (escape("; ".join(m["actions"])) if m["actions"] else "none") + "</p>")
    out.append(f"<p><b>Effect:</b> {escape(m['verdict'])}</p>")
    if m["notes"]:
        out.append("<p><b>Why no action can help:</b></p>" + bullets([escape(n) for n in m["notes"]]))
    if m["rows"]:
        rows = []
        for r in m["rows"]:
            eff = r["effectiveness"]
            rows.append({"kpi": r["kpi"], "failure": fmt(r["failure"], r["decimals"]),
                         "mitigated": fmt(r["mitigated"], r["decimals"]),
                         "eff": "n/a" if eff is None else f"{100 * eff:.0f} %", "note": r["note"]})
        out.append(table(rows, [Column("kpi", "KPI"), Column("failure", "Failure"), Column("mitigated", "Mitigated"),
                                Column("eff", "Repaired"), Column("note", "Note")]))
    return "".join(out)
