"""What the emulation's monitoring sees, as the planner's :class:`~harness.monitoring.FailureView`.

Everything comes from the running network, as an operator's tools would read it — never
from the scenario or the injector:

* failed links: the controller's port-status view (``GET /health`` ``down_links``); failed
  routers: routers whose every link is down there;
* per-link load and utilisation: the controller's port byte counters over the window, as a
  share of the port's current rate (the shaped rate: a degraded link's port is slower);
* per-link loss: the link interfaces' drop counters (:meth:`EmulatedNetwork.link_drops`) over
  the packets the far ends received (port counters);
* per-router drops: the router's forwarding-capacity meter (``GET /meters``), dropped over
  offered packets;
* per-router sending rate now and in the baseline: the host port's received bytes (the ingress
  counter of what the router's host sends into the network);
* forwarding drift: entries of each switch's routing table (``ovs-ofctl dump-flows``) whose
  cookie is not one the controller installs (:mod:`controllers.flows`): a configuration audit.

Counters are polled by the controller once a second, so a window's figures come from the
polls inside it (up to a second off its edges); drop counters are read when the window's
snapshot is taken.
"""

from __future__ import annotations

from controllers.flows import COOKIE_METER, COOKIE_ROUTE
from harness.kg.model import KnowledgeGraph
from harness.monitoring import FailureView
from harness.twin.emulation.measure import port_utilisation
from harness.twin.emulation.plan import HOST_PORT

#: Cookies of the forwarding entries the controller itself installs (its intent).
INTENT_COOKIES = frozenset({COOKIE_ROUTE, COOKIE_METER})


def source_rates(kg: KnowledgeGraph, before: dict, after: dict, bw_scale: float) -> dict[str, float]:
    """Per router: Mbit/s (knowledge-graph units) its host sent into the network between
    two port snapshots (the host port's received bytes)."""
    out = {}
    for r in kg.routers:
        a, b = before.get((r, HOST_PORT)), after.get((r, HOST_PORT))
        if a is None or b is None or b["t"] <= a["t"]:
            continue
        out[r] = max(0.0, (b["rx_bytes"] - a["rx_bytes"]) * 8 / (b["t"] - a["t"]) / 1e6) / bw_scale
    return out


def link_loss(before: dict, after: dict, drops0: dict[str, int], drops1: dict[str, int],
              skip: set[str]) -> dict[str, float]:
    """Per live link with drops: dropped / (dropped + received at the far ends), percent."""
    received: dict[str, int] = {}
    for key, b in after.items():
        lid, a = b.get("link"), before.get(key)
        if lid and a is not None:
            received[lid] = received.get(lid, 0) + max(0, b["rx_packets"] - a["rx_packets"])
    out = {}
    for lid, d1 in drops1.items():
        d = d1 - drops0.get(lid, 0)
        if d > 0 and lid not in skip:
            out[lid] = 100.0 * d / (d + received.get(lid, 0))
    return out


def router_drops(m0: dict, m1: dict) -> dict[str, float]:
    """Per router with drops: its capacity meter's dropped over offered packets, percent."""
    out = {}
    for r, b in m1.items():
        a = m0.get(r, {})
        offered = b.get("packets_in", 0) - a.get("packets_in", 0)
        dropped = b.get("dropped_packets", 0) - a.get("dropped_packets", 0)
        if offered > 0 and dropped > 0:
            out[r] = 100.0 * dropped / offered
    return out


def forwarding_drift(net, routers) -> dict[str, list[str]]:
    """Per router: its routing-table entries the controller did not install."""
    out = {}
    for r in routers:
        foreign = [e["entry"].replace("table=2, ", "") for e in net.forwarding_entries(r)
                   if e["cookie"] not in INTENT_COOKIES]
        if foreign:
            out[r] = foreign
    return out


def failure_view(kg: KnowledgeGraph, net, snaps: dict, meters: dict, drops: dict, bw_scale: float) -> FailureView:
    """The view of the failure window ``snaps["f0"]..snaps["f1"]`` (baseline: ``b0..b1``);
    ``meters`` and ``drops`` hold the meter and drop-counter reads at ``f0`` and ``f1``."""
    failed_links = set(net.client.health()["down_links"])
    failed_routers = {r for r in kg.routers
                      if all(l in failed_links for l in kg.router_links(r))}
    rates = {l: net.rate_mbps(l) for l in kg.links}
    util = port_utilisation(snaps["f0"], snaps["f1"], rates, failed_links)
    live_routers = [r for r in kg.routers if r not in failed_routers]
    return FailureView(
        failed_links=failed_links, failed_routers=failed_routers,
        link_utilisation={l: u["util"] for l, u in util.items()},
        link_load_mbps={l: u["mbps"] / bw_scale for l, u in util.items()},
        link_capacity_mbps={l: rates[l] / bw_scale for l in kg.links},
        link_loss_pct=link_loss(snaps["f0"], snaps["f1"], drops["f0"], drops["f1"], failed_links),
        router_drop_pct={r: p for r, p in router_drops(meters["f0"], meters["f1"]).items() if r in live_routers},
        source_mbps=source_rates(kg, snaps["f0"], snaps["f1"], bw_scale),
        source_baseline_mbps=source_rates(kg, snaps["b0"], snaps["b1"], bw_scale),
        forwarding_drift=forwarding_drift(net, live_routers),
    )
