"""``traffic_surge``: demand towards a router multiplies (a flash crowd, a busy hour)."""

from __future__ import annotations

from pydantic import Field

from harness.scenario.events.base import R5, Effect, EventType, Params, Traffic


class SurgeParams(Params):
    #: Routers whose demand towards the target surges; empty = every router.
    sources: list[str] = Field(default_factory=list, max_length=64)
    #: Demand multiplier for the affected flows.
    multiplier: float | None = Field(default=None, gt=1, le=100)


class TrafficSurge(EventType):
    name = "traffic_surge"
    target_kind = "router"
    label = "traffic surge"
    description = "demand towards the target router surges from the given sources"
    params = SurgeParams
    severity_defaults = {"low": {"multiplier": 2.0}, "medium": {"multiplier": 4.0}, "high": {"multiplier": 8.0}}
    effect_kinds = frozenset({"traffic"})
    router_params = ("sources",)
    reach_from = "sources"
    role = "surge"

    def check(self, state, target, params):
        problems = super().check(state, target, params)
        if not problems and params.get("sources") and not any(
                state.kg.attrs("flow", f)["dst"] == target and state.kg.attrs("flow", f)["src"] in params["sources"]
                for f in state.kg.flows):
            problems.append((R5, f"no flow from {', '.join(params['sources'])} to {target}: the surge would change nothing"))
        return problems

    def effect(self, kg, target, params, index=0):
        """``(multiplier - 1) ×`` the KG demand of every flow source → target."""
        sources = set(params.get("sources") or kg.routers)
        extra = []
        for f in kg.flows:
            a = kg.attrs("flow", f)
            if a["dst"] == target and a["src"] in sources:
                extra.append(Traffic(a["src"], target, a["demand_mbps"] * (params["multiplier"] - 1), f"surge{index}:{f}"))
        return Effect(traffic=tuple(extra))
