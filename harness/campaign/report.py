"""Campaign reports: a self-contained ``report.html`` plus PNGs and CSV tables.

Sections (each an ``<h2 id=…>``, see :data:`SECTIONS`): per-arm summary (validity, diversity,
cascade depth, impact), impact distribution, mitigation effectiveness, best impact found vs
evaluations (with the exhaustive single-cut worst case from the flow-twin sweep), the
paper's Table 2 (scenario type × KPIs before and after mitigation), twin fidelity, and the
network drawn with the most damaging scenario's events marked.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.campaign.fidelity import fidelity_rows, summarise  # noqa: E402
from harness.campaign.loop import campaign_kg  # noqa: E402
from harness.campaign.spec import load_spec  # noqa: E402
from harness.campaign.store import CampaignStore, atomic_write  # noqa: E402
from harness.generate.metrics import diversity  # noqa: E402
from harness.scenario import types as event_types  # noqa: E402
from harness.scenario.model import Scenario  # noqa: E402
from harness.twin.kpi import KPIS  # noqa: E402

SECTIONS = {
    "summary": "Generators and ablations",
    "impact": "Impact distribution",
    "mitigation": "Mitigation effectiveness",
    "convergence": "Best impact found vs evaluations",
    "table2": "Table 2: scenario type × KPI, before and after mitigation",
    "fidelity": "Twin fidelity",
    "network": "Most damaging scenario",
}
TABLE2_KPIS = ["latency_ms_mean", "loss_pct", "reroute_time_ms_max", "congested_links", "impacted_nodes"]


def scenario_type(s: Scenario) -> str:
    kinds = [event_types.get(e.event_type) for e in s.events]
    if len(kinds) == 1:
        return kinds[0].label
    removing = [k for k in kinds if k.effect_kinds & {"links_down", "routers_down"}]
    return "cascading outage" if removing else "multi-event"


def build_report(root: str | Path) -> Path:
    """Write ``report.html``, ``*.png`` and ``*.csv`` under ``root/report`` and return the HTML path."""
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
    flow = df[(df["twin"] == "flow") & (df["mitigation"] == main_mit)]
    wide = flow.pivot_table(index=["scenario_id", "label", "phase"], columns="kpi", values="value").reset_index()
    fail = wide[wide["phase"] == "failure"].set_index("scenario_id")
    figures: dict[str, str] = {}
    parts: list[str] = []

    # ---------------------------------------------------------------- summary
    rows = []
    labels = [g.label for g in spec.generators]
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
    summary = pd.DataFrame(rows)
    summary.to_csv(out / "summary.csv", index=False)
    parts.append(_section("summary", _table(summary)))

    # ---------------------------------------------------------------- impact distribution
    fig, ax = plt.subplots(figsize=(8, 3.5))
    data = [fail[fail["label"] == l]["loss_pct"].dropna().values for l in labels]
    ax.boxplot(data, tick_labels=labels, showmeans=True)
    ax.set_ylabel("lost traffic, failure phase (%)")
    ax.set_title("Impact per generator (flow twin)")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    figures["impact"] = _save(fig, out / "impact.png")
    parts.append(_section("impact", _img(figures["impact"])))

    # ---------------------------------------------------------------- mitigation effectiveness
    eff_rows = []
    for meta, res in results:
        if res.twin == "flow" and "mitigated" in res.rows:
            eff_rows.append({"generator": meta["label"], "mitigation": meta["mitigation"], **res.effectiveness()})
    eff = pd.DataFrame(eff_rows)
    if len(eff):
        eff_mean = eff.groupby(["generator", "mitigation"])[list(KPIS)].mean().round(3).reset_index()
        eff_mean.to_csv(out / "mitigation.csv", index=False)
        body = ("<p>Mean relative improvement of the mitigated phase over the failure phase "
                "(1 = fully repaired, 0 = no change, negative = worse).</p>" + _table(eff_mean))
    else:
        body = "<p>No mitigation was run.</p>"
    parts.append(_section("mitigation", body))

    # ---------------------------------------------------------------- convergence
    from harness.twin.sweep import sweep

    kg = campaign_kg(spec)
    worst_single = sweep(kg, 1)[0]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    order = sorted(scen.values(), key=lambda r: (r["iteration"], r["scenario"]["id"]))
    for label in labels:
        losses = [float(fail.loc[r["scenario"]["id"], "loss_pct"]) for r in order
                  if r["label"] == label and r["scenario"]["id"] in fail.index]
        best, curve = 0.0, []
        for x in losses:
            best = max(best, x)
            curve.append(best)
        if curve:
            ax.step(range(1, len(curve) + 1), curve, where="post", label=label)
    ax.axhline(worst_single["loss_pct"], color="black", linestyle="--",
               label=f"exhaustive single cut ({' + '.join(worst_single['links'])})")
    ax.set_xlabel("scenarios evaluated")
    ax.set_ylabel("best lost traffic so far (%)")
    ax.legend(fontsize=7)
    figures["convergence"] = _save(fig, out / "convergence.png")
    parts.append(_section("convergence", _img(figures["convergence"]) +
                          f"<p>Exhaustive worst single link cut on the flow twin: "
                          f"{html.escape(' + '.join(worst_single['links']))}, {worst_single['loss_pct']:.2f} % lost.</p>"))

    # ---------------------------------------------------------------- table 2
    t2 = wide[wide["phase"].isin(["failure", "mitigated"])].copy()
    t2["type"] = [scenario_type(scenarios[s]) for s in t2["scenario_id"]]
    table2 = t2.groupby(["type", "phase"])[TABLE2_KPIS].mean().round(3).unstack("phase")
    table2.columns = [f"{k} ({p})" for k, p in table2.columns]
    table2 = table2.reset_index()
    table2.to_csv(out / "table2.csv", index=False)
    parts.append(_section("table2", f"<p>Flow twin, mitigation <code>{html.escape(main_mit)}</code>; "
                                    "means over scenarios of each type.</p>" + _table(table2)))

    # ---------------------------------------------------------------- fidelity
    frows = fidelity_rows(store)
    if frows:
        fdf = pd.DataFrame(frows)
        fdf.to_csv(out / "fidelity.csv", index=False)
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
        for ax, k in zip(axes, ("loss_pct", "max_link_util", "reroute_time_ms_mean")):
            ax.scatter(fdf[f"{k}_emulation"], fdf[f"{k}_flow"])
            hi = max([1e-9, *fdf[f"{k}_emulation"].dropna(), *fdf[f"{k}_flow"].dropna()])
            ax.plot([0, hi], [0, hi], color="grey", linewidth=0.8)
            ax.set_xlabel("emulation")
            ax.set_ylabel("flow twin")
            ax.set_title(k, fontsize=9)
        figures["fidelity"] = _save(fig, out / "fidelity.png")
        s = summarise(frows)
        body = (_img(figures["fidelity"]) + f"<p>{s['scenarios']} scenarios on both twins ({s['healthy']} with a "
                f"healthy emulation baseline); impacted-node sets agree exactly in {s['impacted_agree_pct'] or 0:.0f} % "
                f"(mean Jaccard {s['impacted_jaccard_mean'] or 0:.2f}); median relative error of loss "
                f"{_fmt(s['loss_pct_relerr_median'])}, of utilisation {_fmt(s['max_link_util_relerr_median'])}; "
                f"reroute time differs by a median {_fmt(s['reroute_diff_ms_median'])} ms.</p>")
        body += _fidelity_warnings(frows)
        body += _table(fdf[["scenario_id", "impacted_agree", "loss_pct_flow", "loss_pct_emulation",
                            "max_link_util_flow", "max_link_util_emulation", "reroute_time_ms_mean_flow",
                            "reroute_time_ms_mean_emulation"]])
    else:
        body = "<p>No scenario ran on both twins in this campaign.</p>"
    parts.append(_section("fidelity", body))

    # ---------------------------------------------------------------- network
    if len(fail):
        worst_id = fail["loss_pct"].astype(float).idxmax()
        figures["network"] = _draw_network(kg, scenarios[worst_id], out / "network.png")
        s = scenarios[worst_id]
        body = (_img(figures["network"]) + f"<p><b>{html.escape(worst_id)}</b> ({html.escape(scen[worst_id]['label'])}):"
                f" {html.escape(s.description)} Lost traffic {float(fail.loc[worst_id, 'loss_pct']):.2f} %.</p>")
    else:
        body = "<p>No scenario was accepted.</p>"
    parts.append(_section("network", body))

    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>ani campaign {html.escape(spec.name)}</title>"
           "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}"
           "th{background:#f3f3f3}img{max-width:100%}"
           ".warn{background:#fff4e0;border-left:4px solid #e69500;padding:4px 8px}</style></head><body>"
           f"<h1>Campaign {html.escape(spec.name)}</h1><p>Topology <code>{html.escape(spec.topology)}</code>, "
           f"{spec.budget.iterations} iterations × {spec.budget.per_iteration} scenarios per generator, "
           f"{len(scen)} accepted scenarios, {len(results)} twin runs.</p>" + "".join(parts) + "</body></html>")
    atomic_write(out / "report.html", doc)
    return out / "report.html"


def _draw_network(kg, scenario: Scenario, path: Path) -> str:
    import networkx as nx

    topo = kg.topology
    pos = {n: (d["lon"], d["lat"]) for n, d in topo.nodes(data=True) if d.get("lon") is not None}
    if len(pos) != topo.number_of_nodes():
        pos = nx.spring_layout(topo, seed=0)
    hit_links = {e.target for e in scenario.events if kg.has("link", e.target)}
    for e in scenario.events:
        if kg.has("srlg", e.target):
            hit_links |= set(kg.attrs("srlg", e.target)["links"])
    hit_routers = {e.target for e in scenario.events if kg.has("router", e.target)}
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = ["red" if topo.edges[u, v]["id"] in hit_links else "#999" for u, v in topo.edges]
    widths = [3 if c == "red" else 1 for c in colors]
    nx.draw_networkx_edges(topo, pos, ax=ax, edge_color=colors, width=widths)
    nx.draw_networkx_nodes(topo, pos, ax=ax, node_size=60,
                           node_color=["red" if n in hit_routers else "#1f77b4" for n in topo.nodes])
    if topo.number_of_nodes() <= 60:
        nx.draw_networkx_labels(topo, pos, ax=ax, font_size=7)
    ax.set_title(f"{scenario.id}: " + ", ".join(f"{e.event_type}@{e.target}" for e in scenario.events), fontsize=8)
    ax.axis("off")
    return _save(fig, path)


def _save(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str) -> str:
    return f"<img src='data:image/png;base64,{b64}'>"


def _table(df) -> str:
    return df.to_html(index=False, border=0, na_rep="n/a", escape=True)


def _section(key: str, body: str) -> str:
    return f"<h2 id='{key}'>{html.escape(SECTIONS[key])}</h2>{body}"


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
        out.append(f"The most damaging scenario, {html.escape(worst['scenario_id'])}, disagrees between the twins on "
                   f"{', '.join(worst['disagree'])}: {html.escape('; '.join(worst['reasons']))}.")
    by_label: dict[str, list[dict]] = {}
    for r in frows:
        by_label.setdefault(r.get("label") or "?", []).append(r)
    for label, rows in sorted(by_label.items()):
        bad = [r for r in rows if r["disagree"]]
        if bad:
            out.append(f"Table 2, {html.escape(label)}: {len(bad)} of {len(rows)} scenarios disagree between the twins "
                       f"({html.escape('; '.join(sorted({x for r in bad for x in r['reasons']})))}).")
    return "".join(f'<p class="warn">&#9888; {x}</p>' for x in out)
