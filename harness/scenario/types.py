"""The registry of event types: name -> the :class:`~harness.scenario.events.base.EventType`
that owns the type's semantics (one module each under :mod:`harness.scenario.events`).

Unknown and duplicate names are refused loudly. Everything that needs to know what an event
means asks its type here — the validator, blast radius, both twins, mitigation, the report and
the generators — so adding a type is its own module plus one :func:`register` line below.
"""

from __future__ import annotations

from typing import Iterable

from harness.errors import ConfigError
from harness.scenario.events.base import EFFECT_KINDS, Effect, EventType  # noqa: F401 (re-exported)

_REGISTRY: dict[str, EventType] = {}


def register(event_type: EventType) -> EventType:
    if event_type.name in _REGISTRY:
        raise ConfigError(f"event type {event_type.name!r} is already registered")
    if event_type.role and any(t.role == event_type.role for t in _REGISTRY.values()):
        raise ConfigError(f"event type {event_type.name!r}: role {event_type.role!r} is already taken")
    unknown = set(event_type.effect_kinds) - EFFECT_KINDS
    if unknown:
        raise ConfigError(f"event type {event_type.name!r} declares unknown effect kinds {sorted(unknown)}")
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


def for_role(role: str) -> EventType:
    """The type registered for ``role`` (see :attr:`EventType.role`)."""
    for t in _REGISTRY.values():
        if t.role == role:
            return t
    raise ConfigError(f"no event type is registered for the role {role!r}")


def removals() -> list[EventType]:
    """Types that only take elements down, with a link or router target: links first."""
    out = [t for t in _REGISTRY.values()
           if t.effect_kinds <= {"links_down", "routers_down"} and t.target_kind in ("link", "router")]
    return sorted(out, key=lambda t: t.target_kind != "link")


def effect_of(kg, event, index: int = 0) -> Effect:
    """The :class:`Effect` of a validated event (an Event or a dict with the same fields)."""
    get_ = event.get if isinstance(event, dict) else lambda k: getattr(event, k)
    return get(get_("event_type")).effect(kg, get_("target"), get_("params") or {}, index)


def require_effects(twin: str, supported: Iterable[str]) -> None:
    """Refuse to load ``twin`` when a registered type needs an effect kind it cannot realise."""
    supported = set(supported)
    missing = {t.name: sorted(t.effect_kinds - supported) for t in _REGISTRY.values() if t.effect_kinds - supported}
    if missing:
        raise ConfigError(f"the {twin} twin cannot realise event type(s) "
                          + "; ".join(f"{n} (needs {', '.join(k)})" for n, k in sorted(missing.items())))


def _register_builtins() -> None:
    from harness.scenario.events import (ddos_spike, fiber_link_failure, link_degradation, misconfiguration,
                                         power_outage, router_failure, router_overload, srlg_failure, traffic_surge)

    for t in (fiber_link_failure.FiberLinkFailure, srlg_failure.SrlgFailure, router_failure.RouterFailure,
              router_overload.RouterOverload, link_degradation.LinkDegradation, traffic_surge.TrafficSurge,
              ddos_spike.DDoSSpike, misconfiguration.Misconfiguration, power_outage.PowerOutage):
        register(t())


_register_builtins()
