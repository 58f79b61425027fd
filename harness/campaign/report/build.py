"""The campaign report's index page (``report/report.html``, figures inline) and its CSVs;
one page per scenario is written beside it by :mod:`.pages`."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from harness.campaign.fidelity import fidelity_rows, summarise
from harness.campaign.loop import campaign_kg
from harness.campaign.report import figures
from harness.campaign.report.data import (KPI_COLUMNS, Column, disagreement_text, failure_elements, rank_worst,
                                          rejected_by_arm, why)
from harness.campaign.report.html import bullets, img_inline, page, section, table, warn
from harness.campaign.report.pages import scenario_href, write_scenario_page
from harness.campaign.spec import load_spec
from harness.campaign.store import CampaignStore
from harness.fileio import atomic_write
from harness.generate.metrics import diversity
from harness.scenario import types as event_types
from harness.scenario.model import Scenario
from harness.twin.kpi import KPIS, NOT_SCORED

SECTIONS = {
    "worst": "Worst scenarios and why",
    "network": "Most damaging scenario",
    "summary": "Generators and ablations",
    "impact": "Impact distribution",
    "mitigation": "Mitigation effectiveness",
    "convergence": "Best impact found vs evaluations",
    "table2": "Table 2: scenario type × KPI, before and after mitigation",
    "fidelity": "Twin fidelity",
    "rejected": "Rejected proposals",
    "scenarios": "Every scenario",
}
TABLE2_KPIS = ["latency_ms_mean", "loss_pct", "reroute_time_ms_max", "congested_links", "impacted_nodes"]
#: How many of the worst scenarios the index lists (every one has its page).
WORST_SHOWN = 10

SUMMARY_COLUMNS = [
    Column("generator", "Generator"), Column("proposed", "Proposed", None, 0), Column("accepted", "Accepted", None, 0),
    Column("validity_pct", "Valid", "%", 1), Column("distinct_pairs", "Distinct event pairs", None, 0),
    Column("jaccard_distance", "Mean Jaccard distance", None, 2),
    Column("type_entropy_bits", "Event-type entropy", "bits", 2),
    Column("cascade_depth_mean", "Mean cascade depth", "rounds", 1),
    Column("cascade_depth_max", "Max cascade depth", "rounds", 0),
    Column("loss_pct_mean", "Mean lost traffic", "%", 2), Column("loss_pct_max", "Max lost traffic", "%", 2),
    Column("impacted_nodes_mean", "Mean impacted nodes", None, 1)]


def scenario_type(s: Scenario) -> str:
    kinds = [event_types.get(e.event_type) for e in s.events]
    if len(kinds) == 1:
        return kinds[0].label
    removing = [k for k in kinds if k.effect_kinds & {"links_down", "routers_down"}]
    return "cascading outage" if removing else "multi-event"


def build_report(root: str | Path) -> Path:
    """Write ``report.html`` (the index, figures inline), one page per scenario under
    ``scenarios/`` (maps as PNG files beside them), ``*.png`` and ``*.csv`` under
    ``root/report``; return the index's path."""
    store = CampaignStore(root)
    spec = load_spec(store.spec_path())
    df = store.results_frame()
    out = store.root / "report"
    out.mkdir(exist_ok=True)
    scen = {r["scenario"]["id"]: r for r in store.scenarios()}
    scenarios = {sid: Scenario.model_validate(r["scenario"]) for sid, r in scen.items()}
    results = store.results()
    proposals = list(store.units_under("proposals"))
    main_mit = spec.mitigation[0]
    kg = campaign_kg(spec)
    runs: dict[str, dict] = {}
    for meta, res in results:
        runs.setdefault(res.scenario_id, {})[(res.twin, meta["mitigation"])] = (meta, res)
    frows = fidelity_rows(store)
    fid = {r["scenario_id"]: r for r in frows if r["mitigation"] == main_mit}
    flow = df[(df["twin"] == "flow") & (df["mitigation"] == main_mit)]
    wide = flow.pivot_table(index=["scenario_id", "label", "phase"], columns="kpi", values="value").reset_index()
    fail = wide[wide["phase"] == "failure"].set_index("scenario_id")
    labels = [g.label for g in spec.generators]
    parts: list[str] = []

    # ---------------------------------------------------------------- worst scenarios
    def flow_run(sid):
        r = runs.get(sid, {})
        return (r.get(("flow", main_mit)) or next((v for k, v in sorted(r.items()) if k[0] == "flow"), None))

    base_rows = []
    for sid in scenarios:
        fr = flow_run(sid)
        if fr is None:
            continue
        row = fr[1].row("failure")
        base_rows.append({"scenario_id": sid, "label": scen[sid]["label"], "type": scenario_type(scenarios[sid]),
                          "loss_pct": row.loss_pct, "impacted_nodes": row.impacted_nodes,
                          "unreachable_pairs": row.unreachable_pairs, "cascade_depth": row.cascade_depth})
    ranked = rank_worst(base_rows)
    rank_of = {r["scenario_id"]: r["rank"] for r in ranked}
    worst_rows, csv_rows = [], []
    for r in ranked:
        sid = r["scenario_id"]
        w = why(kg, scenarios[sid], flow_run(sid)[1])
        csv_rows.append({**r, **{k: "; ".join(v) for k, v in w.items()}})
        if r["rank"] > WORST_SHOWN:
            continue
        items = [f"<b>events:</b> {html.escape('; '.join(w['events']))}"]
        items += [f"<b>{k}:</b> {html.escape(('; ' if k2 in ('failed', 'cascade', 'services') else ', ').join(w[k2]))}"
                  for k, k2 in (("failed", "failed"), ("degraded", "degraded"), ("congested", "congested"),
                                ("services hit", "services"), ("cascade", "cascade")) if w[k2]]
        worst_rows.append({**r, "link": f"<a href='{scenario_href(sid)}'>{html.escape(sid)}</a>",
                           "why": bullets(items), "emulation": _emulation_cell(fid.get(sid), sid in runs and any(
                               k[0] == "emulation" for k in runs[sid]))})
    pd.DataFrame(csv_rows).to_csv(out / "worst.csv", index=False)
    if worst_rows:
        body = ("<p>Ranked by lost traffic on the flow twin (failure phase), then impacted nodes and unreachable "
                "pairs. Each scenario links to its own page.</p>"
                + table(worst_rows, [Column("rank", "Rank", None, 0), Column("link", "Scenario"),
                                     Column("label", "Generator"), Column("type", "Type"),
                                     KPI_COLUMNS["loss_pct"], KPI_COLUMNS["impacted_nodes"], Column("why", "Why"),
                                     Column("emulation", "Emulation")],
                        raw=frozenset({"link", "why", "emulation"})))
    else:
        body = "<p>No scenario was accepted.</p>"
    parts.append(section("worst", SECTIONS["worst"], body))

    # ---------------------------------------------------------------- most damaging, on the map
    if ranked:
        top = ranked[0]["scenario_id"]
        s = scenarios[top]
        marks = {**failure_elements(kg, s, flow_run(top)[1]), "targets": [e.target for e in s.events]}
        png = figures.network(kg, marks, f"{top} on the flow twin, failure phase", out / "network.png")
        body = (img_inline(png, f"map of {top}") + f"<p><a href='{scenario_href(top)}'><b>{html.escape(top)}</b></a> "
                f"({html.escape(scen[top]['label'])}): {html.escape(s.description)} Lost traffic "
                f"{KPI_COLUMNS['loss_pct'].fmt(ranked[0]['loss_pct'])} % on the flow twin.</p>")
        body += _headline_warning(fid.get(top), top)
    else:
        body = "<p>No scenario was accepted.</p>"
    parts.append(section("network", SECTIONS["network"], body))

    # ---------------------------------------------------------------- summary
    rows = []
    for label in labels:
        props = [p for p in proposals if p["label"] == label]
        proposed = sum(len(p["scenarios"]) for p in props) + sum(1 for p in props for r in p.get("records", [])
                                                                   if r.get("id") is None)
        accepted = [scenarios[sid] for sid, r in scen.items() if r["label"] == label]
        d = diversity(accepted)
        f = fail[fail["label"] == label]
        rows.append({"generator": label, "proposed": proposed, "accepted": len(accepted),
                     "validity_pct": round(100 * len(accepted) / proposed, 1) if proposed else 0.0,
                     "distinct_pairs": d["distinct_pairs"], "jaccard_distance": round(d["mean_jaccard_distance"], 3),
                     "type_entropy_bits": round(d["type_entropy_bits"], 3),
                     "cascade_depth_mean": round(float(f["cascade_depth"].mean()), 3) if len(f) else None,
                     "cascade_depth_max": int(f["cascade_depth"].max()) if len(f) else None,
                     "loss_pct_mean": round(float(f["loss_pct"].mean()), 3) if len(f) else None,
                     "loss_pct_max": round(float(f["loss_pct"].max()), 3) if len(f) else None,
                     "impacted_nodes_mean": round(float(f["impacted_nodes"].mean()), 3) if len(f) else None})
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    parts.append(section("summary", SECTIONS["summary"], table(rows, SUMMARY_COLUMNS)))

    # ---------------------------------------------------------------- impact distribution
    png = figures.impact(labels, [fail[fail["label"] == l]["loss_pct"].dropna().values for l in labels],
                         out / "impact.png")
    parts.append(section("impact", SECTIONS["impact"], img_inline(png, "lost traffic per generator")))

    # ---------------------------------------------------------------- mitigation effectiveness
    parts.append(section("mitigation", SECTIONS["mitigation"], _mitigation_section(results, out)))

    # ---------------------------------------------------------------- convergence
    from harness.twin.sweep import sweep

    worst_single = sweep(kg, 1)[0]
    order = sorted(scen.values(), key=lambda r: (r["iteration"], r["scenario"]["id"]))
    curves = {}
    for label in labels:
        best, curve = 0.0, []
        for r in order:
            if r["label"] == label and r["scenario"]["id"] in fail.index:
                best = max(best, float(fail.loc[r["scenario"]["id"], "loss_pct"]))
                curve.append(best)
        if curve:
            curves[label] = curve
    cut = " + ".join(worst_single["links"])
    png = figures.convergence(curves, worst_single["loss_pct"], f"exhaustive single cut\n({cut})",
                              out / "convergence.png")
    parts.append(section("convergence", SECTIONS["convergence"], img_inline(png, "best impact vs evaluations") +
                         f"<p>Exhaustive worst single link cut on the flow twin: {html.escape(cut)}, "
                         f"{KPI_COLUMNS['loss_pct'].fmt(worst_single['loss_pct'])} % lost.</p>"))

    # ---------------------------------------------------------------- table 2
    t2 = wide[wide["phase"].isin(["failure", "mitigated"])].copy()
    t2["type"] = [scenario_type(scenarios[s]) for s in t2["scenario_id"]]
    table2 = t2.groupby(["type", "phase"])[TABLE2_KPIS].mean().round(3).unstack("phase")
    phases = [p for p in ("failure", "mitigated") if p in set(t2["phase"])]
    table2.columns = [f"{k} ({p})" for k, p in table2.columns]
    table2 = table2.reset_index()
    table2.to_csv(out / "table2.csv", index=False)
    t2_cols = [Column("type", "Scenario type")] + [
        Column(f"{k} ({p})", f"{KPI_COLUMNS[k].header}, {p}", KPI_COLUMNS[k].unit,
               1 if KPI_COLUMNS[k].decimals == 0 else KPI_COLUMNS[k].decimals)
        for k in TABLE2_KPIS for p in phases]
    parts.append(section("table2", SECTIONS["table2"],
                         f"<p>Flow twin, mitigation <code>{html.escape(main_mit)}</code>; means over the scenarios "
                         "of each type.</p>" + table(table2.to_dict("records"), t2_cols)))

    # ---------------------------------------------------------------- fidelity
    parts.append(section("fidelity", SECTIONS["fidelity"], _fidelity_section(frows, out)))

    # ---------------------------------------------------------------- rejected proposals
    parts.append(section("rejected", SECTIONS["rejected"], _rejected_section(labels, store.rejected(), proposals)))

    # ---------------------------------------------------------------- every scenario, one page each
    for sid, s in scenarios.items():
        if sid in runs:
            write_scenario_page(out, kg, scen[sid], s, runs[sid], fid.get(sid), rank_of.get(sid), main_mit)
    listing = [{"rank": rank_of.get(sid), "link": (f"<a href='{scenario_href(sid)}'>{html.escape(sid)}</a>"
                                                   if sid in runs else html.escape(sid)),
                "label": scen[sid]["label"], "iteration": scen[sid]["iteration"] + 1, "type": scenario_type(s),
                "events": len(s.events), "loss_pct": fail["loss_pct"].get(sid) if sid in fail.index else None,
                "twins": ", ".join(sorted({t for t, _ in runs.get(sid, {})}))}
               for sid, s in sorted(scenarios.items(), key=lambda kv: (rank_of.get(kv[0], 10**9), kv[0]))]
    parts.append(section("scenarios", SECTIONS["scenarios"], table(listing, [
        Column("rank", "Rank", None, 0), Column("link", "Scenario"), Column("label", "Generator"),
        Column("iteration", "Iteration", None, 0), Column("type", "Type"), Column("events", "Events", None, 0),
        KPI_COLUMNS["loss_pct"], Column("twins", "Twins")], raw=frozenset({"link"}))))

    toc = "".join(f"<a href='#{k}'>{html.escape(v)}</a> " for k, v in SECTIONS.items())
    doc = page(f"ani campaign {spec.name}",
               f"<h1>Campaign {html.escape(spec.name)}</h1><p>Topology <code>{html.escape(spec.topology)}</code>, "
               f"{spec.budget.iterations} iterations × {spec.budget.per_iteration} scenarios per generator, "
               f"{len(scen)} accepted scenarios, {len(results)} twin runs.</p><p class='muted'>{toc}</p>"
               + "".join(parts))
    atomic_write(out / "report.html", doc)
    return out / "report.html"


def _emulation_cell(f: dict | None, ran: bool) -> str:
    if f is None:
        return "not run" if not ran else "ran (other mitigation)"
    loss = KPI_COLUMNS["loss_pct"].fmt(f["loss_pct_emulation"])
    if not f.get("healthy", True):
        return f"{loss} % lost &#9888; unhealthy baseline"
    if f["disagree"]:
        return (f"{loss} % lost<br><span class='warn'>&#9888; disagrees ({html.escape(disagreement_text(f['disagree']))}): "
                f"{html.escape('; '.join(f['reasons']))}</span>")
    return f"{loss} % lost, agrees"


def _headline_warning(f: dict | None, sid: str) -> str:
    if f is None:
        return "<p class='muted'>This scenario did not run on the emulation.</p>"
    if not f.get("healthy", True) or f["disagree"]:
        what = (f"its emulation baseline was not healthy ({f.get('unhealthy_reason')})" if not f.get("healthy", True)
                else f"the twins disagree on {disagreement_text(f['disagree'])}: {'; '.join(f['reasons'])}")
        return warn(f"{html.escape(sid)} on the emulation lost {KPI_COLUMNS['loss_pct'].fmt(f['loss_pct_emulation'])} % "
                    f"against {KPI_COLUMNS['loss_pct'].fmt(f['loss_pct_flow'])} % on the flow twin; "
                    f"{html.escape(what)}.")
    return "<p class='muted'>The emulation agrees on this scenario within the fidelity tolerances.</p>"


def _mitigation_section(results, out: Path) -> str:
    eff_rows = []
    for meta, res in results:
        if res.twin == "flow" and "mitigated" in res.rows:
            eff_rows.append({"generator": meta["label"], "mitigation": meta["mitigation"], **res.effectiveness()})
    if not eff_rows:
        return "<p>No mitigation was run.</p>"
    eff = pd.DataFrame(eff_rows)
    scored = [k for k in KPIS if k not in NOT_SCORED]
    eff[list(KPIS)] = eff[list(KPIS)].astype("float64")
    g = eff.groupby(["generator", "mitigation"])
    eff_mean = g[scored].mean().round(3)
    eff_mean["scenarios"] = g.size()
    eff_mean = eff_mean.reset_index()
    eff_mean.to_csv(out / "mitigation.csv", index=False)
    rows = [{**r, **{k: None if pd.isna(r[k]) else 100 * r[k] for k in scored}} for r in eff_mean.to_dict("records")]
    cols = [Column("generator", "Generator"), Column("mitigation", "Strategy"), Column("scenarios", "Scenarios", None, 0)]
    cols += [Column(k, KPI_COLUMNS[k].header, "% repaired", 0) for k in scored]
    return ("<p>Flow twin. Mean share of the failure's damage the mitigation repaired, per KPI: "
            "(failure − mitigated) / failure; 100 % = fully repaired, 0 = unchanged, negative = worse. "
            "n/a where no scenario had anything to repair on that KPI. Reroute time is not scored: the "
            "mitigated phase's reroute time is the reroute the mitigation itself triggers, not a repair of "
            "the failure's.</p>" + table(rows, cols))


def _fidelity_section(frows: list[dict], out: Path) -> str:
    if not frows:
        return "<p>No scenario ran on both twins in this campaign.</p>"
    fdf = pd.DataFrame(frows)
    fdf.to_csv(out / "fidelity.csv", index=False)
    png = figures.fidelity({k: (list(fdf[f"{k}_emulation"]), list(fdf[f"{k}_flow"]))
                            for k in ("loss_pct", "max_link_util", "reroute_time_ms_mean")}, out / "fidelity.png")
    s = summarise(frows)
    body = (img_inline(png, "flow twin against emulation") +
            f"<p>{s['scenarios']} scenarios on both twins ({s['healthy']} with a healthy emulation baseline); "
            f"impacted-node sets agree exactly in {s['impacted_agree_pct'] or 0:.0f} % (mean Jaccard "
            f"{s['impacted_jaccard_mean'] or 0:.2f}); median relative error of lost traffic "
            f"{_fmt(s['loss_pct_relerr_median'])}, of utilisation {_fmt(s['max_link_util_relerr_median'])}; "
            f"reroute time differs by a median {_fmt(s['reroute_diff_ms_median'])} ms.</p>")
    body += _fidelity_warnings(frows)
    rows = [{**r, "link": f"<a href='{scenario_href(r['scenario_id'])}'>{html.escape(r['scenario_id'])}</a>",
             "agree": "yes" if r["impacted_agree"] else "no",
             "why": html.escape("; ".join(r["reasons"])) if r["disagree"] else ""} for r in frows]
    cols = [Column("link", "Scenario"), Column("agree", "Same impacted nodes")]
    for k in ("loss_pct", "max_link_util", "reroute_time_ms_mean"):
        for t in ("flow", "emulation"):
            c = KPI_COLUMNS[k]
            cols.append(Column(f"{k}_{t}", f"{c.header}, {'flow' if t == 'flow' else 'emulation'}", c.unit, c.decimals))
    cols.append(Column("why", "Why they differ"))
    return body + table(rows, cols, raw=frozenset({"link", "why"}))


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _fidelity_warnings(frows: list[dict]) -> str:
    """Warnings where a headline scenario (the most damaging one on the flow twin, and each
    scenario type's rows behind Table 2) disagrees between twins, with the reasons."""
    out = []
    unhealthy = [r for r in frows if not r.get("healthy", True)]
    if unhealthy:
        out.append("Left out of the figures above, their emulation baseline was not healthy: "
                   + "; ".join(f"{html.escape(r['scenario_id'])} ({html.escape(str(r.get('unhealthy_reason')))})"
                               for r in unhealthy) + ".")
    worst = max(frows, key=lambda r: r["loss_pct_flow"] or 0.0)
    if worst["disagree"]:
        out.append(f"The most damaging scenario run on both twins, {html.escape(worst['scenario_id'])}, disagrees "
                   f"between the twins on {disagreement_text(worst['disagree'])}: {html.escape('; '.join(worst['reasons']))}.")
    by_label: dict[str, list[dict]] = {}
    for r in frows:
        by_label.setdefault(r.get("label") or "?", []).append(r)
    for label, rows in sorted(by_label.items()):
        bad = [r for r in rows if r["disagree"]]
        if bad:
            out.append(f"Table 2, {html.escape(label)}: {len(bad)} of {len(rows)} scenarios disagree between the twins "
                       f"({html.escape('; '.join(sorted({x for r in bad for x in r['reasons']})))}).")
    return "".join(warn(x) for x in out)


def _rejected_section(labels: list[str], rejected: list[dict], proposals: list[dict]) -> str:
    by_arm = rejected_by_arm(labels, rejected, proposals)
    parts = []
    cols = [Column("iteration", "Iteration", None, 0), Column("scenario", "Proposal"),
            Column("event", "Event", None, 0), Column("rule", "Rule"), Column("reason", "Reason")]
    for label, rows in by_arm.items():
        if not rows:
            parts.append(f"<h3>{html.escape(label)}</h3><p>No proposal was rejected.</p>")
            continue
        rules = pd.Series([r["rule"] for r in rows]).value_counts()
        parts.append(f"<h3>{html.escape(label)}: {len(rows)} rejections</h3><p class='muted'>By rule: "
                     + html.escape(", ".join(f"{k} {v}" for k, v in rules.items())) + "</p>"
                     + table([{**r, "iteration": r["iteration"] + 1} for r in rows], cols))
    return "<p>What each generator proposed that the validator refused (the first failing rule per event), " \
           "and model outputs that never parsed as a scenario.</p>" + "".join(parts)
