"""``router_overload``: a router's forwarding capacity drops (CPU or buffer exhaustion)."""

from __future__ import annotations

from pydantic import Field

from harness.scenario.events.base import Effect, EventType, Params


class OverloadParams(Params):
    #: Fraction of the router's forwarding capacity left while overloaded.
    capacity_factor: float | None = Field(default=None, gt=0, le=1)


class RouterOverload(EventType):
    name = "router_overload"
    target_kind = "router"
    label = "router overload"
    description = "a router's forwarding capacity drops (CPU/buffer exhaustion)"
    params = OverloadParams
    severity_defaults = {"low": {"capacity_factor": 0.7}, "medium": {"capacity_factor": 0.5},
                         "high": {"capacity_factor": 0.25}}
    effect_kinds = frozenset({"router_capacity"})
    condition = "overloaded"

    def effect(self, kg, target, params, index=0):
        return Effect(router_capacity={target: params["capacity_factor"]})
