"""``link_degradation``: a link keeps working with random loss and/or less capacity."""

from __future__ import annotations

from pydantic import Field

from harness.scenario.events.base import Effect, EventType, Params


class DegradationParams(Params):
    #: Random loss added on the link, percent.
    loss_pct: float | None = Field(default=None, ge=0, le=100)
    #: Fraction of the link's capacity left.
    capacity_factor: float | None = Field(default=None, gt=0, le=1)


class LinkDegradation(EventType):
    name = "link_degradation"
    target_kind = "link"
    label = "link degradation"
    description = "a link degrades: random loss and/or a lower capacity"
    params = DegradationParams
    severity_defaults = {"low": {"loss_pct": 1.0, "capacity_factor": 1.0},
                         "medium": {"loss_pct": 5.0, "capacity_factor": 0.75},
                         "high": {"loss_pct": 10.0, "capacity_factor": 0.5}}
    effect_kinds = frozenset({"link_loss_pct", "link_capacity"})
    condition = "degraded"

    def effect(self, kg, target, params, index=0):
        return Effect(link_loss_pct={target: params["loss_pct"]}, link_capacity={target: params["capacity_factor"]})
