"""Continuous probes between host pairs and iperf3 background traffic.

:class:`Probes` runs one ``ping -D -O -i 0.04`` (nominal 25 Hz, >= 20 Hz measured) per monitored ordered pair inside
the source host's namespace, writes its output to ``run_dir/probes/`` and parses it on
:meth:`Probes.stop` once, into :class:`~harness.twin.emulation.measure.Probe` records (the
one parser, :func:`~harness.twin.emulation.measure.parse_ping`): requests dated by send
time, RTT samples, loss %, reply gaps.

:func:`start_udp_traffic` / :func:`iperf_udp` drive iperf3 UDP between hosts
(argument lists, never shell strings).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from harness.errors import EmulationError
from harness.twin.emulation.measure import Probe, parse_ping

DEFAULT_INTERVAL_S = 0.04  # nominal 25 Hz: ping slips to ~18-20 Hz at 0.05 s on a loaded 2-vCPU machine


class Probes:
    """Continuous pings between ``pairs`` of routers' hosts of a running network.

    Use as a context manager, or ``start()`` then ``stop() -> {(src, dst): Probe}``.
    """

    def __init__(self, net, pairs, *, interval_s: float = DEFAULT_INTERVAL_S, out_dir: str | Path | None = None):
        if interval_s < 0.002:
            raise EmulationError("probe interval below 2 ms is not possible with ping")
        self.net = net
        self.pairs = [tuple(p) for p in pairs]
        for s, d in self.pairs:
            net.host_ip(s), net.host_ip(d)  # validates names
        self.interval_s = interval_s
        self.out_dir = Path(out_dir or Path(net.run_dir) / "probes")
        self._procs = {}
        self.results: dict[tuple[str, str], Probe] = {}
        self.t_start = self.t_stop = 0.0

    def start(self) -> "Probes":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.t_start = time.time()
        for s, d in self.pairs:
            path = self.out_dir / f"{s}__{d}.txt"
            fh = open(path, "w")
            argv = ["ping", "-n", "-D", "-O", "-i", f"{self.interval_s:g}", "-W", "1", self.net.host_ip(d)]
            self._procs[(s, d)] = (self.net.spawn(s, argv, stdout=fh, stderr=subprocess.STDOUT), fh, path)
        return self

    def stop(self) -> dict[tuple[str, str], Probe]:
        self.t_stop = time.time()
        for p, _fh, _path in self._procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for key, (p, fh, path) in self._procs.items():
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            fh.close()
            self.results[key] = parse_ping(path.read_text(errors="replace"), key[0], key[1],
                                           self.interval_s, self.t_start, self.t_stop)
        self._procs = {}
        return self.results

    def rates_hz(self) -> dict[tuple[str, str], float]:
        """Per pair, the echo-request rate its probe has achieved so far (from its output,
        while it runs): ping slips below its nominal rate on a loaded machine."""
        return {key: parse_ping(path.read_text(errors="replace"), key[0], key[1], self.interval_s).rate_hz
                for key, (_p, _fh, path) in self._procs.items()}

    def __enter__(self) -> "Probes":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._procs:
            self.stop()


def iperf_udp_argv(server_ip: str, mbps: float, duration_s: float, *, port: int = 5201,
                   length: int = 1200) -> list[str]:
    """The iperf3 UDP client argument list (JSON output)."""
    return ["iperf3", "-c", server_ip, "-u", "-b", f"{mbps:g}M", "-t", f"{duration_s:g}", "-l", str(length),
            "-p", str(port), "-J"]


def start_udp_traffic(net, src: str, dst: str, mbps: float, duration_s: float, *, port: int = 5201,
                      length: int = 1200):
    """Start iperf3 UDP from ``src``'s host to ``dst``'s host in the background.

    Returns ``(server, client)`` Popen objects; the network's ``restore_all``/teardown
    ends them.  ``client.stdout`` carries iperf3's JSON once it exits.
    """
    server = net.spawn(dst, ["iperf3", "-s", "-1", "-p", str(port)])
    _wait_listening(net, dst, port)
    client = net.spawn(src, iperf_udp_argv(net.host_ip(dst), mbps, duration_s, port=port, length=length),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return server, client


def iperf_udp(net, src: str, dst: str, mbps: float, duration_s: float = 3.0, *, port: int = 5201,
              length: int = 1200) -> dict:
    """Run iperf3 UDP to completion; returns ``{"sent_mbps", "received_mbps", "loss_pct", "jitter_ms"}``."""
    server, client = start_udp_traffic(net, src, dst, mbps, duration_s, port=port, length=length)
    try:
        out, err = client.communicate(timeout=duration_s + 15)
    except subprocess.TimeoutExpired:
        client.kill()
        raise EmulationError(f"iperf3 {src}->{dst} did not finish") from None
    try:
        data = json.loads(out)
    except ValueError:
        raise EmulationError(f"iperf3 {src}->{dst} gave no result: {err.decode(errors='replace').strip()}") from None
    if "error" in data:
        raise EmulationError(f"iperf3 {src}->{dst}: {data['error']}")
    s = data["end"]["sum"]
    sent = s["bits_per_second"] / 1e6
    loss = float(s.get("lost_percent") or 0.0)
    return {"sent_mbps": sent, "received_mbps": sent * (1 - loss / 100), "loss_pct": loss,
            "jitter_ms": s.get("jitter_ms")}


def _wait_listening(net, router: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = net.host_run(router, ["ss", "-Hltn", f"sport = :{port}"])
        if r.stdout.strip():
            return
        time.sleep(0.05)
    raise EmulationError(f"iperf3 server on {router} did not start listening on port {port}")
