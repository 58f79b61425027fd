"""Cascades on the emulation: the shared tripping rule (:mod:`harness.twin.cascade`) applied to
*measured* loads, and the induced failures injected on the live network.

Loads come from the link shapers' counters (:meth:`EmulatedNetwork.link_queue_counters`,
read directly, so a window can be short and its edges exact):

* a link's load is its busier direction's *offered* rate: bytes its shaper sent plus the
  packets it dropped (queue overflow) at the direction's mean frame size, over the window;
* a router's load is what it received from its neighbouring routers (transit and delivered
  traffic): the bytes the shapers of the directions towards it sent.

Capacities are the current ones: a link's shaped rate, a router's forwarding-capacity meter
rate. Rates are in the emulation's units (Mbit/s on the wire, the knowledge graph's ×
``bw_scale``); the rule is scale-free except for its floor, :func:`floor_mbps`.

These are pure functions over counter snapshots; :class:`~harness.twin.emulation.twin.EmulationTwin`
reads the counters, calls :func:`round_trips`, and injects what trips.
"""

from __future__ import annotations

from harness.twin.cascade import CascadeRule
from harness.topology import link_id

#: Largest Ethernet frame the emulation sends (bytes): the unit of :func:`floor_mbps`.
FRAME_BYTES = 1514


def floor_mbps(window_s: float) -> float:
    """The measurement floor of a window: one full-size frame in it (Mbit/s). A rate below
    that cannot be told from a stray packet."""
    return FRAME_BYTES * 8 / window_s / 1e6


def direction_rates(q0: dict, q1: dict) -> dict[tuple[str, str], dict[str, float]]:
    """Per link direction ``(u, v)``: ``{"offered", "carried"}`` Mbit/s between two
    :meth:`~harness.twin.emulation.network.EmulatedNetwork.link_queue_counters` reads."""
    dt = q1["t"] - q0["t"]
    out: dict[tuple[str, str], dict[str, float]] = {}
    if dt <= 0:
        return out
    for key, (b1, p1, d1) in q1["dirs"].items():
        b0, p0, d0 = q0["dirs"].get(key, (b1, p1, d1))
        sent, pkts, drops = max(0, b1 - b0), max(0, p1 - p0), max(0, d1 - d0)
        frame = sent / pkts if pkts else FRAME_BYTES
        out[key] = {"carried": sent * 8 / dt / 1e6, "offered": (sent + drops * frame) * 8 / dt / 1e6}
    return out


def element_loads(rates: dict[tuple[str, str], dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """``(links, routers)``: per link its busier direction's offered rate, per router what it
    received from its neighbours (the carried rate of every direction towards it)."""
    links: dict[str, float] = {}
    routers: dict[str, float] = {}
    for (u, v), r in rates.items():
        lid = link_id(u, v)
        links[lid] = max(links.get(lid, 0.0), r["offered"])
        routers[v] = routers.get(v, 0.0) + r["carried"]
        routers.setdefault(u, 0.0)
    return links, routers


def round_trips(rule: CascadeRule, baseline: tuple[dict, dict], now: tuple[dict, dict],
                capacity: tuple[dict, dict], failed_links: set[str], failed_routers: set[str]) -> dict:
    """One cascade round: the live links and routers whose measured load ``now`` trips the
    rule against their ``baseline`` loads and current ``capacity`` (each a ``(links,
    routers)`` pair of id -> Mbit/s). Returns ``{"links": [...], "routers": [...]}``."""
    (bl, br), (nl, nr), (cl, cr) = baseline, now, capacity
    live_l = {l: x for l, x in nl.items() if l not in failed_links}
    live_r = {r: x for r, x in nr.items() if r not in failed_routers}
    return {"links": rule.tripped(bl, live_l, cl) if rule.links else [], "routers": rule.tripped(br, live_r, cr)}
