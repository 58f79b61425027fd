"""Emulation soak: does the driver's memory stay flat over many scenarios on one network?

    .venv/bin/python benchmarks/soak.py [-n 200] [--topology topozoo/Abilene] [--trace]

Runs ``n`` scenarios (the round robin of ``emulation_throughput.py``: fibre cuts, a router
failure, a degradation, a DDoS, a misconfiguration) with the ``auto`` mitigation on one
:class:`EmulationTwin`, keeps only each result's KPIs (as a campaign does once it has written
the result), and prints the driver's resident memory (``VmRSS`` after ``gc.collect()``) along
the way and its growth per scenario: a least-squares slope over the scenarios after the first
quarter (warm-up: imports, caches, the first network). ``--trace`` also prints the ten places
whose Python allocations grew most between the end of the warm-up and the end (tracemalloc,
which slows the driver). Root and Open vSwitch, like the emulation.

Measured on this 2-core machine (2026-12-05, Abilene, 1 s windows): 200 scenarios in 2217 s,
none rebuilt; RSS 100.0 MiB after the first, 101.2 MiB after the warm-up (50), one step of +5
MiB between scenarios 60 and 70 (pymalloc took 5 more 1 MiB arenas and kept them), then 108.0
MiB from scenario 80 to 200; containers +1 per ~4 scenarios (83,680 -> 83,721, constant after
80), 3 threads, 7 fds throughout: +23.9 KiB per scenario by least squares (goal |slope| < 50).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections import Counter

from emulation_throughput import scenarios

from harness.kg import kg_from_ref
from harness.twin.emulation.twin import EmulationTwin


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def pymalloc_arenas() -> int:
    """Python's small-object allocator: 1 MiB arenas in use (``sys._debugmallocstats``)."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        for line in tmp.read().decode().splitlines():
            if line.startswith("# arenas allocated current"):
                return int(line.split("=")[1].replace(",", ""))
    return -1


def object_types() -> Counter:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", default="topozoo/Abilene")
    ap.add_argument("-n", type=int, default=200, help="scenarios to run")
    ap.add_argument("--window", type=float, default=1.0, help="measurement window (s)")
    ap.add_argument("--trace", action="store_true", help="tracemalloc: where Python memory grew")
    ap.add_argument("--trim", action="store_true",
                    help="glibc malloc_trim(0) after each scenario (is the growth freed memory the allocator keeps?)")
    args = ap.parse_args()
    kg = kg_from_ref(args.topology)
    scs = scenarios(kg, args.n)
    warm = max(2, args.n // 4)
    xs, ys, rebuilt = [], [], 0
    snap = None
    t0 = time.perf_counter()
    with EmulationTwin(window_s=args.window) as twin:
        for i, sc in enumerate(scs, 1):
            r = twin.run(kg, sc, "auto")
            rebuilt += bool(r.meta["network"].get("rebuilt"))
            loss = r.row("failure").loss_pct
            del r
            gc.collect()
            m = rss_mib()
            if args.trim:
                ctypes.CDLL("libc.so.6").malloc_trim(0)
                m_before, m = m, rss_mib()
            if i > warm:
                xs.append(i)
                ys.append(m)
            if i == warm:
                types0 = object_types()
                if args.trace:
                    tracemalloc.start(8)
                    snap = tracemalloc.take_snapshot()
            if i in (1, 10, warm) or i % 10 == 0 or i == args.n:
                print(f"  {i:4d} scenarios  {time.perf_counter() - t0:7.1f} s  RSS {m:7.1f} MiB  "
                      + (f"(before malloc_trim {m_before:.1f}) " if args.trim else "") +
                      f"{len(gc.get_objects())} objects, {pymalloc_arenas()} pymalloc arenas, "
                      f"{len(os.listdir('/proc/self/task'))} threads, "
                      f"{len(os.listdir('/proc/self/fd'))} fds (last: {sc.id}, failure loss {loss:.1f} %)", flush=True)
        end = tracemalloc.take_snapshot() if snap is not None else None
    per = slope(xs, ys) * 1024 if len(xs) > 1 else float("nan")
    print(f"\n{args.topology}: {args.n} scenarios in {time.perf_counter() - t0:.0f} s on one network "
          f"({rebuilt} rebuilt after an unhealthy restore)")
    print(f"driver RSS after warm-up ({warm} scenarios) {ys[0] if ys else float('nan'):.1f} MiB, at the end "
          f"{ys[-1] if ys else float('nan'):.1f} MiB: {per:+.1f} KiB per scenario (least squares over "
          f"scenarios {warm + 1}-{args.n}; goal: flat, |slope| < 50 KiB)")
    grew = (object_types() - types0).most_common(8)
    print("object types that grew most since the warm-up: "
          + (", ".join(f"{name} +{n}" for name, n in grew) or "none"))
    if end is not None:
        print("Python allocations that grew most since the warm-up (tracemalloc):")
        for stat in end.compare_to(snap, "traceback")[:10]:
            where = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in list(stat.traceback)[:4])
            print(f"  {stat.size_diff / 1024:+9.1f} KiB  {stat.count_diff:+6d} blocks  {where}")


if __name__ == "__main__":
    main()
