"""``replay``: historical failure replay from an incident log (JSONL).

Each record ``{"id", "event_type", "target", "description"?, "params"?, "severity"?}``
becomes a one-event scenario; records whose target the topology does not have are skipped
(and counted in ``skipped``). Successive calls continue through the log and wrap around.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.generate.base import Feedback, GenState, scenario_id
from harness.kg.model import KnowledgeGraph
from harness.scenario.model import Event, Provenance, Scenario
from harness.scenario.types import get as get_type

DEFAULT_LOG = Path(__file__).resolve().parents[2] / "topologies" / "incidents" / "abilene.jsonl"


def read_incidents(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read incident log {path}: {exc.strerror}") from None
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            rec["event_type"], rec["target"], rec["id"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{path}:{lineno}: not an incident (needs id, event_type, target)") from None
        out.append(rec)
    return out


@dataclass
class ReplayGenerator:
    log: str | Path = DEFAULT_LOG
    name: str = "replay"
    skipped: int = field(default=0, init=False)

    def propose(self, kg: KnowledgeGraph, state: GenState, feedback: Feedback | None, n: int,
                seed: int) -> list[Scenario]:
        usable = []
        self.skipped = 0
        for rec in read_incidents(self.log):
            try:
                kind = get_type(rec["event_type"]).target_kind
            except ConfigError:
                self.skipped += 1
                continue
            if kg.has(kind, rec["target"]):
                usable.append(rec)
            else:
                self.skipped += 1
        if not usable:
            return []
        done = sum(1 for s in state.history if s.provenance.generator == self.name)
        out = []
        for k in range(n):
            rec = usable[(done + k) % len(usable)]
            out.append(Scenario(
                id=scenario_id("replay", state.topology, rec["id"], done + k),
                description=rec.get("description") or f"Replay of incident {rec['id']}.",
                topology=state.topology,
                events=[Event(event_type=rec["event_type"], target=rec["target"], timestamp=10.0,
                              severity=rec.get("severity", "high"), params=rec.get("params", {}))],
                provenance=Provenance(generator=self.name, seed=seed, iteration=state.iteration,
                                      extra={"incident": rec["id"]})))
        return out
