"""Emulation-twin throughput: scenarios per hour on one reused network (root, Open vSwitch).

    .venv/bin/python benchmarks/emulation_throughput.py [--topology topozoo/Geant2012] [-n 12]

Runs ``n`` scenarios (fibre cuts on the busiest links, a router failure, a link degradation,
a DDoS and a misconfiguration, round robin) with the ``auto`` mitigation on one
:class:`EmulationTwin`, measurement windows included, and prints scenarios/hour (bring-up
excluded and included), bring-up time, and the mean of each phase.  The goal on a 2-vCPU
machine is >= 120 scenarios/hour on Geant2012.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from harness.cli.kg import kg_from_ref
from harness.scenario.validate import validate_scenario
from harness.twin.emulation.background import DEFAULT_MAX_HOP_PPS as DEFAULT_BG_MAX_HOP_PPS
from harness.twin.emulation.twin import EmulationTwin


def scenarios(kg, n: int) -> list:
    links = sorted(kg.links, key=lambda l: (-kg.attrs("link", l).get("load_mbps", 0.0), l))
    routers = sorted(kg.routers, key=lambda r: (-kg.topology.degree(r), r))
    kinds = []
    for i in range(n):
        k = i % 6
        if k in (0, 3):
            ev = {"event_type": "fiber_link_failure", "target": links[i % len(links)], "timestamp": 10}
        elif k == 1:
            ev = {"event_type": "router_failure", "target": routers[i % len(routers)], "timestamp": 10}
        elif k == 2:
            ev = {"event_type": "link_degradation", "target": links[(i + 1) % len(links)], "timestamp": 10,
                  "severity": "high"}
        elif k == 4:
            tgt = routers[i % len(routers)]
            srcs = [r for r in routers if r != tgt][:3]
            ev = {"event_type": "ddos_spike", "target": tgt, "timestamp": 10,
                  "params": {"sources": srcs, "intensity": 1.5}}
        else:
            ev = {"event_type": "misconfiguration", "target": routers[i % len(routers)], "timestamp": 10,
                  "params": {"mode": "blackhole"}}
        kinds.append(validate_scenario(kg, {"id": f"bench-{i:03d}-{ev['event_type']}", "events": [ev]}))
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", default="topozoo/Geant2012")
    ap.add_argument("-n", type=int, default=12, help="scenarios to run")
    ap.add_argument("--window", type=float, default=2.0, help="measurement window (s)")
    ap.add_argument("--max-hop-pps", type=float, default=DEFAULT_BG_MAX_HOP_PPS,
                    help="background budget in switch traversals per second")
    args = ap.parse_args()
    kg = kg_from_ref(args.topology)
    scs = scenarios(kg, args.n)
    load0 = os.getloadavg()
    with EmulationTwin(window_s=args.window, background_max_hop_pps=args.max_hop_pps) as twin:
        t0 = time.perf_counter()
        twin.network(kg)
        bringup = time.perf_counter() - t0
        t1 = time.perf_counter()
        results = []
        for sc in scs:
            ts = time.perf_counter()
            r = twin.run(kg, sc, "auto")
            results.append((r, time.perf_counter() - ts))
            f = r.row("failure")
            print(f"  {sc.id:<40} {results[-1][1]:6.2f} s  base loss {r.row('baseline').loss_pct:6.2f} %  "
                  f"fail loss {f.loss_pct:6.2f} %  unreach {f.unreachable_pairs:3d}  "
                  f"reroute max {f.reroute_time_ms_max:7.1f} ms  rebuilt={r.meta['network'].get('rebuilt')}",
                  flush=True)
        total = time.perf_counter() - t1
    load1 = os.getloadavg()
    n = len(results)
    print(f"\n{args.topology}: {kg.summary()['nodes']['router']} routers, {len(kg.links)} links, "
          f"{results[0][0].meta['monitored_pairs']} monitored pairs "
          f"(sampled={results[0][0].meta['pairs_sampled']})")
    print(f"bring-up: {bringup:.2f} s (once)")
    print(f"scenarios: {n} in {total:.1f} s = {total / n:.2f} s each -> {3600 * n / total:.0f} scenarios/hour "
          f"({3600 * n / (total + bringup):.0f}/hour with bring-up)")
    keys = ["probes_start_s", "prepare_s", "baseline_window_s", "inject_s", "failure_window_s",
            "mitigated_window_s", "restore_s", "health_check_s"]
    for k in keys:
        vals = [r.meta["timings_s"].get(k) for r, _ in results if r.meta["timings_s"].get(k) is not None]
        if vals:
            print(f"  {k:<20} mean {statistics.mean(vals):6.3f} s  max {max(vals):6.3f} s")
    other = [dt - sum(r.meta["timings_s"].get(k) or 0 for k in keys) for r, dt in results]
    print(f"  {'other (KPIs, waits)':<20} mean {statistics.mean(other):6.3f} s")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} on {os.cpu_count()} CPUs"
          + (" (machine loaded: RTTs inflated)" if max(load0[0], load1[0]) >= 0.9 * (os.cpu_count() or 1) else ""))


if __name__ == "__main__":
    main()
