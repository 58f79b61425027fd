"""Scenario-set metrics: validity, diversity, cascade depth, novelty.

* validity rate: accepted / proposed.
* diversity: distinct ``(event_type, target)`` pairs; mean pairwise Jaccard *distance*
  between scenarios' ``(event_type, target)`` sets; Shannon entropy (bits) of event types.
* cascade depth: mean and max of the flow twin's ``cascade_depth`` in the failure phase.
* novelty: share of scenarios whose ``(event_type, target)`` set matches no incident in a
  replay log.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Iterable

from harness.scenario.model import Scenario


def _pairs(s: Scenario) -> frozenset[tuple[str, str]]:
    return frozenset((e.event_type, e.target) for e in s.events)


def validity_rate(accepted: int, proposed: int) -> float:
    return accepted / proposed if proposed else 0.0


def diversity(scenarios: list[Scenario]) -> dict[str, float]:
    sets = [_pairs(s) for s in scenarios]
    distinct = len(set().union(*sets)) if sets else 0
    dists = [1 - len(a & b) / len(a | b) for a, b in itertools.combinations(sets, 2) if a | b]
    types = Counter(e.event_type for s in scenarios for e in s.events)
    total = sum(types.values())
    entropy = max(0.0, -sum(c / total * math.log2(c / total) for c in types.values())) if total else 0.0
    return {"distinct_pairs": distinct, "mean_jaccard_distance": sum(dists) / len(dists) if dists else 0.0,
            "type_entropy_bits": entropy}


def cascade_depth(depths: Iterable[int]) -> dict[str, float]:
    d = list(depths)
    return {"mean": sum(d) / len(d) if d else 0.0, "max": max(d) if d else 0}


def novelty(scenarios: list[Scenario], incidents: list[dict]) -> float:
    known = {frozenset({(r["event_type"], r["target"])}) for r in incidents}
    if not scenarios:
        return 0.0
    return sum(_pairs(s) not in known for s in scenarios) / len(scenarios)
