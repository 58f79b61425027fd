"""The scenario records every stage shares: :class:`Event`, :class:`Provenance`, :class:`Scenario`.

These models check *shape* only (types, ranges, allowed characters). Whether a scenario
makes sense on a network is the causal validator's job (:mod:`harness.scenario.validate`).
An event extends the paper's encoding
``{"event_type": "fiber_link_failure", "target": "B-C", "timestamp": 245.8, "severity": "high"}``
with an optional ``duration_s`` (the element recovers afterwards), typed ``params`` (declared
per event type in :mod:`harness.scenario.types`) and ``independent`` (declares the event a new
causal root, exempt from the causal-connection rule).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["low", "medium", "high"]
DEFAULT_HORIZON_S = 600.0
#: Every event leaves at least this much of the horizon after it, so that its effect can be
#: measured: ``min(MEASURE_TAIL_S, MEASURE_TAIL_SHARE x horizon)`` (:func:`latest_event_time`).
#: 30 s is one sample of a 30 s streaming-telemetry interval, a common setting — a modelling
#: choice, not a measurement; the share keeps short test horizons usable. (A model wrote a
#: router failure at t = 600 s of a 600 s horizon: nothing left to measure, issue 14.)
MEASURE_TAIL_S = 30.0
MEASURE_TAIL_SHARE = 0.05


def latest_event_time(horizon_s: float) -> float:
    """The latest timestamp an event may have in a scenario of ``horizon_s`` seconds."""
    return horizon_s - min(MEASURE_TAIL_S, MEASURE_TAIL_SHARE * horizon_s)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=256)
    timestamp: float = Field(ge=0)
    severity: Severity = "medium"
    duration_s: float | None = Field(default=None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    independent: bool = False

    def end(self) -> float:
        """When the event's effect ends (``inf`` for a permanent event)."""
        return self.timestamp + self.duration_s if self.duration_s is not None else float("inf")


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generator: str = "manual"
    model: str | None = None
    seed: int | None = None
    iteration: int | None = None
    prompt_hash: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    description: str = Field(default="", max_length=2000)
    topology: str = Field(default="", max_length=256)
    horizon_s: float = Field(default=DEFAULT_HORIZON_S, gt=0)
    events: list[Event] = Field(min_length=1)
    provenance: Provenance = Field(default_factory=Provenance)
