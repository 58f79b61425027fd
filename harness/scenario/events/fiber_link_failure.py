"""``fiber_link_failure``: a fibre cut takes one link down (both directions)."""

from __future__ import annotations

from harness.scenario.events.base import Effect, EventType


class FiberLinkFailure(EventType):
    name = "fiber_link_failure"
    target_kind = "link"
    label = "fiber link failure"
    description = "a fibre cut: the link goes down"
    effect_kinds = frozenset({"links_down"})
    role = "cut"

    def effect(self, kg, target, params, index=0):
        return Effect(links_down=frozenset({target}))
