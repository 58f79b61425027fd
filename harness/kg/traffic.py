"""Traffic matrices: which host pairs exchange how much, uniform or gravity, seeded.

``uniform``: every selected pair gets the same demand. ``gravity``: demand(s, d) is
proportional to m(s)·m(d), where a router's mass m is its degree times a seeded
log-normal factor (sigma 0.5) — big, well-connected PoPs exchange more traffic.
When the number of ordered pairs exceeds ``max_flows``, pairs are sampled without
replacement (with probability proportional to the gravity weight for ``gravity``).
Absolute volumes are scaled later so the busiest link reaches a target utilisation.
"""

from __future__ import annotations

import numpy as np
import networkx as nx

from harness.errors import ConfigError

MODELS = ("uniform", "gravity")


def traffic_matrix(topology: nx.Graph, model: str = "gravity", *, seed: int = 0,
                   max_flows: int | None = 2000) -> list[tuple[str, str, float]]:
    """``[(src, dst, weight)]`` with weights summing to 1, deterministic for a seed."""
    if model not in MODELS:
        raise ConfigError(f"unknown traffic model {model!r}; choose {' or '.join(MODELS)}")
    routers = sorted(topology.nodes)
    n = len(routers)
    rng = np.random.default_rng(seed)
    if model == "gravity":
        deg = np.array([topology.degree(r) for r in routers], dtype=float)
        mass = deg * rng.lognormal(0.0, 0.5, size=n)
    else:
        mass = np.ones(n)
    total_pairs = n * (n - 1)
    if max_flows is None or total_pairs <= max_flows:
        src, dst = np.nonzero(~np.eye(n, dtype=bool))
    else:
        src, dst = _sample_pairs(mass if model == "gravity" else np.ones(n), max_flows, rng)
    w = mass[src] * mass[dst] if model == "gravity" else np.ones(len(src))
    w = w / w.sum()
    return [(routers[s], routers[d], float(x)) for s, d, x in zip(src, dst, w)]


def _sample_pairs(mass: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct ordered pairs (s != d), drawn with probability ∝ mass[s]·mass[d]."""
    n = len(mass)
    p = mass / mass.sum()
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < k:
        need = (k - len(chosen)) * 2 + 16
        s = rng.choice(n, size=need, p=p)
        d = rng.choice(n, size=need, p=p)
        for a, b in zip(s.tolist(), d.tolist()):
            if a != b:
                chosen.add((a, b))
                if len(chosen) == k:
                    break
    pairs = sorted(chosen)
    return np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
