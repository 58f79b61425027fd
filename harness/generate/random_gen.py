"""``random``: uniformly random valid events, built step by step from the admissible set."""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.generate.base import Feedback, GenState, scenario_id
from harness.scenario.causal import admissible_events
from harness.kg.model import KnowledgeGraph
from harness.scenario.model import Event, Provenance, Scenario, latest_event_time

SEVERITIES = ("low", "medium", "high")


def random_events(kg: KnowledgeGraph, rng: random.Random, count: int, horizon_s: float,
                  event_types: list[str] | None = None) -> list[Event]:
    """``count`` (or fewer, if nothing more is admissible) random admissible events."""
    events: list[Event] = []
    t = 0.0
    for _ in range(count):
        t = round(min(latest_event_time(horizon_s), t + rng.uniform(1.0, horizon_s / (2 * count))), 3)
        options = admissible_events(kg, events, at=t, event_types=event_types)
        if not options:
            break
        event_type = rng.choice(sorted(options))
        events.append(Event(event_type=event_type, target=rng.choice(options[event_type]), timestamp=t,
                            severity=rng.choice(SEVERITIES)))
    return events


@dataclass
class RandomGenerator:
    name: str = "random"

    def propose(self, kg: KnowledgeGraph, state: GenState, feedback: Feedback | None, n: int,
                seed: int) -> list[Scenario]:
        rng = random.Random(f"{seed}:{state.iteration}")
        out = []
        for k in range(n):
            events = random_events(kg, rng, rng.randint(1, state.max_events), state.horizon_s, state.event_types)
            if not events:
                continue
            out.append(Scenario(
                id=scenario_id("random", state.topology, seed, state.iteration, k),
                description="Random valid events: " + ", ".join(f"{e.event_type} on {e.target}" for e in events) + ".",
                topology=state.topology, horizon_s=state.horizon_s, events=events,
                provenance=Provenance(generator=self.name, seed=seed, iteration=state.iteration)))
        return out
