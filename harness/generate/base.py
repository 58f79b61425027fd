"""The generator protocol, its plain-data inputs, and the registry of generators.

A generator is anything with ``name`` and
``propose(kg, state, feedback, n, seed) -> list[Scenario]``. It returns *candidate*
scenarios; the caller validates them (the causal validator is the only judge), so a
generator may return invalid ones — the LLM ablations do, on purpose.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from harness.kg.model import KnowledgeGraph
from harness.scenario.model import Scenario


@dataclass
class GenState:
    """Where a campaign stands: its topology, iteration, and the scenarios accepted so far."""

    topology: str = ""
    iteration: int = 0
    history: list[Scenario] = field(default_factory=list)
    max_events: int = 3
    horizon_s: float = 600.0
    event_types: list[str] | None = None


@dataclass
class Feedback:
    """What earlier results said, compactly, for the next round of generation.

    ``worst``: the most damaging scenarios, each ``{"id", "events": "type@target, …",
    "loss_pct", "impacted_nodes", "cascade_depth", "why"}``; ``fixed``: what mitigation
    repaired (``{"id", "strategy", "loss_before", "loss_after"}``); ``rejected``: recent
    validator rejections (``{"id", "reason"}``).
    """

    worst: list[dict] = field(default_factory=list)
    fixed: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.worst or self.fixed or self.rejected)

    def as_text(self, limit: int = 5) -> str:
        lines = []
        for w in self.worst[:limit]:
            lines.append(f"- {w['events']}: loss {w['loss_pct']:.1f}%, {w['impacted_nodes']} impacted nodes, "
                         f"cascade depth {w['cascade_depth']}" + (f" ({w['why']})" if w.get("why") else ""))
        for f in self.fixed[:limit]:
            lines.append(f"- mitigation {f['strategy']} cut loss of {f['id']} from {f['loss_before']:.1f}% "
                         f"to {f['loss_after']:.1f}%")
        for r in self.rejected[:limit]:
            lines.append(f"- rejected {r['id']}: {r['reason']}")
        return "\n".join(lines)


@runtime_checkable
class Generator(Protocol):
    name: str

    def propose(self, kg: KnowledgeGraph, state: GenState, feedback: Feedback | None, n: int,
                seed: int) -> list[Scenario]: ...


def scenario_id(prefix: str, *parts: object) -> str:
    """A short deterministic id: ``prefix-<8 hex digits of the parts>``."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8]
    return f"{prefix}-{digest}"
