"""``ddos_spike``: a volumetric attack floods a router's host."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.scenario.events.base import Effect, EventType, Params, Traffic


class DDoSParams(Params):
    #: Attacking routers (their hosts send); empty = every other router (distributed).
    sources: list[str] = Field(default_factory=list, max_length=64)
    #: Total attack rate as a multiple of the target's access capacity.
    intensity: float | None = Field(default=None, gt=0, le=20)
    protocol: Literal["udp", "syn"] = "udp"
    spoofed: bool = False


class DDoSSpike(EventType):
    name = "ddos_spike"
    target_kind = "router"
    label = "DDoS spike"
    description = "a volumetric attack floods the target router's host from the given sources"
    params = DDoSParams
    severity_defaults = {"low": {"intensity": 0.5}, "medium": {"intensity": 1.0}, "high": {"intensity": 2.0}}
    effect_kinds = frozenset({"traffic"})
    router_params = ("sources",)
    reach_from = "sources"

    def effect(self, kg, target, params, index=0):
        """``intensity ×`` the target's access capacity (sum of its links' capacities), split
        evenly over the sources (default: every other router)."""
        sources = params.get("sources") or [r for r in kg.routers if r != target]
        access = sum(d["capacity_mbps"] for _, _, d in kg.topology.edges(target, data=True))
        each = params["intensity"] * access / len(sources)
        return Effect(traffic=tuple(
            Traffic(s, target, each, f"ddos{index}:{s}~{target}", kind="flood",
                    protocol=params.get("protocol", "udp"), spoofed=bool(params.get("spoofed")))
            for s in sources))
