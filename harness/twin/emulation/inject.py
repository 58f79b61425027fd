"""Event injection and mitigation actions on a running :class:`EmulatedNetwork`.

Each event type has a *prepare* step (slow start-up work done before the measurement
begins: flood processes are spawned with a start time, iperf3 servers listen) and an
*inject* step run at the event's scaled wall-clock time.  Both return plain records for
the timeline.  Target names reach commands only as list arguments, and only after the
scenario validator accepted them.

Semantics (mirroring :func:`harness.twin.flow.twin.state_for`):

``fiber_link_failure`` / ``srlg_failure``
    ``set_link(u, v, up=False)`` on the link (every link of the SRLG): both veth ends down.
``router_failure``
    ``set_router(r, up=False)``: every port of the router's bridge, host port included.
``router_overload``
    the router's forwarding capacity (the controller's meter on everything its switch
    receives, at the KG ``cpu`` capacity × ``bw_scale``) set to ``capacity_factor`` × that;
    the load is the traffic already crossing it (the background replay of the KG's traffic
    matrix, whose baseline through-traffic is the ``cpu`` resource's ``load``).
``link_degradation``
    ``add_loss`` (``loss_pct`` on each crossing, nftables numgen here) and
    ``shape_link`` to ``capacity_factor`` × the link's rate when the factor is < 1.
``traffic_surge``
    iperf3 UDP to the target's host from the KG flows ``src → target`` (``src`` in
    ``sources``, empty = every router), each at ``(multiplier − 1)`` × the flow's KG demand
    × ``bw_scale``; at most ``max_senders`` senders (largest demand first; the rest are
    listed as dropped).
``ddos_spike``
    ``intensity`` × the target's access capacity (sum of its KG link capacities) ×
    ``bw_scale`` in total, from at most ``max_senders`` sources (nearest by hop count,
    then name; the total is kept and split evenly over the senders actually used).
    Each sender is :mod:`harness.twin.emulation.flood` (Scapy-crafted UDP or SYN frames,
    spoofed sources if ``spoofed``) inside the source's namespace; a UDP sender whose
    packet rate would exceed ``flood_max_pps`` is replaced by iperf3 UDP; a SYN sender is
    capped at ``flood_max_pps``.  The generator used and achieved rates are recorded.
``misconfiguration``
    ``client.blackhole(r, d)`` / ``client.wrong_next_hop(r, d, next_hop)`` for every
    destination (empty = every other router); the ids are kept for ``rollback``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
import networkx as nx

from harness.errors import ConfigError, EmulationError
from harness.kg.model import KnowledgeGraph
from harness.scenario.model import Event
from harness.twin.emulation.network import MAX_RATE_MBPS, MIN_RATE_MBPS, EmulatedNetwork
from harness.twin.emulation.probes import _wait_listening, iperf_udp_argv

#: First iperf3 port the twin uses (servers of one scenario take consecutive ports).
IPERF_BASE_PORT = 5301
#: Frame size of Scapy UDP flood packets (bytes): volumetric, few packets per Mbit.
FLOOD_UDP_FRAME = 1000
#: Frame size of a Scapy TCP SYN (Ether + IP + TCP, no options).
SYN_FRAME = 54


def _clamp(rate: float) -> float:
    return round(min(MAX_RATE_MBPS, max(MIN_RATE_MBPS, rate)), 6)


@dataclass
class Generator:
    """One background traffic process started for an event."""

    kind: str                 # "iperf3" | "scapy"
    src: str
    dst: str
    target_mbps: float
    proc: subprocess.Popen | None = None
    server: subprocess.Popen | None = None
    port: int | None = None
    start_at: float | None = None
    duration_s: float | None = None
    length: int = 1200
    listening: bool = False
    argv: list[str] = field(default_factory=list)
    result: dict | None = None
    note: str | None = None

    def collect(self, timeout: float = 3.0) -> dict:
        """Wait for the sender to finish and parse what it reports (achieved rates)."""
        if self.result is not None:
            return self.result
        rec = {"generator": self.kind, "src": self.src, "dst": self.dst, "target_mbps": round(self.target_mbps, 6)}
        if self.note:
            rec["note"] = self.note
        if self.proc is None:
            rec["error"] = "not started"
            self.result = rec
            return rec
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(2)
            try:
                out, err = self.proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
        text = (out or b"").decode(errors="replace").strip()
        try:
            if self.kind == "scapy":
                d = json.loads(text.splitlines()[-1])
                rec.update(achieved_pps=d["pps"], achieved_mbps=d["mbps"], target_pps=d["target_pps"],
                           frame_bytes=d["frame_bytes"], sent_packets=d["sent_packets"], elapsed_s=d["elapsed_s"])
            else:
                d = json.loads(text)
                if "error" in d:
                    rec["error"] = d["error"]
                else:
                    s = d["end"]["sum"]
                    sent = s["bits_per_second"] / 1e6
                    rec.update(achieved_mbps=round(sent, 4),
                               achieved_pps=round(s.get("packets", 0) / max(s.get("seconds", 0) or 1e-9, 1e-9), 1),
                               receiver_loss_pct=round(float(s.get("lost_percent") or 0.0), 3))
        except (ValueError, KeyError, IndexError):
            rec["error"] = "no result: " + ((err or b"").decode(errors="replace").strip()[-200:] or "empty output")
        self.result = rec
        return rec


class Injector:
    """Injects one scenario's events into ``net`` and applies mitigation actions."""

    def __init__(self, net: EmulatedNetwork, kg: KnowledgeGraph, *, bw_scale: float, max_senders: int,
                 flood_max_pps: float, python: str = sys.executable):
        self.net = net
        self.kg = kg
        self.bw_scale = bw_scale
        self.max_senders = max_senders
        self.flood_max_pps = flood_max_pps
        self.python = python
        self.generators: dict[int, list[Generator]] = {}
        self.misconfig_ids: dict[str, list[int]] = {}
        self.notes: list[str] = []
        self._next_port = IPERF_BASE_PORT
        self.start_dir = None
        self._hops: dict[str, dict[str, int]] = {}

    # ------------------------------------------------------------------ helpers
    def _port(self) -> int:
        p = self._next_port
        self._next_port += 1
        return p

    def _hop(self, a: str, b: str) -> int:
        if a not in self._hops:
            self._hops[a] = nx.single_source_shortest_path_length(self.kg.topology, a)
        return self._hops[a].get(b, 10 ** 6)

    def current_rate(self, lid: str) -> float:
        """The link's current shaped rate (Mbit/s, emulated units)."""
        return self.net._shaped.get(lid) or self.net._links[lid]["rate_mbps"]

    def failed_links(self) -> set[str]:
        """Links the emulation has taken down (their own or a failed router's)."""
        out = set(self.net._down_links)
        for r in self.net._down_routers:
            out |= {l for l in self.kg.links if r in self.kg.link_ends(l)}
        return out

    def _iperf(self, src: str, dst: str, mbps: float, length: int = 1200,
               note: str | None = None) -> Generator:
        port = self._port()
        server = self.net.spawn(dst, ["iperf3", "-s", "-1", "-p", str(port)])
        return Generator("iperf3", src, dst, mbps, server=server, port=port, note=note, length=length)

    def _start_iperf_clients(self, gens: list[Generator]) -> None:
        for g in gens:
            if g.kind != "iperf3" or g.proc is not None:
                continue
            if not g.listening:
                _wait_listening(self.net, g.dst, g.port)
            g.proc = self.net.spawn(g.src, g.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # ------------------------------------------------------------------ prepare
    def prepare(self, i: int, e: Event, start_dir) -> None:
        """Start-up work for event ``i`` that must not fall inside a measurement window.

        Flood senders are spawned now and wait for a start file in ``start_dir``
        (:meth:`schedule` writes it); iperf3 servers start listening."""
        self.start_dir = start_dir
        p = e.params
        gens: list[Generator] = []
        if e.event_type == "traffic_surge":
            sources = set(p.get("sources") or self.kg.routers)
            cands = []
            for f in self.kg.flows:
                a = self.kg.attrs("flow", f)
                if a["dst"] == e.target and a["src"] in sources and a["src"] != e.target:
                    cands.append((-a["demand_mbps"], a["src"], (p["multiplier"] - 1) * a["demand_mbps"] * self.bw_scale))
            cands.sort()
            used, dropped = cands[: self.max_senders], cands[self.max_senders:]
            if dropped:
                self.notes.append(f"event {i} traffic_surge: {len(cands)} surging flows, only the "
                                  f"{len(used)} largest sent (max_senders={self.max_senders}); "
                                  f"{sum(x[2] for x in dropped):.4g} of {sum(x[2] for x in cands):.4g} Mbit/s not sent")
            for _, src, mbps in used:
                gens.append(self._iperf(src, e.target, mbps))
        elif e.event_type == "ddos_spike":
            sources = p.get("sources") or [r for r in self.kg.routers if r != e.target]
            access = sum(d["capacity_mbps"] for _, _, d in self.kg.topology.edges(e.target, data=True))
            total = p["intensity"] * access * self.bw_scale
            chosen = sorted(sources, key=lambda s: (self._hop(s, e.target), s))[: self.max_senders]
            if len(chosen) < len(sources):
                self.notes.append(f"event {i} ddos_spike: {len(sources)} sources, {len(chosen)} senders used "
                                  f"(nearest by hops, max_senders={self.max_senders}); total rate kept")
            each = total / len(chosen)
            for src in chosen:
                gens.append(self._flood(i, src, e.target, each, p))
        elif e.event_type == "router_overload" and e.target not in self.net.router_capacity:
            raise EmulationError(f"router_overload on {e.target}: the network was built without router "
                                 f"forwarding capacities (EmulatedNetwork(router_capacity_mbps=...))")
        self.generators[i] = gens

    def schedule(self, i: int, start_at: float, end_at: float) -> None:
        """Fix event ``i``'s senders' start and end (epoch seconds)."""
        for g in self.generators.get(i, []):
            g.start_at, g.duration_s = start_at, max(end_at - start_at, 0.1)
            if g.kind == "iperf3":
                g.argv = iperf_udp_argv(self.net.host_ip(g.dst), max(g.target_mbps, 0.001), g.duration_s,
                                        port=g.port, length=g.length)
        path = self.start_dir / f"start-{i}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{start_at:.6f} {end_at:.6f}\n")
        tmp.rename(path)

    def _flood(self, i: int, src: str, dst: str, mbps: float, p: dict) -> Generator:
        proto = p.get("protocol", "udp")
        frame = SYN_FRAME if proto == "syn" else FLOOD_UDP_FRAME
        pps = mbps * 1e6 / 8 / frame
        if proto == "udp" and pps > self.flood_max_pps:
            return self._iperf(src, dst, mbps, length=FLOOD_UDP_FRAME - 42,
                               note=f"Scapy cannot reach {pps:.0f} pps here (> {self.flood_max_pps:g}): iperf3 UDP instead")
        note = None
        if pps > self.flood_max_pps:
            note = f"SYN rate {pps:.0f} pps capped at {self.flood_max_pps:g} pps per sender"
            mbps = self.flood_max_pps * frame * 8 / 1e6
        argv = [self.python, "-m", "harness.twin.emulation.flood", "--iface", self.net.netns(src),
                "--src-mac", self.net.host_mac(src), "--dst-mac", self.net.host_mac(dst),
                "--src-ip", self.net.host_ip(src), "--dst-ip", self.net.host_ip(dst), "--proto", proto,
                "--mbps", f"{mbps:.6f}", "--size", str(FLOOD_UDP_FRAME),
                "--start-file", str(self.start_dir / f"start-{i}")]
        if p.get("spoofed"):
            argv.append("--spoof")
        g = Generator("scapy", src, dst, mbps, argv=argv, note=note)
        g.proc = self.net.spawn(src, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return g

    # ------------------------------------------------------------------ inject / undo
    def inject(self, i: int, e: Event) -> dict:
        """Inject event ``i`` now; returns what was done (for the timeline)."""
        net, p = self.net, e.params
        t = e.event_type
        if t == "fiber_link_failure":
            u, v = self.kg.link_ends(e.target)
            net.set_link(u, v, up=False)
            return {"done": f"link {e.target} down (both ends)"}
        if t == "srlg_failure":
            links = list(self.kg.attrs("srlg", e.target)["links"])
            for l in links:
                net.set_link(*self.kg.link_ends(l), up=False)
            return {"done": f"links {', '.join(links)} down (both ends)"}
        if t == "router_failure":
            net.set_router(e.target, up=False)
            return {"done": f"router {e.target} down (all ports)"}
        if t == "router_overload":
            f = p["capacity_factor"]
            mbps = round(max(net.router_capacity[e.target] * f, 0.008), 6)
            net.client.router_capacity(e.target, mbps)
            return {"done": f"forwarding capacity of {e.target} metered at {mbps:g} Mbit/s "
                            f"({f:g} x {net.router_capacity[e.target]:g})", "capacity_mbps": mbps}
        if t == "link_degradation":
            u, v = self.kg.link_ends(e.target)
            done = []
            out: dict = {}
            if p.get("loss_pct"):
                net.add_loss(u, v, p["loss_pct"])
                done.append(f"{p['loss_pct']:g} % loss per crossing ({net.fidelity.get('loss')})")
            if p.get("capacity_factor") is not None and p["capacity_factor"] < 1:
                rate = _clamp(self.current_rate(e.target) * p["capacity_factor"])
                net.shape_link(u, v, rate)
                done.append(f"shaped to {rate:g} Mbit/s")
                out["shaped_mbps"] = rate
            return {"done": f"link {e.target}: " + (", ".join(done) or "nothing to do"), **out}
        if t == "traffic_surge":
            gens = self.generators.get(i, [])
            self._start_iperf_clients(gens)
            return {"done": f"iperf3 UDP surge to {e.target} from {', '.join(g.src for g in gens) or 'nobody'}",
                    "target_mbps": round(sum(g.target_mbps for g in gens), 6)}
        if t == "ddos_spike":
            gens = self.generators.get(i, [])
            self._start_iperf_clients(gens)  # the iperf3 fallbacks; floods start on their own
            kinds = sorted({g.kind for g in gens})
            return {"done": f"{p.get('protocol', 'udp')} flood ({'+'.join(kinds)}) at {e.target} from "
                            f"{', '.join(g.src for g in gens)}" + (" with spoofed sources" if p.get("spoofed") else ""),
                    "target_mbps": round(sum(g.target_mbps for g in gens), 6)}
        if t == "misconfiguration":
            dsts = p.get("destinations") or [r for r in self.kg.routers if r != e.target]
            ids = self.misconfig_ids.setdefault(e.target, [])
            for d in dsts:
                if d == e.target:
                    continue
                if p["mode"] == "blackhole":
                    ids.append(net.client.blackhole(e.target, d))
                else:
                    ids.append(net.client.wrong_next_hop(e.target, d, p["next_hop"]))
            return {"done": f"{p['mode']} on {e.target} for {len(dsts)} destinations"}
        raise ConfigError(f"the emulation twin has no injection for event type {t!r}")

    def undo(self, i: int, e: Event) -> dict:
        """End event ``i`` (its ``duration_s`` is over before the failure window)."""
        net = self.net
        t = e.event_type
        for g in self.generators.get(i, []):
            for proc in (g.proc, g.server):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(2)
        if t == "fiber_link_failure":
            net.set_link(*self.kg.link_ends(e.target), up=True)
        elif t == "srlg_failure":
            for l in self.kg.attrs("srlg", e.target)["links"]:
                net.set_link(*self.kg.link_ends(l), up=True)
        elif t == "router_failure":
            net.set_router(e.target, up=True)
        elif t == "router_overload":
            net.client.router_capacity(e.target)
        elif t == "link_degradation":
            net.restore_link(*self.kg.link_ends(e.target))
        elif t == "misconfiguration":
            for mid in self.misconfig_ids.pop(e.target, []):
                net.client.rollback(mid)
        return {"done": f"{t} on {e.target} ended"}

    # ------------------------------------------------------------------ mitigation
    def apply(self, action: dict) -> dict:
        """Apply one mitigation action dict (see :mod:`harness.mitigate.strategies`)."""
        kind = action["action"]
        client = self.net.client
        if kind == "reroute":
            client.reroute(list(action.get("avoid_links", ())))
            return {"done": f"reroute avoiding {len(action.get('avoid_links', ()))} links"
                            + (" (load_aware ignored: the controller routes by delay with penalties)"
                               if action.get("load_aware") else "")}
        if kind == "rate_limit":
            mbps = max(float(action["mbps"]) * self.bw_scale, 0.008)
            client.rate_limit(action["router"], mbps)
            return {"done": f"meter {mbps:.4g} Mbit/s on {action['router']}'s host port"}
        if kind == "add_capacity":
            lid = action["link"]
            u, v = self.kg.link_ends(lid)
            rate = _clamp(self.current_rate(lid) + float(action["mbps"]) * self.bw_scale)
            self.net.shape_link(u, v, rate)
            return {"done": f"link {lid} re-shaped to {rate:g} Mbit/s"}
        if kind == "rollback":
            ids = self.misconfig_ids.pop(action["router"], [])
            for mid in ids:
                client.rollback(mid)
            return {"done": f"rolled back {len(ids)} misconfigurations on {action['router']}"}
        raise ConfigError(f"unknown mitigation action {kind!r}")

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Wait until every iperf3 server listens and every flood sender has printed its ready
        line; returns seconds waited."""
        import select

        t0 = time.monotonic()
        for gens in self.generators.values():
            for g in gens:
                if g.kind == "iperf3" and g.server is not None:
                    _wait_listening(self.net, g.dst, g.port)
                    g.listening = True
                if g.kind != "scapy" or g.proc is None or g.proc.stdout is None:
                    continue
                left = timeout - (time.monotonic() - t0)
                ready, _, _ = select.select([g.proc.stdout], [], [], max(left, 0.0))
                line = g.proc.stdout.readline() if ready else b""
                if b'"ready"' not in line:
                    raise EmulationError(f"flood sender on {g.src} did not start within {timeout:.0f} s "
                                         f"(exit code {g.proc.poll()})")
        return time.monotonic() - t0

    def collect(self) -> dict[int, list[dict]]:
        """Achieved rates of every generator, per event index (waits for senders to end)."""
        return {i: [g.collect() for g in gens] for i, gens in self.generators.items() if gens}


def wait_until(t: float) -> None:
    """Sleep until epoch time ``t``."""
    while True:
        left = t - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


__all__ = ["Injector", "Generator", "wait_until"]
