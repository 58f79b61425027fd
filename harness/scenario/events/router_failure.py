"""``router_failure``: a router fails, taking all its links with it."""

from __future__ import annotations

from harness.scenario.events.base import Effect, EventType


class RouterFailure(EventType):
    name = "router_failure"
    target_kind = "router"
    label = "router failure"
    description = "a router fails: it and all its links go down"
    effect_kinds = frozenset({"routers_down"})

    def effect(self, kg, target, params, index=0):
        return Effect(routers_down=frozenset({target}))
