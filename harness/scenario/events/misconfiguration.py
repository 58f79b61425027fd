"""``misconfiguration``: a bad configuration push makes a router blackhole or misroute."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.scenario.events.base import R2, Effect, EventType, Misroute, Params
from harness.topology.load import link_id


class MisconfigParams(Params):
    mode: Literal["blackhole", "wrong_next_hop"] = "blackhole"
    #: Destination routers whose traffic is affected; empty = all.
    destinations: list[str] = Field(default_factory=list, max_length=64)
    #: Neighbour the router wrongly forwards to (``wrong_next_hop`` only).
    next_hop: str | None = None


class Misconfiguration(EventType):
    name = "misconfiguration"
    target_kind = "router"
    label = "misconfiguration"
    description = "a router blackholes or misroutes traffic (a bad configuration push)"
    params = MisconfigParams
    effect_kinds = frozenset({"misroutes"})
    condition = "misconfigured"
    router_params = ("next_hop",)

    def check_names(self, kg, target, params):
        hop = params.get("next_hop")
        if params.get("mode") == "wrong_next_hop" and hop is None:
            return ["wrong_next_hop needs params.next_hop (a neighbour of the target)"]
        if hop is not None and (not kg.has("router", hop) or hop not in kg.topology[target]):
            return [f"next_hop {str(hop)[:80]!r} is not a neighbour of {target}"]
        return []

    def check(self, state, target, params):
        problems = super().check(state, target, params)
        hop = params.get("next_hop")
        if not problems and params.get("mode") == "wrong_next_hop" and hop is not None \
                and not state.link_alive(link_id(target, hop)):
            problems.append((R2, f"the link from {target} to next hop {hop} is down"))
        if not problems:
            problems += [(R2, f"destination router {d} is down") for d in params.get("destinations") or ()
                         if not state.router_alive(d)]
        return problems

    def effect(self, kg, target, params, index=0):
        dsts = frozenset(params.get("destinations") or ()) or None
        hop = params.get("next_hop") if params.get("mode") == "wrong_next_hop" else None
        return Effect(misroutes=(Misroute(target, dsts, hop),))
