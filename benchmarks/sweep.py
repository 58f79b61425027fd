"""``ani sweep --k 1`` on topozoo/TataNld (181 links): time per sweep and per evaluation.

    .venv/bin/python benchmarks/sweep.py
"""

from __future__ import annotations

import os
import time

from harness.kg import build_kg
from harness.topology import load_topology
from harness.twin.flow.twin import FlowTwin
from harness.twin.sweep import sweep


def main() -> None:
    kg = build_kg(load_topology("topozoo/TataNld"))
    twin = FlowTwin()
    t0 = time.perf_counter()
    twin.engine(kg)
    t1 = time.perf_counter()
    rows = sweep(kg, 1, twin=twin)
    t2 = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"topozoo/TataNld: {len(kg.routers)} routers, {len(kg.links)} links, {len(kg.flows)} flows")
    print(f"engine build {t1 - t0:.3f} s; sweep k=1 {t2 - t1:.3f} s for {len(rows)} cuts "
          f"({1000 * (t2 - t1) / len(rows):.1f} ms each; goal 2 s)")
    print(f"worst: {rows[0]['links']} loss {rows[0]['loss_pct']:.1f} %, cascade depth {rows[0]['cascade_depth']}")


if __name__ == "__main__":
    main()
