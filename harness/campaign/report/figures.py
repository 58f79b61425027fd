"""The report's figures (matplotlib, Agg): each function draws plain data into a PNG written
atomically and returns the PNG's bytes."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import networkx as nx

matplotlib.use("Agg")
import matplotlib.patheffects as pe  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from harness.campaign.report.data import KPI_COLUMNS  # noqa: E402
from harness.fileio import atomic_write  # noqa: E402

FAILED, CONGESTED, DEGRADED, IMPACTED, NORMAL = "#d62728", "#ff7f0e", "#9467bd", "#d62728", "#1f77b4"


def save(fig, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return buf.getvalue()


def impact(labels: list[str], losses: list[list[float]], path: Path) -> bytes:
    """Box plot of lost traffic per generator."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.boxplot(losses, tick_labels=labels, showmeans=True)
    ax.set_ylabel(f"{KPI_COLUMNS['loss_pct'].title}, failure phase")
    ax.set_title("Impact per generator (flow twin)")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return save(fig, path)


def convergence(curves: dict[str, list[float]], reference: float, reference_label: str, path: Path) -> bytes:
    """Best lost traffic so far per generator, step curves; the legend sits beside the plot so
    it hides no line."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    styles = ["-", "--", "-.", ":"]
    for i, (label, curve) in enumerate(curves.items()):
        ax.step(range(1, len(curve) + 1), curve, where="post", label=label, linewidth=1.6,
                linestyle=styles[i % len(styles)])
    ax.axhline(reference, color="black", linestyle="--", linewidth=1, label=reference_label, zorder=1)
    ax.set_xlabel("scenarios evaluated")
    ax.set_ylabel("best lost traffic so far (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save(fig, path)


def fidelity(points: dict[str, tuple[list, list]], path: Path) -> bytes:
    """Flow twin against emulation, one scatter per KPI (``{kpi: (emulation, flow)}``)."""
    fig, axes = plt.subplots(1, len(points), figsize=(10, 3.4))
    for ax, (k, (emu, flow)) in zip(axes, points.items()):
        ax.scatter(emu, flow)
        hi = max([1e-9, *[x for x in emu if x is not None], *[x for x in flow if x is not None]])
        ax.plot([0, hi], [0, hi], color="grey", linewidth=0.8)
        ax.set_xlabel("emulation")
        ax.set_ylabel("flow twin")
        ax.set_title(KPI_COLUMNS[k].title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


#: Above this many routers a map shows the failure's surroundings only (every router of a
#: 5,000-router graph on one figure is unreadable, and its spring layout took ~30 s a map).
MAP_MAX_NODES = 150
#: (id(kg), nodes) -> positions; the kg is kept so its id is not reused while cached.
_LAYOUTS: dict = {}


def _around(topo, marks: dict) -> "object":
    """The subgraph of the marked elements' routers and their neighbours, at most
    :data:`MAP_MAX_NODES` routers (marked ones first)."""
    ids = {d["id"]: (u, v) for u, v, d in topo.edges(data=True)}
    core: list[str] = []
    for key in ("targets", "failed_routers", "cascade_routers", "down_links", "congested_links", "degraded_links",
                "impacted_nodes"):
        for x in marks.get(key, ()):
            for n in (ids[x] if x in ids else (x,) if x in topo else ()):
                if n not in core:
                    core.append(n)
    keep = list(core[:MAP_MAX_NODES])
    for n in core:
        for m in topo.neighbors(n):
            if len(keep) >= MAP_MAX_NODES:
                break
            if m not in keep:
                keep.append(m)
    return topo.subgraph(keep)


def _layout(kg, topo) -> dict:
    """Geographic positions where every router has them, else a (cached) spring layout."""
    pos = {n: (d["lon"], d["lat"]) for n, d in topo.nodes(data=True) if d.get("lon") is not None}
    if len(pos) == topo.number_of_nodes():
        return pos
    key = (id(kg), frozenset(topo.nodes))
    if key not in _LAYOUTS:
        if len(_LAYOUTS) >= 64:
            _LAYOUTS.pop(next(iter(_LAYOUTS)))
        _LAYOUTS[key] = (kg, nx.spring_layout(topo, seed=0))
    return _LAYOUTS[key][1]


def network(kg, marks: dict[str, list[str]], title: str, path: Path) -> bytes:
    """The topology with a scenario drawn on it: failed links red and dashed (cascade
    failures too), congested links orange, degraded links purple, failed routers red
    squares, impacted routers ringed red, event targets in bold; labels offset from
    their dots, with a white halo. A graph of more than :data:`MAP_MAX_NODES` routers is
    drawn around the failure only (the title says how much of it). ``marks`` is :func:`~.data.failure_elements`'s record
    plus ``targets`` (the events' targets)."""
    topo = kg.topology
    shown = ""
    if topo.number_of_nodes() > MAP_MAX_NODES:
        topo = _around(topo, marks)
        shown = f" — around the failure: {topo.number_of_nodes()} of {kg.topology.number_of_nodes()} routers"
        title += shown
    pos = _layout(kg, topo)
    down = set(marks.get("down_links", ()))
    congested = set(marks.get("congested_links", ())) - down
    degraded = set(marks.get("degraded_links", ())) - down - congested
    failed_r = (set(marks.get("failed_routers", ())) | set(marks.get("cascade_routers", ()))) & set(topo.nodes)
    impacted = set(marks.get("impacted_nodes", ())) & set(topo.nodes) - failed_r
    targets = set(marks.get("targets", ()))
    fig, ax = plt.subplots(figsize=(10, 6.2))
    groups = {"normal": [], "down": [], "congested": [], "degraded": []}
    for u, v in topo.edges:
        lid = topo.edges[u, v]["id"]
        key = "down" if lid in down else "congested" if lid in congested else "degraded" if lid in degraded else "normal"
        groups[key].append((u, v))
    nx.draw_networkx_edges(topo, pos, ax=ax, edgelist=groups["normal"], edge_color="#b0b0b0", width=1.0)
    nx.draw_networkx_edges(topo, pos, ax=ax, edgelist=groups["degraded"], edge_color=DEGRADED, width=2.5,
                           style=":")
    nx.draw_networkx_edges(topo, pos, ax=ax, edgelist=groups["congested"], edge_color=CONGESTED, width=3.0)
    nx.draw_networkx_edges(topo, pos, ax=ax, edgelist=groups["down"], edge_color=FAILED, width=2.5, style="--")
    ok = [n for n in topo.nodes if n not in failed_r and n not in impacted]
    nx.draw_networkx_nodes(topo, pos, ax=ax, nodelist=ok, node_size=45, node_color=NORMAL)
    nx.draw_networkx_nodes(topo, pos, ax=ax, nodelist=sorted(impacted), node_size=70, node_color="white",
                           edgecolors=IMPACTED, linewidths=2.2)
    nx.draw_networkx_nodes(topo, pos, ax=ax, nodelist=sorted(failed_r), node_size=80, node_color=FAILED,
                           node_shape="s")
    if topo.number_of_nodes() <= 80:
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        dy = 0.022 * ((max(ys) - min(ys)) or 1.0)
        dx = 0.010 * ((max(xs) - min(xs)) or 1.0)
        halo = [pe.withStroke(linewidth=3, foreground="white")]
        for n, (x, y) in pos.items():
            hot = n in targets or n in failed_r
            ax.text(x + dx, y + dy, topo.nodes[n].get("label") or n, fontsize=8 if hot else 7,
                    fontweight="bold" if hot else "normal", ha="left", va="bottom",
                    path_effects=halo, zorder=5)
    legend = [Line2D([], [], color=FAILED, linestyle="--", linewidth=2.5, label="failed link"),
              Line2D([], [], color=CONGESTED, linewidth=3, label="congested link"),
              Line2D([], [], color=DEGRADED, linestyle=":", linewidth=2.5, label="degraded link"),
              Line2D([], [], color=FAILED, marker="s", linestyle="", label="failed router"),
              Line2D([], [], color=IMPACTED, marker="o", markerfacecolor="white", markeredgewidth=2,
                     linestyle="", label="impacted router"),
              Line2D([], [], color=NORMAL, marker="o", linestyle="", label="router")]
    ax.legend(handles=legend, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return save(fig, path)
