"""Pure path computation for the ani controller (no switch, no os-ken import).

The controller is given a *topology file* (written by
:class:`harness.twin.emulation.network.EmulatedNetwork`)::

    {"prefix": "ani4kq",
     "routers": [{"name": "A", "dpid": 1, "host_ip": "10.0.0.1", "host_mac": "02:00:00:00:00:01",
                  "host_port": 1}, ...],
     "links": [{"id": "A-B", "u": "A", "v": "B", "u_port": 2, "v_port": 2,
                "delay_ms": 1.0, "capacity_mbps": 10000.0, "rate_mbps": 10.0}, ...]}

Routing is destination based: for every destination router ``d`` the shortest-path
tree towards ``d`` (by ``delay_ms``) gives each router one output port for ``d``'s
host address.  A *route table* maps ``(router, dst_router) -> out_port``; diffing two
tables gives the flows a failover has to rewrite.
"""

from __future__ import annotations

from typing import Iterable

import networkx as nx

#: Extra delay (ms) added to links the operator asked to avoid: they are only used
#: when no other path exists.
AVOID_PENALTY_MS = 1e6

RouteTable = dict  # {(router, dst_router): out_port}


def build_graph(topo: dict, down: Iterable[str] = (), avoid: Iterable[str] = (),
                down_routers: Iterable[str] = ()) -> nx.Graph:
    """The usable graph: routers as nodes, links that are up as edges.

    ``down`` and ``avoid`` are link ids; ``down_routers`` are router names whose links
    are all unusable.  Avoided links stay, with :data:`AVOID_PENALTY_MS` added.
    """
    down, avoid, dead = set(down), set(avoid), set(down_routers)
    g = nx.Graph()
    for r in topo["routers"]:
        if r["name"] in dead:
            continue
        g.add_node(r["name"], host_port=r["host_port"])
    for link in topo["links"]:
        lid = link["id"]   # the network plan names every link (harness.topology.link_id)
        if lid in down or link["u"] in dead or link["v"] in dead:
            continue
        w = float(link.get("delay_ms", 1.0)) + (AVOID_PENALTY_MS if lid in avoid else 0.0)
        g.add_edge(link["u"], link["v"], weight=w, id=lid,
                   ports={link["u"]: link["u_port"], link["v"]: link["v_port"]})
    return g


def route_table(topo: dict, down: Iterable[str] = (), avoid: Iterable[str] = (),
                down_routers: Iterable[str] = ()) -> RouteTable:
    """``{(router, dst): out_port}`` for every router that can reach ``dst``.

    At ``dst`` itself the port is the host port.  Unreachable pairs are absent.
    """
    g = build_graph(topo, down, avoid, down_routers)
    table: RouteTable = {}
    for dst in sorted(g.nodes):
        table[(dst, dst)] = g.nodes[dst]["host_port"]
        # Paths from dst to every router; reversed they are paths towards dst.
        paths = nx.single_source_dijkstra_path(g, dst, weight="weight")
        for router, path in paths.items():
            if router == dst:
                continue
            nxt = path[-2]
            table[(router, dst)] = g.edges[router, nxt]["ports"][router]
    return table


def paths(topo: dict, down: Iterable[str] = (), avoid: Iterable[str] = (),
          down_routers: Iterable[str] = ()) -> dict[tuple[str, str], list[str]]:
    """``{(src, dst): [src, ..., dst]}`` for every reachable ordered pair (src != dst)."""
    g = build_graph(topo, down, avoid, down_routers)
    out = {}
    for dst in sorted(g.nodes):
        for src, p in nx.single_source_dijkstra_path(g, dst, weight="weight").items():
            if src != dst:
                out[(src, dst)] = list(reversed(p))
    return out


def diff(old: RouteTable, new: RouteTable) -> tuple[RouteTable, set]:
    """What to change to go from ``old`` to ``new``: ``(add_or_modify, remove)``."""
    changed = {k: p for k, p in new.items() if old.get(k) != p}
    removed = {k for k in old if k not in new}
    return changed, removed


def by_router(table: RouteTable) -> dict[str, dict[str, int]]:
    """A route table indexed by router: ``{router: {dst_router: out_port}}``."""
    out: dict[str, dict[str, int]] = {}
    for (router, dst), port in table.items():
        out.setdefault(router, {})[dst] = port
    return out


def neighbour_port(topo: dict, router: str, neighbour: str) -> int:
    """The port of ``router`` facing ``neighbour``; ``KeyError`` if they are not adjacent."""
    for link in topo["links"]:
        if link["u"] == router and link["v"] == neighbour:
            return link["u_port"]
        if link["v"] == router and link["u"] == neighbour:
            return link["v_port"]
    raise KeyError(f"{router} and {neighbour} are not adjacent")


def port_to_link(topo: dict) -> dict[tuple[str, int], str]:
    """``{(router, port): link_id}`` for every inter-router port."""
    out = {}
    for link in topo["links"]:
        lid = link["id"]
        out[(link["u"], link["u_port"])] = lid
        out[(link["v"], link["v_port"])] = lid
    return out
