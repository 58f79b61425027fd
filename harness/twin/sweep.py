"""Exhaustive failure sweeps on the flow twin: every single (k=1) or pair (k=2) of link cuts.

The ranked result is the exhaustive worst-case baseline that search and generation must
approach. Impact ranks by lost traffic, then unreachable pairs, then impacted nodes.
"""

from __future__ import annotations

import itertools
from typing import Callable

from harness.errors import ConfigError
from harness.kg.model import KnowledgeGraph
from harness.twin.flow.engine import NetState
from harness.twin.flow.twin import FlowTwin, impacted_nodes, loss_pct, sla_bounds


def sweep(kg: KnowledgeGraph, k: int = 1, *, twin: FlowTwin | None = None,
          progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Every k-subset of links cut at once, ranked by impact (worst first)."""
    if k not in (1, 2):
        raise ConfigError(f"sweep supports k=1 or k=2, not {k}")
    twin = twin or FlowTwin()
    eng = twin.engine(kg)
    n = len(kg.flows)
    combos = list(itertools.combinations(kg.links, k))
    bounds = sla_bounds(kg, eng.baseline.demand_ids[:n])   # the twins' own impacted-node rule
    rows = []
    for i, links in enumerate(combos):
        out = eng.evaluate(NetState(failed_links=frozenset(links)))
        reach = out.reachable[:n]
        impacted = impacted_nodes(kg, out, bounds)
        rows.append({
            "links": list(links),
            "loss_pct": loss_pct(out, n),
            "unreachable_pairs": int((~reach).sum()),
            "impacted_nodes": len(impacted),
            "max_link_util": round(float(out.link_utilisation[~out.link_failed].max()), 6),
            "cascade_depth": int(out.cascade_rounds),
        })
        if progress:
            progress(i + 1, len(combos))
    rows.sort(key=lambda r: (-r["loss_pct"], -r["unreachable_pairs"], -r["impacted_nodes"], r["links"]))
    return rows

