"""Mitigation strategies: each turns what a twin observed in the failure phase into actions.

A strategy is ``plan(kg, scenario, view) -> list[Action]``. ``view`` is a :class:`FailureView`
(plain data any twin can fill from its own measurements); actions are plain dicts that every
twin knows how to apply:

* ``{"action": "reroute", "avoid_links": [...], "load_aware": true}`` — recompute paths
  avoiding failed, degraded and congested links, preferring headroom (widest-shortest).
* ``{"action": "rate_limit", "router": R, "mbps": X}`` — cap the traffic entering at R.
* ``{"action": "add_capacity", "link": L, "mbps": X}`` — reallocate spare capacity onto L.
* ``{"action": "rollback", "router": R}`` — undo R's misconfiguration.

``auto`` picks per kind of effect (:class:`~harness.scenario.events.base.Effect`): elements
down, degraded or overloaded → reroute (and reallocate where links stay congested); extra
traffic (surges, DDoS) → rate_limit; misroutes → rollback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from harness.errors import ConfigError
from harness.kg.model import KnowledgeGraph
from harness.scenario import types as event_types
from harness.scenario.events.base import Effect
from harness.scenario.model import Scenario
from harness.monitoring import CONGESTION_THRESHOLD

Action = dict
#: Headroom over a source's normal volume that a rate limit leaves (10 %).
RATE_LIMIT_HEADROOM = 1.1
#: Share of the network's total capacity that ``reallocate`` may add (10 %).
REALLOCATE_BUDGET = 0.10


@dataclass
class FailureView:
    """What the failure phase looked like, in plain data."""

    failed_links: set[str] = field(default_factory=set)
    failed_routers: set[str] = field(default_factory=set)
    link_utilisation: dict[str, float] = field(default_factory=dict)
    link_load_mbps: dict[str, float] = field(default_factory=dict)
    link_capacity_mbps: dict[str, float] = field(default_factory=dict)

    def congested(self) -> list[str]:
        return sorted(l for l, u in self.link_utilisation.items()
                      if u >= CONGESTION_THRESHOLD and l not in self.failed_links)


def _effects(kg: KnowledgeGraph, scenario: Scenario) -> list[Effect]:
    return [event_types.effect_of(kg, e, i) for i, e in enumerate(scenario.events)]


def reroute(kg: KnowledgeGraph, scenario: Scenario, view: FailureView) -> list[Action]:
    effects = _effects(kg, scenario)
    degraded = {l for x in effects for l in (*x.link_loss_pct, *x.link_capacity)}
    overloaded = {r for x in effects for r in x.router_capacity}
    avoid = set(view.congested()) | degraded
    for r in overloaded:
        avoid |= {l for l in kg.links if r in kg.link_ends(l)}
    return [{"action": "reroute", "avoid_links": sorted(avoid - view.failed_links), "load_aware": True}]


def rate_limit(kg: KnowledgeGraph, scenario: Scenario, view: FailureView) -> list[Action]:
    sources = {t.src for x in _effects(kg, scenario) for t in x.traffic}
    normal = {r: 0.0 for r in sources}
    for f in kg.flows:
        a = kg.attrs("flow", f)
        if a["src"] in normal:
            normal[a["src"]] += a["demand_mbps"]
    return [{"action": "rate_limit", "router": r, "mbps": round(normal[r] * RATE_LIMIT_HEADROOM, 6)}
            for r in sorted(sources)]


def reallocate(kg: KnowledgeGraph, scenario: Scenario, view: FailureView,
               budget_share: float = REALLOCATE_BUDGET) -> list[Action]:
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


def rollback(kg: KnowledgeGraph, scenario: Scenario, view: FailureView) -> list[Action]:
    return [{"action": "rollback", "router": r}
            for r in sorted({m.router for x in _effects(kg, scenario) for m in x.misroutes})]


def auto(kg: KnowledgeGraph, scenario: Scenario, view: FailureView) -> list[Action]:
    kinds = set().union(*(x.kinds() for x in _effects(kg, scenario)))
    actions: list[Action] = []
    if kinds & {"links_down", "routers_down", "link_loss_pct", "link_capacity", "router_capacity"}:
        actions += reroute(kg, scenario, view) + reallocate(kg, scenario, view)
    if "traffic" in kinds:
        actions += rate_limit(kg, scenario, view)
    if "misroutes" in kinds:
        actions += rollback(kg, scenario, view)
    return actions


STRATEGIES: dict[str, Callable[[KnowledgeGraph, Scenario, FailureView], list[Action]]] = {
    "reroute": reroute, "rate_limit": rate_limit, "reallocate": reallocate, "rollback": rollback, "auto": auto,
}


def plan(strategy: str, kg: KnowledgeGraph, scenario: Scenario, view: FailureView) -> list[Action]:
    """The actions ``strategy`` chooses; unknown strategy names are refused."""
    try:
        fn = STRATEGIES[strategy]
    except KeyError:
        raise ConfigError(f"unknown mitigation {strategy!r}; choose one of none, {', '.join(STRATEGIES)}") from None
    return fn(kg, scenario, view)
