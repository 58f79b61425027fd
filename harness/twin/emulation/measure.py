"""Turn probe output and port counters into the KPI record's figures (pure functions).

Probe files are ``ping -D -O`` output (see :mod:`harness.twin.emulation.probes`).  Every
echo request is dated by its *send* time: a reply's timestamp minus its RTT, or a
"no answer yet" line's timestamp minus one interval (ping prints it when it sends the
next request).  A window ``[a, b)`` then holds the requests sent in it, answered or not.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np



#: ``ping -D -O`` lines: a reply, a "no answer yet" (printed when the next request goes out),
#: and the final count.  The one grammar of probe output in ani.
_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [\d.]+: icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms")
_NOANSWER = re.compile(r"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)")
_SENT = re.compile(r"^(\d+) packets transmitted, (\d+) received")


#: After a trigger with no probe lost, the span (s) whose reply gaps size the interruption.
NO_LOSS_SPAN_S = 0.5


@dataclass
class Probe:
    """What one probe (one monitored ordered pair) saw.

    ``sends``: per echo request ``(send_time, answered, rtt_ms)``; ``replies``: ``(epoch_time,
    seq, rtt_ms)``; ``sent``: requests ping sent; ``t_start``/``t_stop``: when the probe ran.
    """

    src: str
    dst: str
    interval_s: float
    sends: list[tuple[float, bool, float | None]] = field(default_factory=list)
    replies: list[tuple[float, int, float]] = field(default_factory=list)
    sent: int = 0
    t_start: float = 0.0
    t_stop: float = 0.0
    #: First and last timestamps ping itself printed (its own clock of the probe).
    t_first: float | None = None
    t_last: float | None = None
    #: Sequence numbers between ``t_first`` and ``t_last`` (for :attr:`rate_hz`).
    seq_span: int = 0

    @property
    def reply_times(self) -> list[float]:
        return [r[0] for r in self.replies]

    @property
    def received(self) -> int:
        return len(self.replies)

    @property
    def rtts_ms(self) -> list[float]:
        return [r[2] for r in self.replies]

    @property
    def loss_pct(self) -> float:
        return 100.0 * (1 - self.received / self.sent) if self.sent else 100.0

    @property
    def rate_hz(self) -> float:
        """Echo requests per second while ping ran (from ping's own timestamps)."""
        if self.seq_span and self.t_last > self.t_first:
            return self.seq_span / (self.t_last - self.t_first)
        span = self.t_stop - self.t_start
        return self.sent / span if span > 0 else 0.0

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
        minus one probe interval (time without delivery).  If no request sent after ``after``
        was lost, the interruption was shorter than one interval: its size is then the
        longest gap between replies in the :data:`NO_LOSS_SPAN_S` after ``after`` minus one
        interval (0.0 for evenly spaced replies), so a pair rerouted without loss counts with
        its real, small value.  ``None`` if replies had not resumed after the *last* lost
        request by ``until`` (the pair is cut off, not rerouted).  Later, separate gaps
        (congestion, policing) are loss, not part of the reroute."""
        lost = [t for t, ok, _ in self.sends if after - self.interval_s <= t < until and not ok]
        if not lost:
            rt = [r for r in self.reply_times if after - self.interval_s <= r <= min(until, after + NO_LOSS_SPAN_S)]
            return max(0.0, max((b - a for a, b in zip(rt, rt[1:])), default=self.interval_s) - self.interval_s)
        reply_times = self.reply_times
        first_lost, last_lost = min(lost), max(lost)
        if not any(last_lost < r <= until for r in reply_times):
            return None
        before = [r for r in reply_times if r <= first_lost]
        start = max(after, before[-1]) if before else after
        resumed = min(r for r in reply_times if r > first_lost)
        return max(0.0, resumed - start - self.interval_s)

    def longest_gap(self, after: float | None = None, until: float | None = None) -> float:
        """Longest time (s) without replies, over gaps that end after ``after``.

        The edges count: from ``t_start`` to the first reply and from the last reply to
        ``t_stop`` (a pair that never recovers has a gap up to the end of the probe).
        Subtract :attr:`interval_s` for the time traffic was really lost.
        """
        times = [self.t_start] + self.reply_times + [until or self.t_stop]
        best = 0.0
        for a, b in zip(times, times[1:]):
            if after is not None and b < after:
                continue
            best = max(best, b - max(a, self.t_start))
        return best

    def summary(self, after: float | None = None) -> dict:
        rtts = sorted(self.rtts_ms)
        return {"src": self.src, "dst": self.dst, "sent": self.sent, "received": self.received,
                "loss_pct": round(self.loss_pct, 3), "rate_hz": round(self.rate_hz, 2),
                "rtt_ms_mean": round(sum(rtts) / len(rtts), 3) if rtts else None,
                "rtt_ms_p95": rtts[int(0.95 * (len(rtts) - 1))] if rtts else None,
                "longest_gap_s": round(self.longest_gap(after), 4)}


def parse_ping(text: str, src: str, dst: str, interval_s: float, t_start: float = 0.0,
               t_stop: float = 0.0) -> Probe:
    """Parse ``ping -D -O`` output into a :class:`Probe` (one pass).  With ``t_stop`` (when the
    probe was stopped), unanswered requests that may still have been in flight then are left out
    of :attr:`Probe.sends`: a reply 1 ms after the stop would have made them answered."""
    by_seq: dict[int, tuple[float, bool, float | None]] = {}
    replies, max_seq, sent = [], 0, None
    first = last = None   # (timestamp, seq) of the first and last dated lines, to date the rate
    for line in text.splitlines():
        m = _REPLY.match(line)
        if m:
            ts, seq, rtt = float(m.group(1)), int(m.group(2)), float(m.group(3))
            by_seq[seq] = (ts - rtt / 1000.0, True, rtt)
            replies.append((ts, seq, rtt))
        else:
            m = _NOANSWER.match(line)
            if m:
                ts, seq = float(m.group(1)), int(m.group(2))
                if seq not in by_seq:
                    by_seq[seq] = (ts - interval_s, False, None)
            else:
                m = _SENT.match(line)
                if m:
                    sent = int(m.group(1))
                continue
        first = first or (ts, seq)
        last = (ts, seq)
        max_seq = max(max_seq, seq)
    replies.sort()
    sends = sorted(by_seq.values())
    if t_stop and replies:
        # ping stops on SIGINT without waiting for replies still on their way: a request sent
        # within the slowest RTT this probe saw (plus one interval, the "no answer yet" line's
        # dating) before the stop was in flight, not lost -- it is left out, neither sent nor lost
        horizon = t_stop - max(r[2] for r in replies) / 1000.0 - interval_s
        sends = [x for x in sends if x[1] or x[0] < horizon]
    probe = Probe(src, dst, interval_s, sends, replies,
                  max(max_seq if sent is None else sent, len(replies)), t_start, t_stop)
    if first and last and last[1] > first[1]:
        # Rate from sequence numbers over ping's own clock (reply/report times of two seqs).
        probe.t_first, probe.t_last, probe.seq_span = first[0], last[0], last[1] - first[1]
    return probe


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
