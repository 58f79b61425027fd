"""Exhaustive failure sweeps on the flow twin: every combination of up to ``k`` failed elements.

The elements are links (a fiber cut), routers (a router failure) and shared-risk groups (every
link of the group at once), as the operator scopes them (``kinds``). The ranked result is the
exhaustive worst case at an attack budget of ``k`` events that search and generation must
approach (issue 14: impact only compares at the same budget). With ``exactly=True`` only
combinations of exactly ``k`` elements are evaluated (the original link-pair sweep). Impact ranks
by lost traffic, then unreachable pairs, then impacted nodes.

Cost: one flow-twin evaluation per combination — C(n, 1) + ... + C(n, k) of them: Abilene with
links and routers (25 elements) at k = 2: 325; Geant2012 (95): 4,560.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

from harness.errors import ConfigError
from harness.kg.model import KnowledgeGraph
from harness.twin.flow.engine import NetState
from harness.twin.flow.twin import FlowTwin, impacted_nodes, loss_pct, sla_bounds

KINDS = ("link", "router", "srlg")
#: Combinations evaluated at most (a guard: k = 3 over a large graph is billions).
MAX_COMBINATIONS = 2_000_000


def elements(kg: KnowledgeGraph, kinds=("link",)) -> list[str]:
    """The sweep's elements, as ``kind:name``."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConfigError(f"sweep kinds must be among {', '.join(KINDS)}, not {list(kinds)}")
    return [f"{k}:{n}" for k in kinds for n in kg.names(k)]


def _state(kg: KnowledgeGraph, combo) -> NetState:
    links: set[str] = set()
    routers: set[str] = set()
    for el in combo:
        kind, name = el.split(":", 1)
        if kind == "link":
            links.add(name)
        elif kind == "router":
            routers.add(name)
        else:
            links |= set(kg.attrs("srlg", name)["links"])
    return NetState(failed_links=frozenset(links), failed_routers=frozenset(routers))


def count(n: int, k: int, exactly: bool = False) -> int:
    return math.comb(n, k) if exactly else sum(math.comb(n, j) for j in range(1, k + 1))


def sweep(kg: KnowledgeGraph, k: int = 1, *, kinds=("link",), exactly: bool = False, twin: FlowTwin | None = None,
          progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Every combination of up to ``k`` (or exactly ``k``) failed elements of ``kinds``, ranked
    by impact (worst first)."""
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"sweep k must be an integer >= 1, not {k!r}")
    els = elements(kg, kinds)
    total = count(len(els), k, exactly)
    if total > MAX_COMBINATIONS:
        raise ConfigError(f"a sweep of {len(els)} elements up to k={k} is {total:,} evaluations "
                          f"(more than {MAX_COMBINATIONS:,}): lower k or narrow the kinds")
    twin = twin or FlowTwin()
    eng = twin.engine(kg)
    n = len(kg.flows)
    sizes = [k] if exactly else range(1, k + 1)
    bounds = sla_bounds(kg, eng.baseline.demand_ids[:n])   # the twins' own impacted-node rule
    rows = []
    done = 0
    for size in sizes:
        for combo in itertools.combinations(els, size):
            state = _state(kg, combo)
            out = eng.evaluate(state)
            reach = out.reachable[:n]
            impacted = impacted_nodes(kg, out, bounds)
            alive = ~out.link_failed
            rows.append({
                "elements": list(combo),
                "links": sorted(state.failed_links),
                "routers": sorted(state.failed_routers),
                "loss_pct": loss_pct(out, n),
                "unreachable_pairs": int((~reach).sum()),
                "impacted_nodes": len(impacted),
                "max_link_util": round(float(out.link_utilisation[alive].max()), 6) if alive.any() else 0.0,
                "cascade_depth": int(out.cascade_rounds),
            })
            done += 1
            if progress:
                progress(done, total)
    rows.sort(key=lambda r: (-r["loss_pct"], -r["unreachable_pairs"], -r["impacted_nodes"], r["elements"]))
    return rows
