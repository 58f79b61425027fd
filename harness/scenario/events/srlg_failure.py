"""``srlg_failure``: a shared-risk link group fails, every link in it goes down."""

from __future__ import annotations

from harness.kg.model import nid
from harness.scenario.events.base import Effect, EventType


class SrlgFailure(EventType):
    name = "srlg_failure"
    target_kind = "srlg"
    label = "SRLG failure"
    description = "a shared-risk group fails: every link in it goes down"
    effect_kinds = frozenset({"links_down"})

    def touched(self, kg, target, params):
        return {nid("link", l) for l in kg.attrs("srlg", target)["links"]}

    def effect(self, kg, target, params, index=0):
        return Effect(links_down=frozenset(kg.attrs("srlg", target)["links"]))
