"""Bring-up / teardown time: stock Mininet vs ani's EmulatedNetwork.

    python benchmarks/bringup.py [topozoo/Geant2012 topozoo/TataNld ...] [--repeat N] [--skip-stock]

Stock: ``Mininet(topo, switch=OVSSwitch(datapath='user'), controller=None)`` with one host
per switch, ``start()`` / ``stop()``.  ani: ``EmulatedNetwork`` without the controller
(same work as stock) and with it (until every switch has its routes).  Needs root and a
running Open vSwitch; run it on an idle machine (load is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.topology import load_topology  # noqa: E402
from harness.twin.emulation.network import EmulatedNetwork  # noqa: E402


def stock(graph) -> tuple[float, float]:
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSSwitch
    from mininet.topo import Topo

    setLogLevel("error")
    routers = sorted(graph.nodes)
    idx = {r: i + 1 for i, r in enumerate(routers)}

    class T(Topo):
        def build(self):
            for r in routers:
                s = self.addSwitch(f"s{idx[r]}", dpid=f"{idx[r]:016x}")
                h = self.addHost(f"h{idx[r]}")
                self.addLink(h, s)
            for u, v in sorted(tuple(sorted(e)) for e in graph.edges):
                self.addLink(f"s{idx[u]}", f"s{idx[v]}")

    net = Mininet(topo=T(), switch=partial(OVSSwitch, datapath="user"), controller=None,
                  autoSetMacs=True, build=False)
    t0 = time.perf_counter()
    try:
        net.build()
        net.start()
        up = time.perf_counter() - t0
    finally:
        t1 = time.perf_counter()
        net.stop()
        down = time.perf_counter() - t1
    return up, down


def ours(graph, controller: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="ani-bench-") as d:
        t0 = time.perf_counter()
        net = EmulatedNetwork(graph, d, controller=controller)
        with net:
            up = time.perf_counter() - t0
        return up, net.timings["teardown_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("topologies", nargs="*", default=["topozoo/Geant2012", "topozoo/TataNld"])
    ap.add_argument("--repeat", type=int, default=2, help="runs per variant; the best is shown")
    ap.add_argument("--skip-stock", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/bringup.py needs root")
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    print(f"{'topology':<20} {'routers':>7} {'links':>6} {'variant':<16} {'up s':>7} {'down s':>7} "
          f"{'up ratio':>9} {'down ratio':>10}")
    for ref in args.topologies:
        g = load_topology(ref)
        rows = {}
        for _ in range(args.repeat):
            # ani first: stock Mininet's teardown leaves ovs-vswitchd busy for seconds after it
            # returns, which would be charged to whatever runs next.
            rows.setdefault("ani", []).append(ours(g, controller=False))
            rows.setdefault("ani + controller", []).append(ours(g, controller=True))
            if not args.skip_stock:
                rows.setdefault("stock mininet", []).append(stock(g))
                time.sleep(3.0)
        best = {k: (min(u for u, _ in v), min(d for _, d in v)) for k, v in rows.items()}
        base = best.get("stock mininet")
        for name in ("stock mininet", "ani", "ani + controller"):
            if name not in best:
                continue
            up, down = best[name]
            ru = f"{up / base[0]:.2f}" if base else "-"
            rd = f"{down / base[1]:.2f}" if base else "-"
            print(f"{ref:<20} {g.number_of_nodes():>7} {g.number_of_edges():>6} {name:<16} "
                  f"{up:>7.2f} {down:>7.2f} {ru:>9} {rd:>10}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
