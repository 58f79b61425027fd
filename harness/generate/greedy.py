"""``greedy``: the strong classical adversary — worst-case search on the flow twin.

Ranks every single link cut with :func:`harness.twin.sweep.sweep` (exhaustive for k=1),
then grows each of the ``n`` worst into a multi-cut scenario greedily: at each step it adds
the admissible link cut (causally connected, alive) that maximises lost traffic on the flow
twin, up to ``state.max_events`` cuts, stopping when no cut adds damage. Candidates at each
step are the :data:`CANDIDATES` admissible links with the worst single-cut impact (the sweep's
ranking), and every evaluated cut set is remembered, so later iterations cost little.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.generate.base import Feedback, GenState, scenario_id
from harness.scenario.causal import admissible_events
from harness.kg.model import KnowledgeGraph
from harness.scenario import types as event_types
from harness.scenario.model import Event, Provenance, Scenario
from harness.twin.flow.engine import NetState
from harness.twin.flow.twin import FlowTwin, lost_mbps
from harness.twin.sweep import sweep


CANDIDATES = 16


@dataclass
class GreedyGenerator:
    name: str = "greedy"
    twin: FlowTwin = field(default_factory=FlowTwin, repr=False)
    _losses: dict = field(default_factory=dict, repr=False)
    _ranked: dict = field(default_factory=dict, repr=False)

    def _loss(self, kg: KnowledgeGraph, links: list[str]) -> float:
        key = (id(kg), frozenset(links))
        if key not in self._losses:
            out = self.twin.engine(kg).evaluate(NetState(failed_links=frozenset(links)))
            self._losses[key] = lost_mbps(out, len(kg.flows))
        return self._losses[key]

    def propose(self, kg: KnowledgeGraph, state: GenState, feedback: Feedback | None, n: int,
                seed: int) -> list[Scenario]:
        if id(kg) not in self._ranked:
            self._ranked[id(kg)] = (kg, sweep(kg, 1, twin=self.twin))
        ranked = self._ranked[id(kg)][1]
        order = {r["links"][0]: i for i, r in enumerate(ranked)}
        done = sum(1 for s in state.history if s.provenance.generator == self.name)
        cut = event_types.for_role("cut").name
        out = []
        for k in range(n):
            first = ranked[(done + k) % len(ranked)]["links"][0]
            chosen = [first]
            events = [Event(event_type=cut, target=first, timestamp=10.0, severity="high")]
            best = self._loss(kg, chosen)
            while len(chosen) < state.max_events:
                t = 10.0 + 10.0 * len(chosen)
                options = admissible_events(kg, events, at=t, event_types=[cut])
                candidates = sorted(options.get(cut, []), key=order.__getitem__)[:CANDIDATES]
                scored = [(self._loss(kg, chosen + [l]), l) for l in candidates]
                if not scored:
                    break
                loss, link = max(scored, key=lambda x: (x[0], x[1]))
                if loss <= best + 1e-9:
                    break
                best = loss
                chosen.append(link)
                events.append(Event(event_type=cut, target=link, timestamp=t, severity="high"))
            out.append(Scenario(
                id=scenario_id("greedy", state.topology, *chosen, done + k),
                description=f"Greedy worst case on the flow twin: cut {', '.join(chosen)}.",
                topology=state.topology, events=events,
                provenance=Provenance(generator=self.name, seed=seed, iteration=state.iteration,
                                      extra={"flow_loss_mbps": round(best, 6)})))
        return out
