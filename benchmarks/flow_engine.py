"""Benchmark the flow-level twin engine on a 5,000-router AS-like graph.

Run: ``.venv/bin/python benchmarks/flow_engine.py [--nodes 5000] [--demands 2000] [--trials 50]``

Prints build time, per-evaluate time for two failed links on loaded paths (links picked
on the baseline route of random demands), and the ratio against a naive networkx
recompute of all shortest paths on the failed graph. The naive recompute is timed on a
sample of sources in the same run and extrapolated (it is linear in the number of
sources); both "all-pairs" (every router) and "per destination" (only the routers the
demands go to) extrapolations are printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import networkx as nx

from harness.topology import load_topology
from harness.twin.flow.engine import Demand, NetState, build


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--demands", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--naive-sources", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    G = load_topology(f"as:{args.nodes}")
    rng = random.Random(args.seed)
    nodes = list(G)
    demands = [
        Demand(*rng.sample(nodes, 2), round(rng.lognormvariate(4, 1), 1), f"f{i}")
        for i in range(args.demands)
    ]
    t = time.perf_counter()
    eng = build(G, demands)
    build_s = time.perf_counter() - t
    base = eng.baseline
    print(f"topology as:{args.nodes}: {G.number_of_nodes()} routers, {G.number_of_edges()} links; "
          f"{len(demands)} demands to {len({d.dst for d in demands})} destinations")
    print(f"build: {build_s:.2f} s (baseline evaluate {base.timing['total_ms']:.1f} ms)")

    times, runs, rewalked = [], [], []
    scenarios = []
    for _ in range(args.trials):
        links = set()
        while len(links) < 2:
            d = rng.choice(demands)
            links.add(rng.choice(sorted(base.paths(d.id))))
        state = NetState(failed_links=frozenset(links))
        scenarios.append(links)
        t = time.perf_counter()
        out = eng.evaluate(state)
        times.append((time.perf_counter() - t) * 1e3)
        runs.append(out.timing["dijkstra_runs"])
        rewalked.append(out.timing["rewalked_demands"])
    q = statistics.quantiles(times, n=10)
    print(f"evaluate, 2 failed links on loaded paths, {args.trials} trials: "
          f"median {statistics.median(times):.1f} ms, p90 {q[-1]:.1f} ms, max {max(times):.1f} ms, "
          f"mean {statistics.fmean(times):.1f} ms")
    print(f"  destinations re-routed per evaluate: median {statistics.median(runs):.0f}, max {max(runs)}; "
          f"demands re-walked: median {statistics.median(rewalked):.0f}, max {max(rewalked)}")
    t = time.perf_counter()
    eng.evaluate(NetState())
    print(f"evaluate, unchanged state: {(time.perf_counter() - t) * 1e3:.1f} ms")

    # naive: networkx Dijkstra (distances + paths) from a sample of sources on the failed graph
    H = G.copy()
    H.remove_edges_from(tuple(lid.split("-")) for lid in scenarios[0])
    sample = rng.sample(nodes, args.naive_sources)
    t = time.perf_counter()
    for s in sample:
        nx.single_source_dijkstra(H, s, weight="delay_ms")
    per_source = (time.perf_counter() - t) / len(sample)
    n_dst = len({d.dst for d in demands})
    all_pairs = per_source * G.number_of_nodes()
    per_dst = per_source * n_dst
    mean_eval = statistics.fmean(times) / 1e3
    print(f"naive networkx recompute (timed on {len(sample)} sources, extrapolated): "
          f"{per_source * 1e3:.1f} ms/source -> all-pairs {all_pairs:.1f} s, "
          f"demand destinations only {per_dst:.1f} s")
    print(f"speed-up of mean evaluate: {all_pairs / mean_eval:.0f}x vs all-pairs, "
          f"{per_dst / mean_eval:.0f}x vs destinations-only")


if __name__ == "__main__":
    main()
