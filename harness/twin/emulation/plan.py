"""The emulated network's plan as plain data: routers, indices, names, ports, addresses.

One :class:`NetworkPlan` says what a network of a topology is called and wired like, before
anything exists: the network builds it, the controller process reads it (its topology file,
:meth:`NetworkPlan.topology_record`), ``ani controller`` writes that file without building a
network, and ``ani cleanup`` matches the names (:data:`NAME_RE`).

    router index n  1-based position of the router in ``sorted(topology.nodes)``
    bridge          ``{prefix}s{n}``            e.g. ``ani4kqs12``, datapath id = n
    host namespace  ``{prefix}h{n}``            and its interface has the same name
    switch ports    ``{prefix}s{n}p{k}``        OpenFlow port k; port 1 faces the host,
                    ports 2.. face neighbours in sorted link order
    host address    :func:`harness.kg.build.host_ip` of n (the knowledge graph's own host
                    address); MAC ``02:a0:00:xx:yy:zz`` (= n)

Names must fit the 15-character Linux limit: up to 9999 routers and 999 ports per router.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

import networkx as nx

from harness.errors import EmulationError
from harness.kg.build import host_ip as kg_host_ip
from harness.topology.load import link_id

NAME_PREFIX = "ani"
#: A run's prefix, and every bridge/interface/namespace name derived from it (switch ``s``
#: or host ``h``, index, optional port) — the one definition ``ani cleanup`` matches too.
PREFIX_RE = re.compile(rf"^{NAME_PREFIX}[0-9a-z]{{3}}$")
NAME_RE = re.compile(rf"^{NAME_PREFIX}[0-9a-z]{{3}}[sh][0-9]+(p[0-9]+)?$")
HOST_PORT = 1
MAX_ROUTERS, MAX_PORT = 9999, 999


@dataclass(frozen=True)
class NetworkPlan:
    """Names, ports and addresses of one network; ``prefix`` is set when it is brought up."""

    routers: tuple[str, ...]
    index: dict[str, int]
    #: link id -> {id, u, v, u_port, v_port, delay_ms, capacity_mbps, rate_mbps}
    links: dict[str, dict]
    #: router -> {neighbour: port}
    ports: dict[str, dict[str, int]]
    #: router -> emulated forwarding capacity (Mbit/s)
    router_capacity: dict[str, float] = field(default_factory=dict)
    prefix: str = ""

    @classmethod
    def of(cls, topology: nx.Graph, rate: Callable[[float], float],
           router_capacity_mbps: dict[str, float] | None = None, prefix: str = "") -> "NetworkPlan":
        """The plan of ``topology``; ``rate`` turns a KG capacity into an emulated rate."""
        routers = tuple(sorted(topology.nodes))
        if len(routers) > MAX_ROUTERS:
            raise EmulationError(f"{len(routers)} routers is more than the emulation supports ({MAX_ROUTERS})")
        if prefix and not PREFIX_RE.match(prefix):
            raise EmulationError(f"prefix {prefix!r} must be 'ani' followed by 3 characters of [0-9a-z]")
        unknown = sorted(set(router_capacity_mbps or {}) - set(routers))
        if unknown:
            raise EmulationError(f"router_capacity_mbps names routers not in the topology: {unknown[:5]}")
        next_port = {r: HOST_PORT + 1 for r in routers}
        ports: dict[str, dict[str, int]] = {r: {} for r in routers}
        links: dict[str, dict] = {}
        for u, v in sorted(tuple(sorted(e)) for e in topology.edges):
            if u == v:
                continue
            d = topology.edges[u, v]
            pu, pv = next_port[u], next_port[v]
            next_port[u] += 1
            next_port[v] += 1
            if max(pu, pv) > MAX_PORT:
                raise EmulationError(f"router {u if pu > MAX_PORT else v} has more than {MAX_PORT - 1} links; "
                                     "too many to emulate")
            ports[u][v], ports[v][u] = pu, pv
            cap = float(d.get("capacity_mbps") or 0) or 10_000.0
            links[link_id(u, v)] = {"id": link_id(u, v), "u": u, "v": v, "u_port": pu, "v_port": pv,
                                    "delay_ms": float(d.get("delay_ms") or 0.0), "capacity_mbps": cap,
                                    "rate_mbps": rate(cap)}
        return cls(routers, {r: i + 1 for i, r in enumerate(routers)}, links, ports,
                   {r: rate(float(c)) for r, c in (router_capacity_mbps or {}).items() if c}, prefix)

    def with_prefix(self, prefix: str) -> "NetworkPlan":
        if not PREFIX_RE.match(prefix):
            raise EmulationError(f"prefix {prefix!r} must be 'ani' followed by 3 characters of [0-9a-z]")
        return replace(self, prefix=prefix)

    # ------------------------------------------------------------------ names and addresses
    def idx(self, router: str) -> int:
        try:
            return self.index[router]
        except KeyError:
            raise EmulationError(f"unknown router {router!r}") from None

    def bridge(self, router: str) -> str:
        """The OVS bridge name of ``router``."""
        return f"{self.prefix}s{self.idx(router)}"

    def netns(self, router: str) -> str:
        """The network namespace (and interface) name of ``router``'s host."""
        return f"{self.prefix}h{self.idx(router)}"

    def port_name(self, router: str, port: int) -> str:
        return f"{self.prefix}s{self.idx(router)}p{port}"

    def host_ip(self, router: str) -> str:
        """The IPv4 address of ``router``'s host: the knowledge graph's scheme, from its index."""
        return kg_host_ip(self.idx(router) - 1)

    def host_mac(self, router: str) -> str:
        n = self.idx(router)
        return f"02:a0:00:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}"

    def link(self, u: str, v: str) -> dict:
        lid = link_id(u, v)
        if lid not in self.links:
            raise EmulationError(f"there is no link {lid}")
        return self.links[lid]

    def link_ifaces(self, u: str, v: str) -> tuple[str, str]:
        """The two switch-port interfaces of link ``u``-``v``."""
        l = self.link(u, v)
        return self.port_name(l["u"], l["u_port"]), self.port_name(l["v"], l["v_port"])

    def topology_record(self) -> dict:
        """The controller's topology file contents (see :mod:`controllers.routing`)."""
        return {"prefix": self.prefix,
                "routers": [{"name": r, "dpid": self.index[r], "host_ip": self.host_ip(r),
                             "host_mac": self.host_mac(r), "host_port": HOST_PORT,
                             "bridge": self.bridge(r), "netns": self.netns(r),
                             **({"capacity_mbps": self.router_capacity[r]} if r in self.router_capacity else {})}
                            for r in self.routers],
                "links": [dict(l) for l in self.links.values()]}
