"""A paced packet flood, run inside a host namespace by the emulation twin (DDoS injection).

``python -m harness.twin.emulation.flood --iface IF --src-mac M --dst-mac M --src-ip A
--dst-ip B --proto udp|syn [--spoof] --mbps X --size N (--duration S [--start-at EPOCH] | --start-file F)``

It is started ahead of time (Scapy's import takes about a second), prints a ``{"ready": true}``
line once its packets and socket are ready, and waits for ``--start-at`` (or for
``--start-file`` to name its start and end times) before sending.

Packets are crafted once with Scapy (UDP, or TCP SYN; with ``--spoof`` a pool of 256
packets with random source addresses in 172.16.0.0/12, outside the emulated 10/8, so
replies go nowhere), serialised with ``raw()`` and sent through one reused
``conf.L2socket``: Ether addresses are set explicitly, so no per-packet route or ARP
lookup happens (that drops Scapy to ~230 pps, see NOTES.md).  Sending is paced in
1 ms batches towards ``mbps``; when the sender cannot keep up it sends as fast as it can.
On exit (duration over, SIGINT or SIGTERM) it prints one JSON line:
``{"sent_packets", "sent_bytes", "elapsed_s", "pps", "mbps", "target_pps", "errors"}``.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time


def build_packets(args) -> list[bytes]:
    from scapy.all import IP, TCP, UDP, Ether, Raw, raw

    rng = random.Random(args.seed)
    srcs = ([f"172.{16 + rng.randrange(16)}.{rng.randrange(256)}.{1 + rng.randrange(254)}" for _ in range(256)]
            if args.spoof else [args.src_ip])
    out = []
    for i, src in enumerate(srcs):
        ip = IP(src=src, dst=args.dst_ip, ttl=64)
        sport = 1024 + (i * 7919 + rng.randrange(60000)) % 60000
        if args.proto == "syn":
            l4 = TCP(sport=sport, dport=80, flags="S", seq=rng.randrange(1 << 32))
            pkt = Ether(src=args.src_mac, dst=args.dst_mac) / ip / l4
        else:
            l4 = UDP(sport=sport, dport=9)
            head = Ether(src=args.src_mac, dst=args.dst_mac) / ip / l4
            pad = max(0, args.size - len(head))
            pkt = head / Raw(b"\x00" * pad)
        out.append(raw(pkt))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="harness.twin.emulation.flood")
    ap.add_argument("--iface", required=True)
    ap.add_argument("--src-mac", required=True)
    ap.add_argument("--dst-mac", required=True)
    ap.add_argument("--src-ip", required=True)
    ap.add_argument("--dst-ip", required=True)
    ap.add_argument("--proto", choices=("udp", "syn"), default="udp")
    ap.add_argument("--spoof", action="store_true")
    ap.add_argument("--mbps", type=float, required=True)
    ap.add_argument("--size", type=int, default=1000, help="frame size of UDP packets (bytes)")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--start-file", default=None,
                    help="wait for this file to hold 'START_EPOCH END_EPOCH', then send from START to END")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start-at", type=float, default=0.0, help="epoch time to start sending (after start-up)")
    args = ap.parse_args(argv)

    from scapy.config import conf

    pkts = build_packets(args)
    frame = len(pkts[0])
    target_pps = args.mbps * 1e6 / 8 / frame
    sock = conf.L2socket(iface=args.iface)
    send = sock.outs.send if hasattr(sock, "outs") else sock.send
    stop = {"now": False}

    def on_signal(signum, frame_):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(json.dumps({"ready": True, "frame_bytes": frame, "target_pps": round(target_pps, 1)}), flush=True)
    start_at, duration = args.start_at, args.duration
    if args.start_file:
        while not stop["now"]:
            try:
                a, b = open(args.start_file).read().split()
                start_at, duration = float(a), float(b) - float(a)
                break
            except (OSError, ValueError):
                time.sleep(0.002)
    if duration is None:
        ap.error("--duration or --start-file is required")
    while not stop["now"] and time.time() < start_at:
        time.sleep(min(0.005, max(0.0, start_at - time.time())))
    sent = errors = nbytes = 0
    n = len(pkts)
    t0 = time.perf_counter()
    end = t0 + duration
    try:
        while not stop["now"]:
            now = time.perf_counter()
            if now >= end:
                break
            due = int((now - t0) * target_pps) + 1
            burst = min(due - sent, 2000)
            if burst <= 0:
                time.sleep(min(0.001, end - now))
                continue
            for _ in range(burst):
                p = pkts[sent % n]
                try:
                    send(p)
                    nbytes += len(p)
                except OSError:
                    errors += 1
                sent += 1
    finally:
        elapsed = max(time.perf_counter() - t0, 1e-9)
        sock.close()
        ok = sent - errors
        print(json.dumps({"sent_packets": ok, "sent_bytes": nbytes, "elapsed_s": round(elapsed, 4),
                          "pps": round(ok / elapsed, 1), "mbps": round(nbytes * 8 / elapsed / 1e6, 4),
                          "target_pps": round(target_pps, 1), "frame_bytes": frame, "errors": errors}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
