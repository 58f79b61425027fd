"""How much load the emulation inside the software-emulated VM can carry, and how much a busy host
takes away (the figures behind :mod:`harness.twin.emulation.profile`'s background budget).

    .venv/bin/python benchmarks/vm_load.py [--budgets 5000,600,300] [--hogs 0,1]

Boots a VM (``ani vm``'s cached image), then per background budget (packets sent per second,
``EmulationTwin(background_max_pps=…)``) and per number of host hogs (busy-looping processes
on the host beside the VM) runs ``scenarios/abilene/fiber_cut.yaml`` on the emulation twin
inside and prints: the packets the background really sent, the share of the VM's CPU left idle
(``/proc/stat`` inside, sampled once a second: median and lowest), the baseline's health (both
attempts when the first was unhealthy) and the latency floors (``no_background``: the probes
before the background started; ``baseline``: the baseline window's) beside the flow twin's
latency on the same pairs. The VM is stopped at the end. Needs root.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCENARIO = "scenarios/abilene/fiber_cut.yaml"
NAME = "bench-load"


def _cpu() -> tuple[int, int]:
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return v[3] + v[4], sum(v)      # idle + iowait, all


def inside(budget: float) -> dict:
    """Run the scenario here (in the VM) with ``budget``; the figures as plain data."""
    import yaml

    from harness.kg import kg_from_ref
    from harness.scenario import validate_scenario
    from harness.twin.emulation.twin import EmulationTwin

    kg = kg_from_ref("topozoo/Abilene")
    scenario = validate_scenario(kg, yaml.safe_load(Path(SCENARIO).read_text()))
    idle: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        a = _cpu()
        while not stop.wait(1.0):
            b = _cpu()
            idle.append(100.0 * (b[0] - a[0]) / max(1, b[1] - a[1]))
            a = b

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        with EmulationTwin(background_max_pps=budget) as twin:
            r = twin.run(kg, scenario, "auto")
    finally:
        stop.set()
        th.join()
    m = r.meta
    health = m["baseline_health"]
    return {"budget": budget, "sent_pps": m["background"].get("achieved_pps"),
            "idle_median": sorted(idle)[len(idle) // 2] if idle else None, "idle_min": min(idle, default=None),
            "loss": [x["loss_pct"] for x in (health.get("first_attempt"), health) if x],
            "healthy": health["healthy"], "floor": m["latency_floor_ms"], "flows": m["monitored_flows"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", default="5000,600,300", help="background budgets (pps), comma-separated")
    ap.add_argument("--hogs", default="0,1", help="busy processes on the host beside the VM, comma-separated")
    ap.add_argument("--inside", type=float, help=argparse.SUPPRESS)   # one run, in the VM
    args = ap.parse_args()
    if args.inside is not None:
        print(json.dumps(inside(args.inside)))
        return 0
    from harness.kg import kg_from_ref
    from harness.twin.flow.twin import baseline_latency_ms
    from harness.vm import image, machine

    ref = baseline_latency_ms(kg_from_ref("topozoo/Abilene"))
    vm = machine.up(NAME, img=image.build(emit=lambda s: print(f"  {s}", flush=True)),
                    emit=lambda s: print(f"  {s}", flush=True))
    print(f"{'budget':>7} {'hogs':>4} {'sent pps':>8} {'VM idle':>12} {'baseline loss %':>16} "
          f"{'floor: no bg / baseline / flow twin (ms)':>42}")
    try:
        for budget in (float(x) for x in args.budgets.split(",")):
            for hogs in (int(x) for x in args.hogs.split(",")):
                procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
                try:
                    r = subprocess.run(vm.ssh_argv([f"cd /opt/ani && .venv/bin/python benchmarks/vm_load.py "
                                                    f"--inside {budget:g} 2>/dev/null | tail -1"]),
                                       capture_output=True, text=True, timeout=1200)
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
                try:
                    d = json.loads(r.stdout.strip().splitlines()[-1])
                except (IndexError, ValueError):
                    print(f"{budget:>7g} {hogs:>4}  failed: {(r.stdout + r.stderr)[-300:]}")
                    continue
                f = sum(ref[x] for x in d["flows"]) / len(d["flows"])
                fl = d["floor"]
                print(f"{budget:>7g} {hogs:>4} {d['sent_pps']:>8} {d['idle_median']:>5.0f} % ({d['idle_min']:.0f}) "
                      f"{' / '.join(f'{x:.2f}' for x in d['loss']):>16} "
                      f"{fl.get('no_background', 0):>12.2f} / {fl['baseline']:.2f} / {f:.2f} "
                      f"({fl.get('no_background', 0) / f:.3f}x, {fl['baseline'] / f:.3f}x)", flush=True)
    finally:
        machine.down(NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
