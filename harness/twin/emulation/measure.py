"""Turn probe output and port counters into the KPI record's figures (pure functions).

Probe files are ``ping -D -O`` output (see :mod:`harness.twin.emulation.probes`).  Every
echo request is dated by its *send* time: a reply's timestamp minus its RTT, or a
"no answer yet" line's timestamp minus one interval (ping prints it when it sends the
next request).  A window ``[a, b)`` then holds the requests sent in it, answered or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from harness.twin.emulation.probes import _NOANSWER, _REPLY  # one ping-output grammar for both parsers


@dataclass
class Probe:
    """One monitored pair: per echo request ``(send_time, answered, rtt_ms)``, and reply times."""

    src: str
    dst: str
    interval_s: float
    sends: list[tuple[float, bool, float | None]] = field(default_factory=list)
    reply_times: list[float] = field(default_factory=list)

    def window(self, a: float, b: float) -> tuple[int, int, list[float]]:
        """``(sent, answered, rtts_ms)`` of requests sent in ``[a, b)``."""
        sent = ok = 0
        rtts = []
        for t, answered, rtt in self.sends:
            if a <= t < b:
                sent += 1
                if answered:
                    ok += 1
                    rtts.append(rtt)
        return sent, ok, rtts

    def disruption_s(self, after: float, until: float) -> float | None:
        """The outage that follows ``after``: from ``after`` (or the last reply before the
        first request lost after it, if later) to the first reply after that lost request,
        minus one probe interval (time without delivery); 0.0 if no request sent after
        ``after`` was lost; ``None`` if replies had not resumed after the *last* lost request
        by ``until`` (the pair is cut off, not rerouted).  Later, separate gaps (congestion,
        policing) are loss, not part of the reroute."""
        lost = [t for t, ok, _ in self.sends if after - self.interval_s <= t < until and not ok]
        if not lost:
            return 0.0
        first_lost, last_lost = min(lost), max(lost)
        if not any(last_lost < r <= until for r in self.reply_times):
            return None
        before = [r for r in self.reply_times if r <= first_lost]
        start = max(after, before[-1]) if before else after
        resumed = min(r for r in self.reply_times if r > first_lost)
        return max(0.0, resumed - start - self.interval_s)


def parse_probe(text: str, src: str, dst: str, interval_s: float) -> Probe:
    by_seq: dict[int, tuple[float, bool, float | None]] = {}
    replies = []
    for line in text.splitlines():
        m = _REPLY.match(line)
        if m:
            ts, seq, rtt = float(m.group(1)), int(m.group(2)), float(m.group(3))
            by_seq[seq] = (ts - rtt / 1000.0, True, rtt)
            replies.append(ts)
            continue
        m = _NOANSWER.match(line)
        if m:
            ts, seq = float(m.group(1)), int(m.group(2))
            if seq not in by_seq:
                by_seq[seq] = (ts - interval_s, False, None)
    return Probe(src, dst, interval_s, sorted(by_seq.values()), sorted(replies))


def port_utilisation(before: dict, after: dict, rates: dict[str, float], skip: set[str]) -> dict[str, dict]:
    """Per link: utilisation of its (current) shaped rate from two ``/ports`` snapshots.

    ``before``/``after`` map ``(router, port) -> {t, tx_bytes, link}``; a link's figure is
    its busier direction (what its two end ports transmitted).  Links in ``skip`` (down)
    and ports whose counters were not refreshed in between are left out.
    """
    out: dict[str, dict] = {}
    for key, b in after.items():
        lid = b.get("link")
        a = before.get(key)
        if not lid or lid in skip or a is None or b["t"] <= a["t"]:
            continue
        mbps = max(0.0, (b["tx_bytes"] - a["tx_bytes"]) * 8 / (b["t"] - a["t"]) / 1e6)
        rate = rates[lid]
        cur = out.get(lid)
        if cur is None or mbps > cur["mbps"]:
            out[lid] = {"mbps": mbps, "rate_mbps": rate, "util": mbps / rate if rate else 0.0}
    return out


def traffic_loss(sent_bins: dict, recv_bins: dict, a: float, b: float,
                 bins_per_s: int) -> dict[tuple[str, str], tuple[int, int]]:
    """Per ``(src, dst)``: ``(offered, received)`` background packets *sent* in ``[a, b)``.

    ``sent_bins`` / ``recv_bins`` map ``(src, dst) -> {bin: packets}`` with bin
    ``k`` = send times ``[k, k + 1) / bins_per_s`` (received packets are binned by the send
    time they carry, so delay does not move them out of their window).  Only bins wholly
    inside ``[a, b)`` count (a bin straddling an injection would mix before and after).
    Received is capped at offered per pair.
    """
    lo, hi = math.ceil(a * bins_per_s), math.floor(b * bins_per_s)
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for pair, bins in sent_bins.items():
        sent = sum(n for k, n in bins.items() if lo <= k < hi)
        if not sent:
            continue
        got = sum(n for k, n in recv_bins.get(pair, {}).items() if lo <= k < hi)
        out[pair] = (sent, min(got, sent))
    return out


def latency_stats(per_pair_mean_ms: list[float]) -> tuple[float | None, float | None]:
    if not per_pair_mean_ms:
        return None, None
    a = np.asarray(per_pair_mean_ms)
    return round(float(a.mean()), 6), round(float(np.percentile(a, 95)), 6)
