"""Mitigation strategies: each turns what monitoring saw in the failure window into actions.

A strategy is ``plan(kg, view) -> list[Action]``: the knowledge graph (the operator's
inventory: topology, nominal capacities) and a :class:`~harness.monitoring.FailureView`,
which each twin fills from its own measurements. The scenario is not an argument: the
planner cannot know what was injected, only what it looks like. Actions are plain dicts that
every twin knows how to apply:

* ``{"action": "reroute", "avoid_links": [...], "load_aware": true}`` — recompute paths
  avoiding congested, lossy and slowed links and the links of overloaded routers, preferring
  headroom (widest-shortest).
* ``{"action": "rate_limit", "router": R, "mbps": X}`` — a meter on R's host ports: it polices
  everything R's hosts send, attack and legitimate alike, in proportion (no classifier).
* ``{"action": "add_capacity", "link": L, "mbps": X}`` — reallocate spare capacity onto L.
* ``{"action": "rollback", "router": R}`` — restore R's forwarding to the controller's intent.

``auto`` picks from the symptoms: failed, congested, lossy, slowed links or overloaded
routers → reroute (and reallocate where links are congested); sources sending well above
their baseline → rate_limit; forwarding entries off intent → rollback.
:func:`cannot_help` says which flows no action can restore (cut off by failures).
"""

from __future__ import annotations

from typing import Callable

import networkx as nx

from harness.errors import ConfigError
from harness.kg.model import KnowledgeGraph
from harness.monitoring import CONGESTION_THRESHOLD, FailureView

Action = dict
#: Headroom over a source's baseline rate that a rate limit leaves (10 %): enough for the
#: normal rate's second-to-second variation in the emulation's baseline windows (a policy).
RATE_LIMIT_HEADROOM = 1.1
#: Share of the network's total capacity that ``reallocate`` may add (10 %).
REALLOCATE_BUDGET = 0.10
#: A link counts as slowed when its current rate is below this share of its nominal one.
SLOWED_SHARE = 0.99


def slowed_links(kg: KnowledgeGraph, view: FailureView) -> list[str]:
    """Live links whose observed rate is below their nominal capacity (a degraded port)."""
    out = []
    for l, cap in view.link_capacity_mbps.items():
        if l in view.failed_links or not kg.has("link", l):
            continue
        if cap < SLOWED_SHARE * kg.attrs("link", l)["capacity_mbps"]:
            out.append(l)
    return sorted(out)


def _avoid(kg: KnowledgeGraph, view: FailureView) -> set[str]:
    avoid = set(view.congested()) | set(view.lossy_links()) | set(slowed_links(kg, view))
    for r in view.overloaded_routers():
        avoid |= set(kg.router_links(r))
    return avoid - view.failed_links


def reroute(kg: KnowledgeGraph, view: FailureView) -> list[Action]:
    return [{"action": "reroute", "avoid_links": sorted(_avoid(kg, view)), "load_aware": True}]


def rate_limit(kg: KnowledgeGraph, view: FailureView) -> list[Action]:
    return [{"action": "rate_limit", "router": r,
             "mbps": round(view.source_baseline_mbps.get(r, 0.0) * RATE_LIMIT_HEADROOM, 6)}
            for r in view.surging_sources()]


def reallocate(kg: KnowledgeGraph, view: FailureView, budget_share: float = REALLOCATE_BUDGET) -> list[Action]:
    budget = budget_share * sum(kg.attrs("link", l)["capacity_mbps"] for l in kg.links)
    actions = []
    for l in sorted(view.congested(), key=lambda l: -view.link_utilisation[l]):
        need = view.link_load_mbps.get(l, 0.0) / CONGESTION_THRESHOLD * 0.99 - view.link_capacity_mbps.get(l, 0.0)
        add = min(max(need, 0.0), budget)
        if add <= 0:
            continue
        actions.append({"action": "add_capacity", "link": l, "mbps": round(add, 3)})
        budget -= add
        if budget <= 0:
            break
    return actions


def rollback(kg: KnowledgeGraph, view: FailureView) -> list[Action]:
    return [{"action": "rollback", "router": r} for r in sorted(view.forwarding_drift) if view.forwarding_drift[r]]


def auto(kg: KnowledgeGraph, view: FailureView) -> list[Action]:
    actions: list[Action] = []
    if view.failed_links or view.failed_routers or _avoid(kg, view):
        actions += reroute(kg, view) + reallocate(kg, view)
    actions += rate_limit(kg, view)
    actions += rollback(kg, view)
    return actions


STRATEGIES: dict[str, Callable[[KnowledgeGraph, FailureView], list[Action]]] = {
    "reroute": reroute, "rate_limit": rate_limit, "reallocate": reallocate, "rollback": rollback, "auto": auto,
}


def plan(strategy: str, kg: KnowledgeGraph, view: FailureView) -> list[Action]:
    """The actions ``strategy`` chooses from ``view``; unknown strategy names are refused."""
    try:
        fn = STRATEGIES[strategy]
    except KeyError:
        raise ConfigError(f"unknown mitigation {strategy!r}; choose one of none, {', '.join(STRATEGIES)}") from None
    return fn(kg, view)


def cannot_help(kg: KnowledgeGraph, view: FailureView) -> list[str]:
    """The knowledge graph's flows no action can restore: an end router failed, or the failed
    links and routers leave no path between its ends (a bridge cut, an isolated router)."""
    g = kg.topology.copy()
    g.remove_edges_from([kg.link_ends(l) for l in view.failed_links if kg.has("link", l)])
    g.remove_nodes_from(view.failed_routers)
    comp = {r: i for i, c in enumerate(nx.connected_components(g)) for r in c}
    out = []
    for f in kg.flows:
        a = kg.attrs("flow", f)
        s, d = a["src"], a["dst"]
        if s not in comp or d not in comp or comp[s] != comp[d]:
            out.append(f)
    return sorted(out)


def outlook(kg: KnowledgeGraph, view: FailureView, actions: list[Action]) -> list[str]:
    """What the plan cannot do, in words, for the result (empty when nothing to say)."""
    notes = []
    lost = cannot_help(kg, view)
    if lost:
        shown = ", ".join(lost[:5]) + (f", … and {len(lost) - 5} more" if len(lost) > 5 else "")
        notes.append(f"{len(lost)} flows are cut off by the failed links and routers ({shown}): "
                     f"no mitigation can restore them until the failed elements are repaired")
    if not actions:
        notes.append("monitoring saw nothing this strategy acts on: no action taken")
    return notes
