"""Measure the flow twin's reroute constants on the emulation (issue 12, item 2).

    .venv/bin/python benchmarks/reroute_calibration.py [--topologies topozoo/Abilene,topozoo/BtEurope,topozoo/Geant2012]
        [--cuts N] [--write]

Every non-bridge link of each topology (or the first ``--cuts``) is cut once on the emulation
(background traffic on, no mitigation); the pairs whose path crossed it are timed by 5 ms
probes, and the controller's own log gives when the port status arrived and how long the
recompute took. :func:`harness.campaign.fidelity.fit_reroute` turns that into detection,
computation and per-switch installation constants, one point per network size (the flow twin
interpolates between them: a larger emulated network reroutes more slowly, see
:class:`harness.twin.flow.twin.RerouteModel`). Printed: the fit, and per cut the
emulation's reroute time (mean and max over rerouted pairs) beside the flow twin's with the
shipped constants and with the fitted ones. ``--write`` stores the fit, with where, when and
from how much it was measured, as the shipped constants
(``harness/twin/flow/reroute_calibration.json``). Needs root and Open vSwitch; run it on an
idle machine (the load average is printed and recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networkx as nx  # noqa: E402

from harness.campaign.fidelity import fit_reroute  # noqa: E402
from harness.campaign.store import atomic_write  # noqa: E402
from harness.kg import kg_from_ref  # noqa: E402
from harness.scenario.validate import validate_scenario  # noqa: E402
from harness.twin.emulation.twin import FAST_PROBE_INTERVAL_S, EmulationTwin  # noqa: E402
from harness.twin.flow.twin import CALIBRATION_FILE, FlowTwin, RerouteModel  # noqa: E402

#: Three sizes of emulated network (11, 22 and 37 switches): one calibration point each.
TOPOLOGIES = ("topozoo/Abilene", "topozoo/BtEurope", "topozoo/Geant2012")


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    return f"{platform.node()}: {os.cpu_count()} x {model}, Linux {platform.release()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def cuts(kg, n: int | None) -> list[str]:
    """The topology's non-bridge links (a cut reroutes rather than partitions), the first ``n``."""
    bridges = {tuple(sorted(e)) for e in nx.bridges(kg.topology)}
    return [l for l in kg.links if tuple(sorted(kg.link_ends(l))) not in bridges][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topologies", default=",".join(TOPOLOGIES),
                    help="comma-separated topologies of different sizes: one calibration point each")
    ap.add_argument("--cuts", type=int, default=None, help="cut only the first N non-bridge links of each")
    ap.add_argument("--write", action="store_true", help=f"store the fit as {CALIBRATION_FILE.name}")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    kgs = {ref: kg_from_ref(ref) for ref in args.topologies.split(",")}
    plan = [(ref, l) for ref, kg in kgs.items() for l in cuts(kg, args.cuts)]
    for ref, kg in kgs.items():
        print(f"{ref}: {len(kg.routers)} routers, {sum(r == ref for r, _ in plan)} non-bridge links to cut", flush=True)
    print(f"load average {load0:.1f} on {os.cpu_count()} CPUs", flush=True)
    results = []
    t0 = time.time()
    with EmulationTwin() as twin:
        for k, (ref, l) in enumerate(plan, 1):
            s = validate_scenario(kgs[ref], {"id": f"cut-{l}", "events": [
                {"event_type": "fiber_link_failure", "target": l, "timestamp": 1.0}]})
            r = twin.run(kgs[ref], s, None)
            results.append((ref, s, r))
            f = r.row("failure")
            print(f"  [{k}/{len(plan)}] {ref} {l}: reroute mean {f.reroute_time_ms_mean:.1f} ms, max "
                  f"{f.reroute_time_ms_max:.1f} ms over {len(r.meta['reroute_samples'])} pairs "
                  f"({sum(x['fast'] for x in r.meta['reroute_samples'].values())} fast); control plane "
                  f"{[(c['detect_ms'], c['compute_ms']) for c in r.meta['control_plane']]}", flush=True)
    fit = fit_reroute([r for _, _, r in results], {
        "machine": machine(), "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "topologies": {ref: len(kg.routers) for ref, kg in kgs.items()},
        "scenarios": len(results), "samples": None, "resolution_ms": FAST_PROBE_INTERVAL_S * 1000,
        "datapath": results[0][2].meta["fidelity"].get("datapath") if results else None,
        "background": True, "load_average": round(load0, 2), "commit": commit(),
        "how": "benchmarks/reroute_calibration.py: one fiber cut per non-bridge link of each topology on the "
               "emulation; per network size, detection and computation = medians of the controller's log, "
               "per-switch slope = least squares of the fast-probe gaps beyond them"})
    fit["provenance"]["samples"] = sum(x["fit"]["pairs"] for x in fit["points"])
    fitted = RerouteModel.from_record(fit, "the fit")
    shipped = RerouteModel.shipped() if CALIBRATION_FILE.exists() else None
    print(f"\nfit ({time.time() - t0:.0f} s):")
    for x in fit["points"]:
        print(f"  {x['switches']} switches: detection {x['detection_ms']} ms, computation {x['computation_ms']} ms, "
              f"{x['install_per_switch_ms']} ms per switch; {json.dumps(x['fit'])}")
    print(f"\n{'cut':<34}{'emulation mean/max':>20}{'flow shipped':>16}{'flow fitted':>16}")
    diffs: dict = {}
    for ref, s, r in results:
        e = r.row("failure")
        cols = []
        for name, model in (("shipped", shipped), ("fitted", fitted)):
            if model is None:
                cols.append("n/a")
                continue
            # on the flows the emulation monitored (a sample on Geant2012)
            fl = FlowTwin(reroute=model).run(kgs[ref], s, None, monitored=r.meta["monitored_flows"]
                                             if r.meta.get("pairs_sampled") else None).row("failure")
            cols.append(f"{fl.reroute_time_ms_mean:.1f}/{fl.reroute_time_ms_max:.1f}")
            if e.reroute_time_ms_mean:
                diffs.setdefault((name, ref), []).append(abs(fl.reroute_time_ms_mean - e.reroute_time_ms_mean))
        print(f"{ref.split('/')[-1][:12]:<13}{s.id[:20]:<21}{f'{e.reroute_time_ms_mean:.1f}/{e.reroute_time_ms_max:.1f}':>20}"
              f"{cols[0]:>16}{cols[1]:>16}")
    for (name, ref), d in diffs.items():
        print(f"flow twin ({name} constants) vs emulation on {ref}, mean reroute time: median |difference| "
              f"{statistics.median(d):.1f} ms, max {max(d):.1f} ms over {len(d)} cuts")
    if args.write:
        atomic_write(CALIBRATION_FILE, json.dumps(fit, indent=2) + "\n")
        print(f"written {CALIBRATION_FILE}")


if __name__ == "__main__":
    main()
