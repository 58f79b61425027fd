"""The knowledge graph's traffic matrix replayed as background traffic in the emulation.

Every KG flow ``src → dst`` is sent as UDP at ``demand_mbps × bw_scale`` (link shaping is
``capacity × bw_scale``, so utilisations stay comparable with the flow twin), by **one
sender process per source host** (``python -m harness.twin.emulation.background --spec F``
inside the host's namespace) that serves all of that source's destinations.

Packets: ``FRAME_BYTES``-byte Ethernet frames (Ether/IPv4/UDP, addresses set explicitly from
:meth:`EmulatedNetwork.host_mac` / ``host_ip``, UDP checksum 0), built once per destination
with ``struct`` and sent through one reused ``AF_PACKET`` socket.  Scapy is not used here:
its ~1 s import per process, times one process per router (37 on Geant2012), would cost
more CPU per scenario than the sending itself.

Pacing: a deterministic schedule.  Flow ``j`` of a sender (period ``1 / pps_j``) is due at
``t0 + (j + 0.5) / n × period_j + k × period_j`` (staggered phases, so one sender's flows do
not burst together); the sender sleeps until the earliest due packet and sends everything
due within the next millisecond.  When it falls behind it sends as fast as it can.

Counting (traffic-weighted loss): every background packet carries :data:`MAGIC` and its
send time (epoch seconds) at the start of its UDP payload.  Senders count what they sent per
destination and per :data:`BINS_PER_S` time bin; receivers count what arrived per source and
per *send-time* bin, so a window's loss is ``1 − received / sent`` over the packets sent in
it, whatever their delay (:func:`harness.twin.emulation.measure.traffic_loss`).

Receiver: UDP destination port 9.  Every host that receives background traffic runs one
process (the sender of that host, or a sink-only process for a destination that is not a
source) whose receive thread binds UDP port 9 with a 4 MB buffer and reads only the first
12 bytes of each datagram.  Datagrams without the marker (floods, :mod:`.flood`, also
use port 9) are counted as ``recv_other``.  A bound port means **no ICMP port-unreachable**
replies (those would add reverse traffic).  On SIGINT the sender stops at once and the
receiver keeps counting for :data:`GRACE_S` (packets still in flight).

Packet budget: the userspace datapath forwards ~50 kpps in total (NOTES.md), every packet
costs it once per switch it crosses, and the probes (one ICMP pair per monitored flow at
25 Hz) already use much of it.  Two budgets, whichever is tighter: ``max_pps`` packets sent
per second, and ``max_hop_pps`` switch traversals per second (each flow's packets × the
switches on its delay-shortest path, the controller's routing).  Above either, every flow is
scaled down by the same factor and :attr:`BackgroundPlan.scale` says so.  Measured on 2 vCPU
(Geant2012, 132 probed pairs, machine busy): 12.7 k traversals/s (the full matrix) gave
~20 % baseline probe loss from datapath saturation, 8 k ~2 %, 4 k ~0.6 %; probes alone
~0.1-0.5 %.  Abilene's full matrix is 7.0 k traversals/s and fits.

Each process prints ``{"ready": true}`` once its sockets are open, and on SIGINT / SIGTERM
(or ``max_s``) one JSON line with what it sent in total, per destination and per bin, and
what it received per source address and bin.
"""

from __future__ import annotations

import argparse
import heapq
import json
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Ethernet frame size of background packets (bytes, without FCS): a full 1500-byte MTU
#: packet, because the userspace datapath's cost is per packet, not per byte.
FRAME_BYTES = 1514
#: Packets per second every *monitored* flow sends at least, so its loss and reachability are
#: judged one-way on its own packets (the twin needs >= 20 in a window and >= 5 in its last
#: second): a flow whose demand gives fewer full frames sends smaller frames at the same bit
#: rate, down to :data:`MIN_FRAME_BYTES`; below that it sends ``FLOOR_PPS`` minimum frames and
#: the plan records the excess.  Without it such flows were judged on their ICMP probes, whose
#: replies take the reverse path: a router blackholing its own outgoing traffic then "broke"
#: the flows *to* it too (the fidelity suite's misconfiguration disagreements, 2026-12-05).
FLOOR_PPS = 10.0
#: Packets per second, at least, of a monitored flow whose path crosses a link an event
#: degrades (random loss, lower capacity): 200 packets in a 2 s window, so a 5 % loss shows
#: over a 1 % SLA bound beyond sampling error 97 % of the time (Wilson lower bound of 5 lost
#: of 200 = 1.07 %; at the floor's 20 packets, 1 lost of 20 cannot show it: the fidelity
#: suite's link-degradation disagreements, 2026-12-05). What fast probes are to reroute
#: time, this is to loss: the instrument looks closer where the events are; the KPIs still
#: come from the packets it measures.
WATCH_PPS = 100.0
#: At most this many packets per second go to the watched flows' raised floors together (the
#: fast probes' budget, see ``twin.MAX_FAST_PAIRS``); more flows share it.
WATCH_BUDGET_PPS = 3200.0
#: Smallest background frame (Ether + IPv4 + UDP + the 12-byte marker, padded).
MIN_FRAME_BYTES = 64
#: Total background packet rate above which the matrix is scaled down uniformly.
DEFAULT_MAX_PPS = 5000.0
#: Total background switch traversals per second above which the matrix is scaled down.
DEFAULT_MAX_HOP_PPS = 8000.0
#: UDP destination port (discard); bound but never read on every receiving host.
SINK_PORT = 9
#: A sender stops by itself after this long (it is normally stopped by SIGINT).
MAX_S = 1800.0
#: Marker at the start of every background packet's UDP payload (then the send time, !d).
MAGIC = b"ANI1"
#: Marker of injected surge / flood packets the senders add (counted apart, like floods).
BURST_MAGIC = b"ANI2"
#: Time bins per second of the sent / received counts.
BINS_PER_S = 50
#: Seconds a receiver keeps counting after SIGINT (packets in flight).
GRACE_S = 0.3
#: Receive buffer of the sink socket (bytes).
RCVBUF = 4 << 20


@dataclass
class BackgroundPlan:
    """What will be replayed: per source, ``[(dst, mbps), ...]`` (already scaled)."""

    per_src: dict[str, list[tuple[str, float]]]
    flows: int
    offered_mbps: float          # demand × bw_scale, before the packet-budget scaling
    scale: float                 # packet-budget factor (1.0 = the full matrix)
    frame_bytes: int = FRAME_BYTES
    max_pps: float = DEFAULT_MAX_PPS
    hop_pps: float = 0.0          # switch traversals per second (after scaling)
    max_hop_pps: float = DEFAULT_MAX_HOP_PPS
    sinks: list[str] = field(default_factory=list)   # destinations that are no source
    probe_excess_mbps: float = 0.0   # probe traffic beyond the demand of the flows it stands in for
    #: per source: injected surge / flood traffic its sender adds while an event lasts:
    #: ``{"event", "dst", "mbps", "start_file"}`` (see :func:`plan_background`)
    bursts: dict[str, list[dict]] = field(default_factory=dict)
    #: ``(src, dst) -> frame bytes`` of flows sent in smaller frames (:data:`FLOOR_PPS`)
    frames: dict[tuple[str, str], int] = field(default_factory=dict)
    floor_pairs: int = 0             # monitored flows raised to the floor packet rate
    floor_excess_mbps: float = 0.0   # what the floor sends beyond those flows' demand
    watch_pairs: int = 0             # of them, flows across a degraded link raised to ``watch_pps``
    watch_pps: float = 0.0

    def frame(self, src: str, dst: str) -> int:
        return self.frames.get((src, dst), self.frame_bytes)

    def flow_pps(self, src: str, dst: str, mbps: float) -> float:
        return mbps * 1e6 / 8 / self.frame(src, dst)

    @property
    def burst_mbps(self) -> float:
        return sum(b["mbps"] for v in self.bursts.values() for b in v)

    @property
    def sent_mbps(self) -> float:
        return sum(m for v in self.per_src.values() for _, m in v)

    @property
    def pps(self) -> float:
        return sum(self.flow_pps(s, d, m) for s, v in self.per_src.items() for d, m in v)

    def record(self) -> dict:
        return {"flows": self.flows, "senders": len(self.per_src), "sink_only_hosts": len(self.sinks),
                "offered_mbps": round(self.offered_mbps, 4), "target_mbps": round(self.sent_mbps, 4),
                "target_pps": round(self.pps, 1), "budget_pps": self.max_pps,
                "target_switch_traversals_per_s": round(self.hop_pps, 1), "budget_switch_traversals_per_s":
                self.max_hop_pps,
                "budget_scale": round(self.scale, 6), "frame_bytes": self.frame_bytes,
                "probe_excess_mbps": round(self.probe_excess_mbps, 4),
                "floor_pps": FLOOR_PPS, "floor_pairs": self.floor_pairs,
                "floor_excess_mbps": round(self.floor_excess_mbps, 4),
                "watch_pairs": self.watch_pairs, "watch_pps": round(self.watch_pps, 1),
                "injected_flows": sum(len(v) for v in self.bursts.values()),
                "injected_mbps": round(self.burst_mbps, 4),
                "sink": f"UDP port {SINK_PORT} bound and never read (no ICMP port-unreachable)"}


def plan_background(kg, bw_scale: float, *, max_pps: float = DEFAULT_MAX_PPS,
                    max_hop_pps: float = DEFAULT_MAX_HOP_PPS, frame_bytes: int = FRAME_BYTES,
                    probe_mbps: dict | None = None, bursts: list[dict] = (),
                    floor_pairs=(), floor_pps: float = FLOOR_PPS, watch_pairs=(),
                    watch_budget_pps: float = WATCH_BUDGET_PPS) -> BackgroundPlan:
    """The KG's flows as per-source send lists at ``demand × bw_scale``, scaled down
    uniformly when the total exceeds ``max_pps`` or ``max_hop_pps``; each flow then less
    ``probe_mbps[(src, dst)]`` (the probes' own traffic on that pair, which is part of the
    flow's demand), never below 0 — :attr:`BackgroundPlan.probe_excess_mbps` is what the
    probes send beyond their flows' demands.  ``bursts``: injected traffic
    (``{"event", "src", "dst", "mbps", "start_file"}``, ``mbps`` already in emulated units)
    each source's sender adds while its event lasts, scaled by the same budget factor.
    ``floor_pairs``: the monitored ``(src, dst)`` flows, each sent at ``floor_pps`` at least
    (smaller frames, see :data:`FLOOR_PPS`), after all of the above; those of them in
    ``watch_pairs`` (across a degraded link) at :data:`WATCH_PPS`, or less so that together
    they send at most ``watch_budget_pps``."""
    import networkx as nx

    per: dict[str, list[tuple[str, float]]] = {}
    n = 0
    total = 0.0
    hops = 0.0
    paths: dict[str, dict] = {}
    for f in sorted(kg.flows):
        a = kg.attrs("flow", f)
        mbps = float(a.get("demand_mbps") or 0.0) * bw_scale
        if mbps <= 0 or a["src"] == a["dst"]:
            continue
        per.setdefault(a["src"], []).append((a["dst"], mbps))
        n += 1
        total += mbps
        if a["src"] not in paths:
            paths[a["src"]] = {d: len(p) for d, p in nx.single_source_dijkstra_path(
                kg.topology, a["src"], weight="delay_ms").items()}
        hops += mbps * 1e6 / 8 / frame_bytes * paths[a["src"]].get(a["dst"], 1)
    pps = total * 1e6 / 8 / frame_bytes
    scale = min(1.0, max_pps / pps if pps > 0 else 1.0, max_hop_pps / hops if hops > 0 else 1.0)
    if scale < 1.0:
        per = {s: [(d, m * scale) for d, m in v] for s, v in per.items()}
    excess = 0.0
    if probe_mbps:
        for s in per:
            kept = []
            for d, m in per[s]:
                p = probe_mbps.get((s, d), 0.0)
                excess += max(0.0, p - m)
                kept.append((d, max(0.0, m - p)))
            per[s] = [(d, m) for d, m in kept if m > 0]
        per = {s: v for s, v in per.items() if v}
    frames: dict[tuple[str, str], int] = {}
    floor_excess = 0.0
    raised = 0
    watch = {p for p in set(watch_pairs) & set(floor_pairs) if p[0] != p[1]}
    watch_pps = max(floor_pps, min(WATCH_PPS, watch_budget_pps / len(watch))) if watch else 0.0
    for s_, d_ in sorted(set(floor_pairs)):
        if s_ == d_:
            continue
        flows_s = dict(per.get(s_, []))
        m = flows_s.get(d_, 0.0)
        pps = watch_pps if (s_, d_) in watch else floor_pps
        if m * 1e6 / 8 / frame_bytes >= pps:
            continue
        fb = max(MIN_FRAME_BYTES, min(frame_bytes, int(m * 1e6 / 8 / pps)))
        if m * 1e6 / 8 / fb < pps:      # even minimum frames: send the floor, note the excess
            floor_excess += pps * fb * 8 / 1e6 - m
            m = pps * fb * 8 / 1e6
        frames[(s_, d_)] = fb
        flows_s[d_] = m
        per[s_] = sorted(flows_s.items())
        raised += 1
    by_src: dict[str, list[dict]] = {}
    for b in bursts:
        if b["mbps"] > 0 and b["src"] != b["dst"]:
            by_src.setdefault(b["src"], []).append({"event": int(b["event"]), "dst": b["dst"],
                                                    "mbps": float(b["mbps"]) * scale,
                                                    "start_file": str(b["start_file"])})
    dsts = {d for v in per.values() for d, _ in v} | {b["dst"] for v in by_src.values() for b in v}
    return BackgroundPlan(per_src=dict(sorted(per.items())), flows=n, offered_mbps=total, scale=scale,
                          frame_bytes=frame_bytes, max_pps=max_pps, hop_pps=hops * scale, max_hop_pps=max_hop_pps,
                          sinks=sorted(dsts - set(per) - set(by_src)), probe_excess_mbps=excess, bursts=by_src,
                          frames=frames, floor_pairs=raised, floor_excess_mbps=floor_excess,
                          watch_pairs=len(watch), watch_pps=watch_pps)


class Background:
    """Runs a :class:`BackgroundPlan` on a network: :meth:`start`, then :meth:`stop`."""

    def __init__(self, net, plan: BackgroundPlan, out_dir: Path, python: str = sys.executable):
        self.net = net
        self.plan = plan
        self.out_dir = Path(out_dir)
        self.python = python
        self.procs: dict[str, subprocess.Popen] = {}
        self.results: dict[str, dict] = {}
        self.started_at: float | None = None
        #: ``(src, dst) -> {bin: packets}`` sent, and received (by send-time bin), after stop()
        self.sent_bins: dict[tuple[str, str], dict[int, int]] = {}
        self.recv_bins: dict[tuple[str, str], dict[int, int]] = {}
        #: event index -> what the senders sent of its injected traffic, after stop()
        self.burst_results: dict[int, list[dict]] = {}

    def start(self, timeout: float = 60.0) -> float:
        """Spawn every sender and sink, wait for their ready lines; returns seconds taken.

        ``timeout`` is generous: 11 senders start in ~1 s on this host but took over 20 s in the
        VM under software emulation (every process start there costs 20-26 ms, docs/vm.md).
        """
        t0 = time.monotonic()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        net = self.net
        senders = sorted(set(self.plan.per_src) | set(self.plan.bursts))
        for src in [*senders, *self.plan.sinks]:
            flows = self.plan.per_src.get(src, [])
            spec = {"iface": net.netns(src), "src_mac": net.host_mac(src), "src_ip": net.host_ip(src),
                    "frame": self.plan.frame_bytes, "port": SINK_PORT,
                    "flows": [{"dst": d, "dst_ip": net.host_ip(d), "dst_mac": net.host_mac(d),
                               "pps": self.plan.flow_pps(src, d, m), "frame": self.plan.frame(src, d)}
                              for d, m in flows],
                    "bursts": [{"event": b["event"], "dst": b["dst"], "dst_ip": net.host_ip(b["dst"]),
                                "dst_mac": net.host_mac(b["dst"]), "pps": b["mbps"] * 1e6 / 8 / self.plan.frame_bytes,
                                "start_file": b["start_file"]} for b in self.plan.bursts.get(src, [])]}
            path = self.out_dir / f"{net.netns(src)}.json"
            path.write_text(json.dumps(spec))
            # Run as a plain script: ``-m`` would import the harness package (~0.8 s, ~80 MB
            # per process); this file needs only the standard library.
            self.procs[src] = net.spawn(src, [self.python, "-I", __file__, "--spec", str(path)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for src, p in self.procs.items():
            left = timeout - (time.monotonic() - t0)
            ready, _, _ = select.select([p.stdout], [], [], max(left, 0.0))
            line = p.stdout.readline() if ready else b""
            if b'"ready"' not in line:
                from harness.errors import EmulationError

                raise EmulationError(f"background sender on {src} did not start within {timeout:.0f} s "
                                     f"(exit code {p.poll()})")
        self.started_at = time.time()
        return time.monotonic() - t0

    def stop(self, timeout: float = 3.0) -> dict:
        """Stop every process (SIGINT) and return what was achieved (totals and per source);
        the per-bin counts are left in :attr:`sent_bins` / :attr:`recv_bins`."""
        import os

        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        per_src = {}
        by_ip = {self.net.host_ip(r): r for r in self.net.routers}
        recv_other = 0
        receivers = 0
        for dst, p in self.procs.items():
            try:
                out, _ = p.communicate(timeout=timeout + GRACE_S)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            lines = (out or b"").decode(errors="replace").strip().splitlines()
            try:
                d = json.loads(lines[-1])
                if dst in self.plan.per_src or dst in self.plan.bursts:
                    per_src[dst] = {k: d[k] for k in ("sent_packets", "pps", "mbps", "target_pps",
                                                      "target_mbps", "elapsed_s", "errors")}
                    for to, bins in d["sent_bins"].items():
                        self.sent_bins[(dst, to)] = {int(k): n for k, n in bins.items()}
                for burst in d.get("bursts", []):
                    self.burst_results.setdefault(int(burst["event"]), []).append({**burst, "src": dst})
                for ip, bins in d["recv_bins"].items():
                    if ip in by_ip:
                        self.recv_bins[(by_ip[ip], dst)] = {int(b): n for b, n in bins.items()}
                recv_other += d["recv_other"]
                receivers += 1
            except (ValueError, KeyError, IndexError):
                per_src[dst] = {"error": "no result"}
        ok = [v for v in per_src.values() if "error" not in v]
        rec = {"achieved_mbps": round(sum(v["mbps"] for v in ok), 4),
               "achieved_pps": round(sum(v["pps"] for v in ok), 1),
               "achieved_share": (round(sum(v["pps"] for v in ok) / self.plan.pps, 4) if self.plan.pps else None),
               "senders_reporting": len(ok), "receivers_reporting": receivers,
               "received_packets": sum(sum(b.values()) for b in self.recv_bins.values()),
               "received_other_packets": recv_other, "per_source": per_src}
        self.procs = {}
        return rec


# ---------------------------------------------------------------------------- sender
def _mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def _csum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def build_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, sport: int, dport: int, frame: int) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``frame`` bytes (UDP checksum 0: none, valid for IPv4)."""
    ip_len = frame - 14
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 17, 0,
                      socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    udp = struct.pack("!HHHH", sport, dport, ip_len - 20, 0)
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x00" + hdr + udp + b"\x00" * (ip_len - 28)


def _window(path: str) -> tuple[float, float] | None:
    """An event's ``(start, end)`` epoch seconds from its start file, or None before it exists."""
    try:
        a, b = Path(path).read_text().split()[:2]
        return float(a), float(b)
    except (OSError, ValueError):
        return None


def _merge_bins(items) -> dict[str, dict[int, int]]:
    """``[(key, {bin: n}), ...]`` summed per key (a source may send several flows to one host)."""
    out: dict[str, dict[int, int]] = {}
    for key, bins in items:
        acc = out.setdefault(key, {})
        for b, n in bins.items():
            acc[b] = acc.get(b, 0) + n
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="harness.twin.emulation.background")
    ap.add_argument("--spec", required=True, help="JSON: iface, src_mac, src_ip, frame, port, flows")
    ap.add_argument("--max-s", type=float, default=MAX_S)
    args = ap.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    stop = {"now": False}

    def on_signal(signum, frame_):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # The receiver: counts marked packets per source address and send-time bin.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sink.bind(("0.0.0.0", int(spec.get("port", SINK_PORT))))
    sink.settimeout(0.1)
    recv: dict[tuple[str, int], int] = {}
    other = [0]
    done = threading.Event()

    def receive() -> None:
        buf = bytearray(12)
        while not done.is_set():
            try:
                n, addr = sink.recvfrom_into(buf, 12)
            except socket.timeout:
                continue
            except OSError:
                break
            if n == 12 and buf[:4] == MAGIC:
                key = (addr[0], int(struct.unpack_from("!d", buf, 4)[0] * BINS_PER_S))
                recv[key] = recv.get(key, 0) + 1
            else:
                other[0] += 1

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    flows = [f for f in spec["flows"] if f["pps"] > 0]
    n_bg = len(flows)       # flows [0, n_bg) are background; the rest injected bursts
    flows += [dict(b, burst=True) for b in spec.get("bursts", []) if b["pps"] > 0]
    frame = int(spec.get("frame", FRAME_BYTES))
    sizes = [int(f.get("frame", frame)) for f in flows]
    pkts = [bytearray(build_frame(spec["src_mac"], f["dst_mac"], spec["src_ip"], f["dst_ip"], 20000 + j,
                                  int(spec.get("port", SINK_PORT)), sizes[j])) for j, f in enumerate(flows)]
    marks = [BURST_MAGIC if f.get("burst") else MAGIC for f in flows]
    #: a burst's (start, end) epoch times, once its event's start file exists
    windows: dict[int, tuple[float, float]] = {}
    sent_bins: list[dict[int, int]] = [{} for _ in flows]
    sock = None
    if flows:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((spec["iface"], 0))
    target_pps = sum(f["pps"] for f in flows[:n_bg])
    target_bytes = sum(f["pps"] * sizes[j] for j, f in enumerate(flows[:n_bg]))   # per second
    print(json.dumps({"ready": True, "flows": n_bg, "bursts": len(flows) - n_bg,
                      "target_pps": round(target_pps, 1)}), flush=True)
    n = len(flows)
    sent = [0] * n
    errors = 0
    t0 = time.perf_counter()
    end = t0 + args.max_s
    periods = [1.0 / f["pps"] for f in flows]
    heap = [(t0 + (j + 0.5) / n * periods[j], j) for j in range(n)]
    heapq.heapify(heap)
    try:
        while not stop["now"]:
            now = time.perf_counter()
            if now >= end:
                break
            if not heap:
                time.sleep(0.2)
                continue
            t, j = heap[0]
            if t > now + 0.001:
                time.sleep(min(t - now, 0.05))
                continue
            horizon = now + 0.001
            burst = 0
            stamp = time.time()
            b = int(stamp * BINS_PER_S)
            while heap and heap[0][0] <= horizon and burst < 2000:
                t, j = heapq.heappop(heap)
                if j >= n_bg:    # an injected burst: only inside its event's window
                    w = windows.get(j) or _window(flows[j]["start_file"])
                    if w is None:            # not scheduled yet: look again in 50 ms
                        heapq.heappush(heap, (now + 0.05, j))
                        continue
                    windows[j] = w
                    if stamp < w[0]:         # due at the event's start (after this round:
                        # `stamp` is fixed within it, so an earlier time would spin here)
                        heapq.heappush(heap, (max(now + (w[0] - stamp), horizon + 1e-4), j))
                        continue
                    if stamp >= w[1]:
                        continue       # the event is over: this burst is done
                struct.pack_into("!4sd", pkts[j], 42, marks[j], stamp)   # after Ether+IPv4+UDP headers
                sent_bins[j][b] = sent_bins[j].get(b, 0) + 1    # offered, sent or not
                try:
                    sock.send(pkts[j])
                    sent[j] += 1
                except OSError:      # e.g. the host's link is down (router failure)
                    errors += 1
                heapq.heappush(heap, (t + periods[j], j))
                burst += 1
    finally:
        elapsed = max(time.perf_counter() - t0, 1e-9)
        if sock is not None:
            sock.close()
        time.sleep(GRACE_S)     # packets still in flight to this host
        done.set()
        receiver.join(timeout=1.0)
        per_src_bins: dict[str, dict[int, int]] = {}
        for (ip, b), n_ in sorted(recv.items()):
            per_src_bins.setdefault(ip, {})[b] = n_
        total = sum(sent[:n_bg])
        total_bytes = sum(sent[j] * sizes[j] for j in range(n_bg))
        bursts_out = []
        for j in range(n_bg, len(flows)):
            w = windows.get(j)
            span = (w[1] - w[0]) if w else 0.0
            bursts_out.append({"event": flows[j]["event"], "dst": flows[j]["dst"], "sent_packets": sent[j],
                               "target_mbps": round(flows[j]["pps"] * frame * 8 / 1e6, 6),
                               "achieved_mbps": round(sent[j] * frame * 8 / span / 1e6, 6) if span > 0 else None,
                               "window_s": round(span, 4)})
        print(json.dumps({"sent_packets": total, "sent_bytes": total_bytes, "elapsed_s": round(elapsed, 4),
                          "pps": round(total / elapsed, 1), "mbps": round(total_bytes * 8 / elapsed / 1e6, 4),
                          "target_pps": round(target_pps, 1),
                          "target_mbps": round(target_bytes * 8 / 1e6, 4), "errors": errors,
                          "per_dst": {f["dst"]: sent[j] for j, f in enumerate(flows[:n_bg])},
                          "sent_bins": _merge_bins((f["dst"], sent_bins[j]) for j, f in enumerate(flows[:n_bg])),
                          "recv_bins": per_src_bins, "recv_other": other[0], "bursts": bursts_out}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
