"""Campaign throughput: scenarios/hour on the flow twin, and the loop's overhead on top of it.

    .venv/bin/python benchmarks/campaign.py            # flow twin only (baselines, no model)

Emulation throughput is measured by benchmarks/emulation_throughput.py (the loop adds the
same per-scenario overhead there).
"""

from __future__ import annotations

import os
import tempfile
import time

from harness.campaign import parse_spec, run_campaign

SPEC = {
    "name": "bench",
    "topology": "topozoo/Geant2012",
    "generators": [{"generator": "rule"}, {"generator": "random"}, {"generator": "mutate"},
                   {"generator": "greedy"}],
    "budget": {"iterations": 3, "per_iteration": 10},
    "mitigation": ["auto", "none"],
    "seed": 1,
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = run_campaign(f"{tmp}/c", parse_spec(SPEC))
        total = time.perf_counter() - t0
    flow_s = s.twin_s.get("flow", 0.0)
    print(f"load average {os.getloadavg()[0]:.1f}; {SPEC['topology']}: {s.accepted} scenarios, "
          f"{s.runs.get('flow', 0)} flow-twin runs in {total:.1f} s")
    print(f"throughput: {3600 * s.accepted / total:.0f} scenarios/hour end to end "
          f"({3600 * s.runs.get('flow', 0) / total:.0f} twin runs/hour)")
    print(f"time in the flow twin {flow_s:.1f} s; loop overhead (generation, validation, storage, views) "
          f"{total - flow_s:.1f} s = {100 * (total - flow_s) / total:.0f} %")


if __name__ == "__main__":
    main()
