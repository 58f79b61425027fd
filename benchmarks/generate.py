"""Embedded-model generation speed: constrained (compact grammar) vs unconstrained, one run.

    .venv/bin/python benchmarks/generate.py [--count 6]
"""

from __future__ import annotations

import argparse
import os
import time

from harness.generate import GenState
from harness.generate.llm import LLMGenerator
from harness.kg import build_kg
from harness.llm import EmbeddedServer
from harness.scenario import Scenario, check_scenario
from harness.topology import load_topology


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--topology", default="topozoo/Abilene")
    args = ap.parse_args()
    kg = build_kg(load_topology(args.topology))
    state = GenState(topology=args.topology, max_events=3)
    print(f"{args.topology}, {args.count} scenarios per mode, load average {os.getloadavg()[0]:.1f}")
    with EmbeddedServer() as server:
        print(f"embedded server up in {server.startup_s:.2f} s")
        for label, constrained in (("constrained", True), ("unconstrained", False)):
            with LLMGenerator(llm_url=server.url, model=server.model, constrained=constrained,
                              compact_grammar=True) as gen:
                t0 = time.perf_counter()
                out = gen.propose(kg, state, None, args.count, seed=1)
                dt = time.perf_counter() - t0
            events = sum(len(s.events) for s in out)
            valid = sum(isinstance(check_scenario(kg, s), Scenario) for s in out)   # the validator's verdict
            tokens = sum(r["tokens"] for r in gen.records)
            print(f"{label:>14}: {dt:6.1f} s, {events / dt:.2f} events/s, {len(out) / dt:.3f} scenarios/s, "
                  f"validity {valid}/{len(gen.records)}, {tokens / max(1, len(gen.records)):.0f} tokens/scenario")


if __name__ == "__main__":
    main()
