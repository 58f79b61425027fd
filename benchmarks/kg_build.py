"""Time to load a topology and build its knowledge graph (gravity traffic, sampled flows).

    .venv/bin/python benchmarks/kg_build.py
"""

from __future__ import annotations

import time

from harness.kg import build_kg
from harness.topology import load_topology

CASES = ["topozoo/TataNld", "caida/3356", "as:5000"]


def main() -> None:
    print(f"{'topology':<18} {'routers':>7} {'links':>6} {'flows':>6} {'load s':>7} {'build s':>8}")
    for ref in CASES:
        t0 = time.perf_counter()
        topo = load_topology(ref)
        t1 = time.perf_counter()
        kg = build_kg(topo, traffic="gravity", seed=0)
        t2 = time.perf_counter()
        s = kg.summary()["nodes"]
        print(f"{ref:<18} {s['router']:>7} {s['link']:>6} {s['flow']:>6} {t1 - t0:>7.3f} {t2 - t1:>8.3f}")


if __name__ == "__main__":
    main()
