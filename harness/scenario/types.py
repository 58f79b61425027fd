"""The registry of event types: what each type targets and which parameters it takes.

Each :class:`EventType` names the kind of knowledge-graph element it targets (``link``,
``router`` or ``srlg``), a pydantic model of its parameters (unknown keys refused), and
severity-dependent defaults. The registry refuses unknown and duplicate names loudly.
Parameters that name routers (``sources``, ``destinations``, ``next_hop``) are checked
against the knowledge graph by the causal validator, like targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ConfigError

TargetKind = Literal["link", "router", "srlg"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoParams(_Params):
    pass


class OverloadParams(_Params):
    #: Fraction of the router's forwarding capacity left while overloaded.
    capacity_factor: float | None = Field(default=None, gt=0, le=1)


class DegradationParams(_Params):
    #: Random loss added on the link, percent.
    loss_pct: float | None = Field(default=None, ge=0, le=100)
    #: Fraction of the link's capacity left.
    capacity_factor: float | None = Field(default=None, gt=0, le=1)


class SurgeParams(_Params):
    #: Routers whose demand towards the target surges; empty = every router.
    sources: list[str] = Field(default_factory=list, max_length=64)
    #: Demand multiplier for the affected flows.
    multiplier: float | None = Field(default=None, gt=1, le=100)


class DDoSParams(_Params):
    #: Attacking routers (their hosts send); empty = every other router (distributed).
    sources: list[str] = Field(default_factory=list, max_length=64)
    #: Total attack rate as a multiple of the target's access capacity.
    intensity: float | None = Field(default=None, gt=0, le=20)
    protocol: Literal["udp", "syn"] = "udp"
    spoofed: bool = False


class MisconfigParams(_Params):
    mode: Literal["blackhole", "wrong_next_hop"] = "blackhole"
    #: Destination routers whose traffic is affected; empty = all.
    destinations: list[str] = Field(default_factory=list, max_length=64)
    #: Neighbour the router wrongly forwards to (``wrong_next_hop`` only).
    next_hop: str | None = None


@dataclass(frozen=True)
class EventType:
    name: str
    target_kind: TargetKind
    params: type[_Params]
    description: str
    #: Defaults filled in from the event's severity when a parameter is omitted.
    severity_defaults: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Whether the event takes elements down (links/routers stop existing for routing).
    removes: bool = False

    def normalise(self, params: dict, severity: str) -> dict:
        """Validate ``params`` and fill severity defaults; raises pydantic ValidationError."""
        model = self.params.model_validate(params)
        out = model.model_dump()
        for key, value in self.severity_defaults.get(severity, {}).items():
            if out.get(key) is None:
                out[key] = value
        return out


_REGISTRY: dict[str, EventType] = {}


def register(event_type: EventType) -> EventType:
    if event_type.name in _REGISTRY:
        raise ConfigError(f"event type {event_type.name!r} is already registered")
    _REGISTRY[event_type.name] = event_type
    return event_type


def get(name: str) -> EventType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown event type {name!r}; known: {', '.join(_REGISTRY)}") from None


def names() -> list[str]:
    return list(_REGISTRY)


def all_types() -> list[EventType]:
    return list(_REGISTRY.values())


register(EventType("fiber_link_failure", "link", NoParams, "a fibre cut: the link goes down", removes=True))
register(EventType("srlg_failure", "srlg", NoParams, "a shared-risk group fails: every link in it goes down", removes=True))
register(EventType("router_failure", "router", NoParams, "a router fails: it and all its links go down", removes=True))
register(EventType(
    "router_overload", "router", OverloadParams,
    "a router's forwarding capacity drops (CPU/buffer exhaustion)",
    {"low": {"capacity_factor": 0.7}, "medium": {"capacity_factor": 0.5}, "high": {"capacity_factor": 0.25}}))
register(EventType(
    "link_degradation", "link", DegradationParams,
    "a link degrades: random loss and/or a lower capacity",
    {"low": {"loss_pct": 1.0, "capacity_factor": 1.0}, "medium": {"loss_pct": 5.0, "capacity_factor": 0.75},
     "high": {"loss_pct": 10.0, "capacity_factor": 0.5}}))
register(EventType(
    "traffic_surge", "router", SurgeParams,
    "demand towards the target router surges from the given sources",
    {"low": {"multiplier": 2.0}, "medium": {"multiplier": 4.0}, "high": {"multiplier": 8.0}}))
register(EventType(
    "ddos_spike", "router", DDoSParams,
    "a volumetric attack floods the target router's host from the given sources",
    {"low": {"intensity": 0.5}, "medium": {"intensity": 1.0}, "high": {"intensity": 2.0}}))
register(EventType(
    "misconfiguration", "router", MisconfigParams,
    "a router blackholes or misroutes traffic (a bad configuration push)"))
