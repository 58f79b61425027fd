"""Flow specifications as plain data (no os-ken import); the app turns them into FlowMods.

A spec is a dict::

    {"table": 1, "priority": 100, "cookie": COOKIE_ROUTE,
     "match": {"eth_type": 0x0800, "ipv4_dst": "10.0.0.2"},
     "actions": [("output", 3)],          # [] means drop
     "meter": None, "goto": None}

Pipeline: table 0 = ingress policing (the rate-limit meter on the host port: what a
mitigation drops never reaches the router) then ``goto`` table 1; table 1 = the router's
forwarding capacity (every packet the switch receives, from its host or a neighbour,
passes meter :data:`ROUTER_METER_ID` when the router has a capacity) then ``goto`` table 2;
table 2 = routing (priority 100), operator mitigations (200), injected misconfigurations
(300).  Table-miss in table 2 drops: nothing goes to the controller.
"""

from __future__ import annotations

ETH_IPV4 = 0x0800
TABLE_INGRESS = 0
TABLE_CAPACITY = 1
TABLE_ROUTE = 2

PRIO_ROUTE = 100
PRIO_METER = 200
PRIO_MISCONFIG = 300

COOKIE_BASE = 0x0A00_0000_0000_0000
COOKIE_ROUTE = COOKIE_BASE | 0x1
COOKIE_METER = COOKIE_BASE | 0x2
COOKIE_MISCONFIG = COOKIE_BASE | 0x3_0000  # | misconfig id
COOKIE_MASK_ALL = 0xFFFF_FFFF_FFFF_FFFF

#: Meter id used for the per-router host-ingress rate limit.
METER_ID = 1
#: Meter id of the router's forwarding capacity (all traffic the switch receives).
ROUTER_METER_ID = 2


def spec(table: int, priority: int, cookie: int, match: dict, actions: list | None = None,
         meter: int | None = None, goto: int | None = None) -> dict:
    """One flow spec (see module doc)."""
    return {"table": table, "priority": priority, "cookie": cookie, "match": dict(match),
            "actions": list(actions or []), "meter": meter, "goto": goto}


def base_flows(capacity: bool = False) -> list[dict]:
    """Table-miss entries every switch gets: table 0 → table 1 → (router meter when
    ``capacity``) → table 2; table 2 drops."""
    return [spec(TABLE_INGRESS, 0, COOKIE_ROUTE, {}, goto=TABLE_CAPACITY),
            spec(TABLE_CAPACITY, 0, COOKIE_ROUTE, {}, meter=ROUTER_METER_ID if capacity else None,
                 goto=TABLE_ROUTE),
            spec(TABLE_ROUTE, 0, COOKIE_ROUTE, {}, actions=[])]


def route_flow(dst_ip: str, out_port: int) -> dict:
    """Send IPv4 traffic for ``dst_ip`` out of ``out_port``."""
    return spec(TABLE_ROUTE, PRIO_ROUTE, COOKIE_ROUTE, route_match(dst_ip), [("output", int(out_port))])


def route_match(dst_ip: str) -> dict:
    return {"eth_type": ETH_IPV4, "ipv4_dst": dst_ip}


def route_flows(routes: dict[str, int], host_ips: dict[str, str]) -> list[dict]:
    """Every route flow of one router from its routes ``{dst_router: out_port}``
    (:func:`controllers.routing.by_router`)."""
    return [route_flow(host_ips[dst], port) for dst, port in sorted(routes.items())]


def blackhole_flow(dst_ip: str, misconfig_id: int) -> dict:
    """Misconfiguration: silently drop traffic for ``dst_ip`` at this router."""
    return spec(TABLE_ROUTE, PRIO_MISCONFIG, COOKIE_MISCONFIG | misconfig_id, route_match(dst_ip), [])


def wrong_next_hop_flow(dst_ip: str, out_port: int, misconfig_id: int) -> dict:
    """Misconfiguration: send traffic for ``dst_ip`` out of the wrong port."""
    return spec(TABLE_ROUTE, PRIO_MISCONFIG, COOKIE_MISCONFIG | misconfig_id, route_match(dst_ip),
                [("output", int(out_port))])


def meter_flow(host_port: int) -> dict:
    """Police traffic entering from the host port with :data:`METER_ID`, then on to the
    router's capacity meter and routing."""
    return spec(TABLE_INGRESS, PRIO_METER, COOKIE_METER, {"in_port": int(host_port)},
                meter=METER_ID, goto=TABLE_CAPACITY)


def meter_band(mbps: float, meter_id: int = METER_ID) -> dict:
    """A drop band at ``mbps`` (kbit/s in OpenFlow), burst one tenth of a second."""
    kbps = max(1, int(round(mbps * 1000)))
    return {"meter_id": meter_id, "rate_kbps": kbps, "burst_kb": max(1, kbps // 10)}
