"""Event injection and mitigation actions on a running :class:`EmulatedNetwork`.

Each event type has a *prepare* step (slow start-up work done before the measurement
begins: flood processes are spawned with a start time, iperf3 servers listen) and an
*inject* step run at the event's scaled wall-clock time.  Both return plain records for
the timeline.  Target names reach commands only as list arguments, and only after the
scenario validator accepted them.

Semantics: each event's :class:`~harness.scenario.events.base.Effect` (from its type; the
flow twin reads the same record), realised kind by kind, each action paired with its rollback:

``links_down``
    ``set_link(u, v, up=False)``: both veth ends down (rollback: up again).
``routers_down``
    ``set_router(r, up=False)``: every port of the router's bridge, host port included.
``router_capacity``
    the router's forwarding capacity (the controller's meter on everything its switch
    receives, at the KG ``cpu`` capacity × ``bw_scale``) set to the factor × that; the load
    is the traffic already crossing it (the background replay of the KG's traffic matrix).
``link_loss_pct`` / ``link_capacity``
    ``add_loss`` (percent on each crossing, nftables numgen here) and ``shape_link`` to the
    factor × the link's rate when the factor is < 1 (rollback: ``restore_link``).
``traffic``
    With background traffic on (``carried``), surges and unspoofed UDP floods
    (:func:`carried_traffic`) are sent by the background senders themselves: every source's
    own sender adds its demand × ``bw_scale`` (scaled like the background) from the event's
    start to its end, in full-size frames marked apart from the background — every source
    the event names, no cap.  Otherwise, and for SYN and spoofed floods:
    *surge* demands: iperf3 UDP from each source's host at the demand × ``bw_scale``, at
    most ``max_senders`` senders (largest first; the rest are listed as dropped).
    *flood* demands: their total × ``bw_scale`` from at most ``max_senders`` sources
    (nearest by hop count, then name; the total is split evenly over the senders used).
    Each sender is :mod:`harness.twin.emulation.flood` (Scapy-crafted UDP or SYN frames,
    spoofed sources if asked) inside the source's namespace; a UDP sender whose packet
    rate would exceed ``flood_max_pps`` is replaced by iperf3 UDP; a SYN sender is capped
    at ``flood_max_pps``.  The generator used and achieved rates are recorded.
``misroutes``
    ``client.blackhole(r, d)`` / ``client.wrong_next_hop(r, d, next_hop)`` for every
    destination (none given = every other router); the ids are kept for ``rollback``.

:data:`SUPPORTED_EFFECTS` lists these; the twin refuses to load when a registered event type
needs another kind.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import networkx as nx

from harness.errors import ConfigError, EmulationError
from harness.kg.model import KnowledgeGraph
from harness.scenario import types as event_types
from harness.scenario.events.base import EFFECT_KINDS, Effect
from harness.scenario.model import Event
from harness.twin.emulation.network import MAX_RATE_MBPS, MIN_RATE_MBPS, EmulatedNetwork
from harness.twin.emulation.probes import _wait_listening, iperf_udp_argv

#: The effect kinds this module realises (all of them).
SUPPORTED_EFFECTS = EFFECT_KINDS
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
                 flood_max_pps: float, python: str = sys.executable, carried: bool = False):
        #: ``carried``: the background senders send the :func:`carried_traffic` of every event
        #: (from every source, no cap); only SYN and spoofed floods get their own senders
        self.carried = carried
        self.net = net
        self.kg = kg
        self.bw_scale = bw_scale
        self.max_senders = max_senders
        self.flood_max_pps = flood_max_pps
        self.python = python
        self.generators: dict[int, list[Generator]] = {}
        self.misconfig_ids: dict[str, list[int]] = {}
        self.effects: dict[int, Effect] = {}
        self.rollbacks: dict[int, list[Callable[[], object]]] = {}
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
        eff = self.effects[i] = event_types.effect_of(self.kg, e, i)
        for r in eff.router_capacity:
            if r not in self.net.router_capacity:
                raise EmulationError(f"{e.event_type} on {r}: the network was built without router "
                                     f"forwarding capacities (EmulatedNetwork(router_capacity_mbps=...))")
        carried = set(carried_traffic(eff)) if self.carried else set()
        surges = [t for t in eff.traffic if t.kind == "surge" and t.src != t.dst and t not in carried]
        floods = [t for t in eff.traffic if t.kind == "flood" and t not in carried]
        self.generators[i] = self._surge(i, e, surges) + self._floods(i, e, floods)

    def _surge(self, i: int, e: Event, demands: list) -> list[Generator]:
        """iperf3 UDP senders for the largest ``max_senders`` surging demands (the rest noted)."""
        demands = sorted(demands, key=lambda t: (-t.mbps, t.src))
        used, dropped = demands[: self.max_senders], demands[self.max_senders:]
        if dropped:
            self.notes.append(f"event {i} {e.event_type}: {len(demands)} surging flows, only the "
                              f"{len(used)} largest sent (max_senders={self.max_senders}); "
                              f"{sum(t.mbps for t in dropped) * self.bw_scale:.4g} of "
                              f"{sum(t.mbps for t in demands) * self.bw_scale:.4g} Mbit/s not sent")
        return [self._iperf(t.src, t.dst, t.mbps * self.bw_scale) for t in used]

    def _floods(self, i: int, e: Event, demands: list) -> list[Generator]:
        """Flood senders from at most ``max_senders`` sources (nearest by hops), the total kept."""
        if not demands:
            return []
        total = sum(t.mbps for t in demands) * self.bw_scale
        chosen = sorted(demands, key=lambda t: (self._hop(t.src, t.dst), t.src))[: self.max_senders]
        if len(chosen) < len(demands):
            self.notes.append(f"event {i} {e.event_type}: {len(demands)} sources, {len(chosen)} senders used "
                              f"(nearest by hops, max_senders={self.max_senders}); total rate kept")
        each = total / len(chosen)
        return [self._flood(i, t, each) for t in chosen]

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

    def _flood(self, i: int, t, mbps: float) -> Generator:
        src, dst, proto = t.src, t.dst, t.protocol
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
        if t.spoofed:
            argv.append("--spoof")
        g = Generator("scapy", src, dst, mbps, argv=argv, note=note)
        g.proc = self.net.spawn(src, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return g

    # ------------------------------------------------------------------ inject / undo
    def inject(self, i: int, e: Event) -> dict:
        """Inject event ``i`` now (its :class:`Effect`); returns what was done (for the timeline).

        Every action is paired with its rollback; :meth:`undo` runs an event's rollbacks in
        reverse order, and :meth:`rollback_all` whatever is still in place."""
        net, kg, eff = self.net, self.kg, self.effects[i]
        undo: list[Callable[[], object]] = []
        self.rollbacks[i] = undo
        done: list[str] = []
        out: dict = {}
        try:
            if eff.links_down:
                for l in sorted(eff.links_down):
                    u, v = kg.link_ends(l)
                    net.set_link(u, v, up=False)
                    undo.append(functools.partial(net.set_link, u, v, up=True))
                done.append(f"link{'s' if len(eff.links_down) > 1 else ''} {', '.join(sorted(eff.links_down))} "
                            "down (both ends)")
            if eff.routers_down:
                for r in sorted(eff.routers_down):
                    net.set_router(r, up=False)
                    undo.append(functools.partial(net.set_router, r, up=True))
                done.append(f"router{'s' if len(eff.routers_down) > 1 else ''} {', '.join(sorted(eff.routers_down))} "
                            "down (all ports)")
            for r, f in sorted(eff.router_capacity.items()):
                mbps = round(max(net.router_capacity[r] * f, 0.008), 6)
                net.client.router_capacity(r, mbps)
                undo.append(functools.partial(net.client.router_capacity, r))
                done.append(f"forwarding capacity of {r} metered at {mbps:g} Mbit/s ({f:g} x {net.router_capacity[r]:g})")
                out["capacity_mbps"] = mbps
            for l in sorted(set(eff.link_loss_pct) | set(eff.link_capacity)):
                u, v = kg.link_ends(l)
                what = []
                pct, factor = eff.link_loss_pct.get(l), eff.link_capacity.get(l)
                if pct:
                    net.add_loss(u, v, pct)
                    what.append(f"{pct:g} % loss per crossing ({net.fidelity.get('loss')})")
                if factor is not None and factor < 1:
                    rate = _clamp(self.net.rate_mbps(l) * factor)
                    net.shape_link(u, v, rate)
                    what.append(f"shaped to {rate:g} Mbit/s")
                    out["shaped_mbps"] = rate
                if what:
                    undo.append(functools.partial(net.restore_link, u, v))
                done.append(f"link {l}: " + (", ".join(what) or "nothing to do"))
            if eff.traffic:
                gens = self.generators.get(i, [])
                self._start_iperf_clients(gens)   # surges and flood fallbacks; floods start on their own
                kinds = "+".join(sorted({g.kind for g in gens})) or "no sender"
                flood = next((t for t in eff.traffic if t.kind == "flood"), None)
                what = (f"{flood.protocol} flood" + (" with spoofed sources" if flood.spoofed else "")) if flood \
                    else "UDP surge"
                done.append(f"{what} ({kinds}) at {e.target} from {', '.join(g.src for g in gens) or 'nobody'}")
                out["target_mbps"] = round(sum(g.target_mbps for g in gens), 6)
            for m in eff.misroutes:
                dsts = sorted(m.destinations) if m.destinations else [r for r in kg.routers if r != m.router]
                ids = self.misconfig_ids.setdefault(m.router, [])
                for d in dsts:
                    if d != m.router:
                        ids.append(net.client.blackhole(m.router, d) if m.next_hop is None
                                   else net.client.wrong_next_hop(m.router, d, m.next_hop))
                undo.append(functools.partial(self._rollback_misroutes, m.router))
                done.append(f"{'blackhole' if m.next_hop is None else 'wrong next hop ' + m.next_hop} on "
                            f"{m.router} for {len(dsts)} destinations")
        except BaseException:
            self.undo(i, e)    # a half-injected event is rolled back at once
            raise
        return {"done": "; ".join(done) or "nothing to do", **out}

    def _rollback_misroutes(self, router: str) -> int:
        ids = self.misconfig_ids.pop(router, [])
        for mid in ids:
            self.net.client.rollback(mid)
        return len(ids)

    def undo(self, i: int, e: Event) -> dict:
        """End event ``i``: its senders stop and its rollbacks run in reverse order."""
        for g in self.generators.get(i, []):
            for proc in (g.proc, g.server):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(2)
        for step in reversed(self.rollbacks.pop(i, [])):
            step()
        return {"done": f"{e.event_type} on {e.target} ended"}

    def rollback_all(self) -> None:
        """Roll back every event still in place, latest first (on success, error and Ctrl-C).

        Every rollback is tried; the first error is raised after all were attempted."""
        first: BaseException | None = None
        for i in sorted(self.rollbacks, reverse=True):
            for step in reversed(self.rollbacks.pop(i)):
                try:
                    step()
                except BaseException as exc:   # noqa: BLE001 — keep rolling back, raise afterwards
                    first = first or exc
        if first is not None:
            raise first

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
            rate = _clamp(self.net.rate_mbps(lid) + float(action["mbps"]) * self.bw_scale)
            self.net.shape_link(u, v, rate)
            return {"done": f"link {lid} re-shaped to {rate:g} Mbit/s"}
        if kind == "rollback":
            n = self._rollback_misroutes(action["router"])
            return {"done": f"rolled back {n} misconfigurations on {action['router']}"}
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


def carried_traffic(eff: Effect) -> list:
    """The part of an effect's traffic the background senders can send themselves (every
    source at its own rate, full-size UDP frames, within the packet budget): surges and
    unspoofed UDP floods. SYN and spoofed floods need crafted packets (Scapy senders)."""
    return [t for t in eff.traffic if t.src != t.dst and (
        t.kind == "surge" or (t.kind == "flood" and t.protocol == "udp" and not t.spoofed))]


def wait_until(t: float) -> None:
    """Sleep until epoch time ``t``."""
    while True:
        left = t - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


__all__ = ["Injector", "Generator", "carried_traffic", "wait_until"]
