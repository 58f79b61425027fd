"""``mutate``: the paper's Adversarial Scenario Generator.

Takes existing scenarios (the campaign's history, worst first when feedback ranks them)
and applies one operator each, keeping only what stays valid:

* ``surge``        add a traffic surge towards a router the scenario already hits;
* ``simultaneous`` make every event fire at the first event's time;
* ``extend``       extend the cascade: fail one more admissible link next to the last target;
* ``reorder``      swap the order of two events (timestamps stay sorted);
* ``stress``       raise every event's severity to ``high``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.generate.base import Feedback, GenState, scenario_id
from harness.scenario.causal import admissible_events
from harness.kg.model import KnowledgeGraph
from harness.scenario import types as event_types
from harness.scenario.model import Event, Provenance, Scenario, MEASURE_TAIL_S
from harness.scenario.validate import check_scenario

OPERATORS = ("surge", "simultaneous", "extend", "reorder", "stress")


def _routers_hit(kg: KnowledgeGraph, s: Scenario) -> list[str]:
    out = []
    for e in s.events:
        if kg.has("link", e.target):
            out += list(kg.link_ends(e.target))
        elif kg.has("router", e.target):
            out.append(e.target)
    return sorted(set(out))


def mutate(kg: KnowledgeGraph, s: Scenario, op: str, rng: random.Random) -> list[Event] | None:
    events = [e.model_copy() for e in s.events]
    last_t = events[-1].timestamp
    if op == "surge":
        targets = _routers_hit(kg, s)
        if not targets:
            return None
        return events + [Event(event_type=event_types.for_role("surge").name, target=rng.choice(targets),
                               timestamp=last_t + 5.0, severity="high")]
    if op == "simultaneous":
        if len(events) < 2:
            return None
        return [e.model_copy(update={"timestamp": events[0].timestamp}) for e in events]
    if op == "extend":
        cut = event_types.for_role("cut").name
        options = admissible_events(kg, events, at=last_t + 10.0, event_types=[cut])
        links = options.get(cut, [])
        near = [l for l in links if set(kg.link_ends(l)) & set(_routers_hit(kg, s))] or links
        if not near:
            return None
        return events + [Event(event_type=cut, target=rng.choice(near),
                               timestamp=last_t + 10.0, severity="high")]
    if op == "reorder":
        if len(events) < 2:
            return None
        i, j = rng.sample(range(len(events)), 2)
        times = [e.timestamp for e in events]
        events[i], events[j] = events[j], events[i]
        return [e.model_copy(update={"timestamp": t}) for e, t in zip(events, times)]
    if op == "stress":
        return [e.model_copy(update={"severity": "high", "params": {}}) for e in events]
    raise ValueError(op)


@dataclass
class MutateGenerator:
    name: str = "mutate"

    def propose(self, kg: KnowledgeGraph, state: GenState, feedback: Feedback | None, n: int,
                seed: int) -> list[Scenario]:
        rng = random.Random(f"{seed}:{state.iteration}")
        parents = list(state.history)
        if feedback and feedback.worst:
            rank = {w["id"]: i for i, w in enumerate(feedback.worst)}
            parents.sort(key=lambda s: rank.get(s.id, len(rank)))
        if not parents:
            return []
        out: list[Scenario] = []
        attempts = 0
        while len(out) < n and attempts < 20 * n:
            parent = parents[(seed + attempts) % len(parents)] if attempts < len(parents) else rng.choice(parents)
            attempts += 1
            op = rng.choice(OPERATORS)
            events = mutate(kg, parent, op, rng)
            if not events or len(events) > max(state.max_events, len(parent.events)) + 1:
                continue
            child = Scenario(
                id=scenario_id("mutate", parent.id, op, attempts, seed, state.iteration),
                description=f"{parent.description} Mutated ({op}).".strip()[:2000],
                topology=parent.topology or state.topology, horizon_s=max(parent.horizon_s, events[-1].timestamp + MEASURE_TAIL_S),
                events=events,
                provenance=Provenance(generator=self.name, seed=seed, iteration=state.iteration,
                                      extra={"parent": parent.id, "operator": op}))
            if isinstance(check_scenario(kg, child), Scenario):
                out.append(child)
        return out
