"""``power_outage``: a site loses power; every router within ``radius_km`` of the target fails.

Distances are great-circle (haversine) between the knowledge graph's router coordinates. A
router without coordinates cannot be placed: when it is the target, it fails alone (the
validator says so in a note); other routers without coordinates are never pulled in.
Everything recovers together after ``duration_s``.
"""

from __future__ import annotations

from pydantic import Field

from harness.kg.model import nid
from harness.scenario.events.base import Effect, EventType, Params
from harness.topology.geo import haversine_km

#: Default radius of a site's power outage (km): a metro area.
RADIUS_KM = 50.0


class PowerParams(Params):
    #: Routers within this great-circle distance of the target fail with it (km).
    radius_km: float = Field(default=RADIUS_KM, ge=0, le=2000)


def routers_within(kg, target: str, radius_km: float) -> list[str]:
    """The target and every router within ``radius_km`` of it (sorted; the target alone when
    it has no coordinates)."""
    a = kg.attrs("router", target)
    if a.get("lat") is None or a.get("lon") is None:
        return [target]
    out = [target]
    for r in kg.routers:
        b = kg.attrs("router", r)
        if r != target and b.get("lat") is not None and b.get("lon") is not None \
                and haversine_km(a["lat"], a["lon"], b["lat"], b["lon"]) <= radius_km:
            out.append(r)
    return sorted(out)


class PowerOutage(EventType):
    name = "power_outage"
    target_kind = "router"
    label = "power outage"
    description = "a site loses power: every router within params.radius_km of the target fails"
    params = PowerParams
    effect_kinds = frozenset({"routers_down"})

    def notes(self, kg, target, params):
        a = kg.attrs("router", target)
        if a.get("lat") is None or a.get("lon") is None:
            return [f"router {target} has no coordinates: the power outage fails it alone"]
        return []

    def touched(self, kg, target, params):
        return {nid("router", r) for r in routers_within(kg, target, _radius(params))}

    def effect(self, kg, target, params, index=0):
        return Effect(routers_down=frozenset(routers_within(kg, target, _radius(params))))


def _radius(params: dict) -> float:
    r = params.get("radius_km")
    return RADIUS_KM if r is None else float(r)
