"""The VM's timings (issue 13): image build, boot to SSH, Abilene bring-up and one scenario inside.

    .venv/bin/python benchmarks/vm.py [--rebuild] [--accel auto|kvm|tcg]

Prints the image build (its recorded step timings, or a fresh build with ``--rebuild``), the
boot to SSH, ``ani doctor`` inside, then ``scenarios/abilene/fiber_cut.yaml`` on the emulation
twin inside the VM: network bring-up (ani's batched builder), the run's wall time and its
baseline latency beside the flow twin's on the host, with the ratios against the goals (boot
<= 30 s under software emulation, <= 10 s with KVM; bring-up <= 10 s). The VM is stopped at
the end. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.vm import image, machine  # noqa: E402
from harness.kg import kg_from_ref  # noqa: E402
from harness.twin.flow.twin import baseline_latency_ms  # noqa: E402

NAME = "bench"
REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rebuild", action="store_true", help="build the image again (else: its recorded timings)")
    ap.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    args = ap.parse_args()
    print(f"host load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    t0 = time.monotonic()
    img = image.build(force=args.rebuild, emit=lambda s: print(f"  {s}", flush=True))
    steps = img.manifest.get("timings_s", {})
    print(f"image {img.dir.name}: build {sum(steps.values()):.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in steps.items())}); disk {img.disk.stat().st_size / 2**30:.2f} GiB"
          + ("" if args.rebuild else f" (recorded {img.manifest.get('built')}; cached lookup {time.monotonic() - t0:.1f} s)"))
    machine.down(NAME)
    vm = machine.up(NAME, img=img, accel=args.accel, emit=lambda s: print(f"  {s}", flush=True))
    try:
        goal = 10.0 if vm.accel == "kvm" else 30.0
        print(f"boot to SSH: {vm.boot_s:.1f} s under {vm.accel} (goal <= {goal:.0f} s: ratio {vm.boot_s / goal:.2f})")
        t = time.monotonic()
        r = subprocess.run(vm.ssh_argv(["cd /opt/ani && .venv/bin/ani doctor"]), capture_output=True, text=True)
        print(f"ani doctor inside ({time.monotonic() - t:.1f} s):")
        for line in r.stdout.splitlines():
            if any(k in line for k in ("kernel module", "netem", "CPU")):
                print(f"  {line}")
        t = time.monotonic()
        r = subprocess.run(vm.ssh_argv(["cd /opt/ani && .venv/bin/ani run scenarios/abilene/fiber_cut.yaml "
                                        "--twin emulation -o /tmp/bench-fc >/dev/null 2>&1; "
                                        "cat /tmp/bench-fc/results.jsonl"]), capture_output=True, text=True)
        wall = time.monotonic() - t
        emu = json.loads(r.stdout.strip().splitlines()[-1])
        flow = subprocess.run([str(Path(sys.executable).parent / "ani"), "run", "scenarios/abilene/fiber_cut.yaml",
                               "--twin", "flow", "-o", "/tmp/bench-fc-flow"], cwd=REPO, capture_output=True, text=True)
        if flow.returncode != 0:
            print(flow.stderr)
            return 1
        fl = json.loads(Path("/tmp/bench-fc-flow/results.jsonl").read_text().splitlines()[0])
        pairs = emu["meta"]["monitored_flows"]      # the flow twin on the pairs the emulation probed
        ref = baseline_latency_ms(kg_from_ref("topozoo/Abilene"))
        f = sum(ref[x] for x in pairs) / len(pairs)
        floor = emu["meta"]["latency_floor_ms"]["baseline"]
        quiet = emu["meta"]["latency_floor_ms"].get("no_background")
        bring = emu["meta"]["network"]["bringup_s"]
        e = emu["rows"]["baseline"]["latency_ms_mean"]
        fid = emu["meta"]["fidelity"]
        parts = emu["meta"]["network"].get("bringup_parts_s", {})
        print(f"Abilene bring-up inside: {bring:.1f} s (goal <= 10 s: ratio {bring / 10:.2f}; "
              + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in parts.items())
              + f"); datapath {fid['datapath']}, delay {fid['delay']}")
        print(f"fiber cut on the emulation inside: {wall:.1f} s wall; latency floor before the background "
              + (f"{quiet:.2f} ms (ratio {quiet / f:.3f}), " if quiet else "not measured, ")
              + f"in the baseline window {floor:.2f} ms vs flow "
              f"twin {f:.2f} ms on the same {len(pairs)} pairs (ratio {floor / f:.3f}; mean RTT/2 {e:.2f} ms "
              f"with queueing at bw_scale); baseline health {emu['meta']['baseline_health']['healthy']}; "
              f"reroute {emu['rows']['failure']['reroute_time_ms_mean']:.0f} ms (flow twin "
              f"{fl['rows']['failure']['reroute_time_ms_mean']:.0f} ms)")
    finally:
        machine.down(NAME)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
