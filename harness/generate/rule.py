"""``rule``: rule-based fault injection with manually defined failures (the paper's baseline 1).

Every event type that only takes elements down (:func:`harness.scenario.types.removals`:
link cuts, router failures, ...), on every link, then every router, one at a time, most central first (edge betweenness for
links, node betweenness for routers, both weighted by delay). Successive calls continue
where the campaign's history left off, and wrap around when everything was tried.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from harness.generate.base import Feedback, GenState, scenario_id
from harness.kg.model import KnowledgeGraph
from harness.scenario import types as event_types
from harness.scenario.model import Event, Provenance, Scenario


def rule_order(kg: KnowledgeGraph) -> list[tuple[str, str]]:
    topo = kg.topology
    eb = nx.edge_betweenness_centrality(topo, weight="delay_ms")
    nb = nx.betweenness_centrality(topo, weight="delay_ms")
    links = sorted(kg.links, key=lambda l: (-eb.get(tuple(kg.link_ends(l)), eb.get(tuple(reversed(kg.link_ends(l))), 0)), l))
    routers = sorted(kg.routers, key=lambda r: (-nb[r], r))
    return [(t.name, x) for t in event_types.removals() for x in (links if t.target_kind == "link" else routers)]


@dataclass
class RuleGenerator:
    name: str = "rule"

    def propose(self, kg: KnowledgeGraph, state: GenState, feedback: Feedback | None, n: int,
                seed: int) -> list[Scenario]:
        order = rule_order(kg)
        done = sum(1 for s in state.history if s.provenance.generator == self.name)
        out = []
        for k in range(n):
            event_type, target = order[(done + k) % len(order)]
            out.append(Scenario(
                id=scenario_id("rule", state.topology, event_type, target, done + k),
                description=f"Rule-based injection: {event_type.replace('_', ' ')} of {target}.",
                topology=state.topology,
                events=[Event(event_type=event_type, target=target, timestamp=10.0, severity="high")],
                provenance=Provenance(generator=self.name, seed=seed, iteration=state.iteration)))
        return out
