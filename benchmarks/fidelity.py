"""The twins' fidelity suite (issue 12, item 8): the same scenarios on the flow twin and the
emulation, with mitigation, and how far apart they are.

    .venv/bin/python benchmarks/fidelity.py [--per-type 5] [--mitigation auto] [--json out.json]

A fixed set: ``--per-type`` scenarios of every event type (single events, fixed seeds),
alternating ``topozoo/Abilene`` and ``topozoo/Geant2012`` (a type Abilene has no target for,
``srlg_failure``, always on Geant2012); each event's target is drawn with
``random.Random("<type>-<k>")`` from the targets the validator admits, with the type's
default parameters. Printed per KPI: impacted-set agreement, median and p90 relative error of
``loss_pct`` and ``max_link_util``, reroute-time difference (the flow-level KPIs — impacted
nodes, reroute time — on the flows the emulation monitors: all of Abilene's 110, a covering
sample of 132 of Geant2012's 1,332), then every disagreement with its
reason (:func:`harness.campaign.fidelity.reasons`: a modelling difference a twin names in
``not_modelled`` or a measurement condition, or "unexplained"). Scenarios whose emulation
baseline is unhealthy (> 0.5 % loss) are listed apart and left out of the figures. Goals
(issue 12): impacted sets identical in >= 95 %, median relative error <= 10 % for loss and
utilisation, reroute time within 10 ms. Needs root and Open vSwitch (~10 s a scenario).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign.fidelity import compare, summarise  # noqa: E402
from harness.errors import ScenarioError  # noqa: E402
from harness.kg import kg_from_ref  # noqa: E402
from harness.scenario import types  # noqa: E402
from harness.scenario.causal import admissible_events  # noqa: E402
from harness.scenario.validate import validate_scenario  # noqa: E402
from harness.twin.emulation.twin import EmulationTwin  # noqa: E402
from harness.twin.flow.twin import FlowTwin  # noqa: E402

TOPOLOGIES = ("topozoo/Abilene", "topozoo/Geant2012")


def suite(kgs: dict, per_type: int) -> list[tuple[str, object]]:
    """``(topology, scenario)`` pairs: ``per_type`` of every event type, topologies alternating."""
    out = []
    for k in range(per_type):
        for et in types.names():
            # alternate topologies; a type one of them cannot have (Abilene has no SRLG) uses the other
            for ref in (TOPOLOGIES[k % 2], TOPOLOGIES[(k + 1) % 2]):
                kg = kgs[ref]
                targets = sorted(admissible_events(kg, event_types=[et]).get(et, []))
                if targets:
                    break
            else:
                print(f"  (no admissible {et} on any topology)")
                continue
            rng = random.Random(f"{et}-{k}")
            for target in rng.sample(targets, len(targets)):
                raw = {"id": f"{et}-{k}", "topology": ref,
                       "events": [{"event_type": et, "target": target, "timestamp": 1.0}]}
                try:
                    out.append((ref, validate_scenario(kg, raw)))
                    break
                except ScenarioError:
                    continue
    return out


def fmt(x, spec=".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-type", type=int, default=5)
    ap.add_argument("--mitigation", default="auto")
    ap.add_argument("--json", help="write every row and the summary here")
    args = ap.parse_args()
    kgs = {ref: kg_from_ref(ref) for ref in TOPOLOGIES}
    scenarios = suite(kgs, args.per_type)
    print(f"{len(scenarios)} scenarios ({args.per_type} per type over {', '.join(TOPOLOGIES)}), mitigation "
          f"{args.mitigation}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    rows = []
    t0 = time.time()
    flow = FlowTwin()
    with EmulationTwin() as emu:
        for k, (ref, s) in enumerate(sorted(scenarios, key=lambda x: x[0]), 1):   # one network per topology
            kg = kgs[ref]
            er = emu.run(kg, s, args.mitigation)
            # on a graph with more flows than the emulation probes, judge the flow twin on the same sample
            fr = flow.run(kg, s, args.mitigation,
                          monitored=er.meta["monitored_flows"] if er.meta.get("pairs_sampled") else None)
            row = {**compare(fr, er), "topology": ref, "event_type": s.events[0].event_type,
                   "target": s.events[0].target}
            rows.append(row)
            print(f"  [{k}/{len(scenarios)}] {ref.split('/')[1]:<9} {s.id:<22} {s.events[0].target[:24]:<25}"
                  f"loss {fmt(row['loss_pct_flow'], '.1f')}/{fmt(row['loss_pct_emulation'], '.1f')} "
                  f"util {fmt(row['max_link_util_flow'], '.2f')}/{fmt(row['max_link_util_emulation'], '.2f')} "
                  f"reroute {fmt(row['reroute_time_ms_mean_flow'], '.0f')}/{fmt(row['reroute_time_ms_mean_emulation'], '.0f')} ms"
                  f"{'' if row['impacted_agree'] else ' IMPACTED DIFF'}{'' if row['healthy'] else ' (unhealthy baseline)'}",
                  flush=True)
    s = summarise(rows)
    print(f"\n{s['scenarios']} scenarios in {time.time() - t0:.0f} s, {s['healthy']} with a healthy emulation baseline")
    print(f"impacted-node sets identical: {fmt(s['impacted_agree_pct'], '.1f')} % (goal >= 95 %), "
          f"mean Jaccard {fmt(s['impacted_jaccard_mean'], '.2f')}")
    for k in ("loss_pct", "max_link_util"):
        print(f"{k}: relative error median {fmt(s[f'{k}_relerr_median'])} (goal <= 0.10), p90 {fmt(s[f'{k}_relerr_p90'])}")
    print(f"reroute time (mean over rerouted flows), over the {s['rerouted_scenarios']} scenarios where a twin rerouted: "
          f"|flow - emulation| median {fmt(s['reroute_diff_ms_median'], '.1f')} ms, p90 "
          f"{fmt(s['reroute_diff_ms_p90'], '.1f')} ms (goal <= 10 ms); where both did: median "
          f"{fmt(s['reroute_diff_ms_median_both'], '.1f')} ms")
    unhealthy = [r for r in rows if not r["healthy"]]
    if unhealthy:
        print("\nleft out, unhealthy emulation baseline: "
              + "; ".join(f"{r['scenario_id']} ({r['unhealthy_reason']})" for r in unhealthy))
    bad = [r for r in rows if r["disagree"]]
    print(f"\n{len(bad)} disagreements:")
    for r in bad:
        print(f"  {r['topology'].split('/')[1]} {r['scenario_id']} on {r['target']}: {', '.join(r['disagree'])} "
              f"<- {'; '.join(r['reasons'])}")
    by_reason: dict[str, int] = {}
    for r in bad:
        for x in r["reasons"]:
            key = x.split(":")[0].split(" (")[0]
            by_reason[key] = by_reason.get(key, 0) + 1
    print("by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items(), key=lambda kv: -kv[1])))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": s, "rows": rows}, indent=1, default=str))
        print(f"written {args.json}")


if __name__ == "__main__":
    main()
