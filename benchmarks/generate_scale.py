"""Constrained LLM generation at scale (issue 14 goal: <= 5 s per event at 5,000 routers, 100 % valid).

    .venv/bin/python benchmarks/generate_scale.py [--topology as:5000] [--count 6] [--widest]

Prints the knowledge graph's build time, then for ``--count`` scenarios from the embedded model
(each one in the history of the next, as in a campaign: the arm offers 8 pairs per step at its
first proposal and 2 more per proposal since; ``--widest``: the full 64 from the first):
seconds per event, the admissible pairs per step against the pairs offered (the shortlist, the
grammar's size), where the offered pairs came from (neighbourhood / critical / exploration), and
validity by ani's validator — with the ratio to the 5 s goal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import ScenarioInvalid  # noqa: E402
from harness.generate import GenState  # noqa: E402
from harness.generate.llm import NARROW, LLMGenerator  # noqa: E402
from harness.kg import kg_from_ref  # noqa: E402
from harness.scenario import validate_scenario  # noqa: E402

GOAL_S_PER_EVENT = 5.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--topology", default="as:5000")
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--widest", action="store_true", help="offer the widest shortlist from the first proposal")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    t0 = time.perf_counter()
    kg = kg_from_ref(args.topology, seed=0)
    print(f"{args.topology}: {len(kg.routers)} routers, {len(kg.links)} links, {len(kg.flows)} flows; "
          f"knowledge graph in {time.perf_counter() - t0:.1f} s")
    state = GenState(topology=args.topology, max_events=3)
    per_event, valid, steps = [], 0, []
    with LLMGenerator(narrow=LLMGenerator.shortlist_limit if args.widest else NARROW) as gen:
        gen.client()                     # start the embedded server outside the timing
        for k in range(args.count):
            t = time.perf_counter()
            out = gen.propose(kg, state, None, 1, seed=k)
            dt = time.perf_counter() - t
            if not out:
                print(f"  scenario {k}: no event could be read ({dt:.1f} s)")
                continue
            s = out[0]
            state.history.append(s)
            per_event.append(dt / len(s.events))
            try:
                validate_scenario(kg, s.model_dump(mode="json"))
                valid += 1
                verdict = "valid"
            except ScenarioInvalid as exc:
                verdict = f"INVALID: {exc}"
            steps += s.provenance.extra["shortlist"]
            print(f"  scenario {k}: {len(s.events)} event(s) in {dt:.1f} s ({dt / len(s.events):.1f} s/event), "
                  f"{verdict}; " + "; ".join(f"{st['admissible']} admissible -> {st['offered']} offered"
                                             for st in s.provenance.extra["shortlist"]))
    if per_event:
        med = statistics.median(per_event)
        print(f"seconds per event: median {med:.2f}, max {max(per_event):.2f} (goal <= {GOAL_S_PER_EVENT:g}: "
              f"ratio {med / GOAL_S_PER_EVENT:.2f}); validity {valid}/{len(per_event)}; grammar size per step "
              f"<= {max(st['offered'] for st in steps)} pairs of up to {max(st['admissible'] for st in steps)} admissible")
    return 0 if per_event and valid == len(per_event) else 1


if __name__ == "__main__":
    raise SystemExit(main())
