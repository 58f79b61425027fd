"""Build the knowledge graph from a topology: structure, traffic, routing and dependencies.

Defaults (documented here, the one place):

* one host per router (``h_<router>``, address ``10.0.<i // 250>.<i % 250 + 1>``).
* traffic: :func:`harness.kg.traffic.traffic_matrix` (gravity, seed 0, at most 2000 flows),
  scaled so the busiest direction of the busiest link carries ``load`` (default 0.5) of its
  capacity under single-path shortest-delay routing (links are full duplex; a link's
  ``load_mbps``/``utilisation`` are its busier direction's) — a network with headroom.
* routing: one shortest path by propagation delay per flow (ties broken deterministically);
  the flow twin refines this with ECMP.
* services: ``voice``, ``video`` and ``data``; every flow joins one (seeded). SLA latency =
  factor × the slowest member flow's baseline delay (1.5, 2 and 3) plus 1 ms; SLA loss =
  1 %, 2 % and 5 %.
* resources: router CPU (forwarding capacity, Mbit/s, provisioned like the links: the
  baseline traffic through the router — every flow counts at every router on its path,
  endpoints included — is ``load`` of it),
  router buffer (:data:`DEFAULT_BUFFER_PKTS` packets), link capacity (Mbit/s).
* SRLGs: :func:`harness.kg.srlg.find_srlgs` (conduits, midpoints within 100 km).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from harness.errors import KnowledgeGraphError
from harness.kg.model import KnowledgeGraph, nid
from harness.kg.srlg import DEFAULT_SRLG_RADIUS_KM, find_srlgs
from harness.kg.traffic import traffic_matrix
from harness.topology.load import link_id

DEFAULT_LOAD = 0.5
DEFAULT_MAX_FLOWS = 2000
DEFAULT_BUFFER_PKTS = 1000
MIN_ROUTER_CAPACITY_MBPS = 1.0
SERVICES = {  # name: (latency factor over the slowest member's baseline, loss bound %)
    "voice": (1.5, 1.0),
    "video": (2.0, 2.0),
    "data": (3.0, 5.0),
}


def host_name(router: str) -> str:
    return f"h_{router}"


def host_ip(index: int) -> str:
    """The host address of the router at 0-based ``index`` in sorted router order — one
    address plan for the knowledge graph and the emulation (:mod:`harness.twin.emulation.plan`)."""
    return f"10.0.{index // 250}.{index % 250 + 1}"


def build_kg(topology: nx.Graph, *, traffic: str = "gravity", seed: int = 0, load: float = DEFAULT_LOAD,
             max_flows: int | None = DEFAULT_MAX_FLOWS, srlg_radius_km: float = DEFAULT_SRLG_RADIUS_KM,
             incidents: str | Path | None = None) -> KnowledgeGraph:
    """Build a :class:`KnowledgeGraph` from a topology graph (see :mod:`harness.topology`)."""
    if topology.number_of_nodes() < 2 or topology.number_of_edges() < 1:
        raise KnowledgeGraphError("a knowledge graph needs a topology with at least two routers and one link")
    if not 0 < load <= 1:
        raise KnowledgeGraphError(f"load must be in (0, 1], got {load}")
    G = nx.MultiDiGraph(topology=topology.graph.get("name", ""), source=topology.graph.get("source"),
                        traffic=traffic, seed=seed, load=load)
    routers = list(topology.nodes)
    order = {r: i for i, r in enumerate(sorted(routers))}
    for i, r in enumerate(routers):
        d = topology.nodes[r]
        G.add_node(nid("router", r), kind="router", name=r, label=d.get("label", r), lat=d.get("lat"), lon=d.get("lon"))
        h = host_name(r)
        G.add_node(nid("host", h), kind="host", name=h, router=r, ip=host_ip(order[r]))
        G.add_edge(nid("router", r), nid("host", h), key="hosts")
        G.add_edge(nid("host", h), nid("router", r), key="depends_on")
    for u, v, d in topology.edges(data=True):
        a, b = sorted((u, v))
        lid = link_id(a, b)
        G.add_node(nid("link", lid), kind="link", name=lid, u=a, v=b, delay_ms=d["delay_ms"],
                   capacity_mbps=d["capacity_mbps"], dist_km=d.get("dist_km"),
                   capacity_source=d.get("capacity_source"), delay_source=d.get("delay_source"))
        for r in (a, b):
            G.add_edge(nid("router", r), nid("link", lid), key="connects")
            G.add_edge(nid("link", lid), nid("router", r), key="connects")
            G.add_edge(nid("link", lid), nid("router", r), key="depends_on")
        res = f"cap_{lid}"
        G.add_node(nid("resource", res), kind="resource", name=res, resource="capacity",
                   capacity=d["capacity_mbps"], unit="Mbit/s", of=lid)
        G.add_edge(nid("link", lid), nid("resource", res), key="uses")
    for r in routers:
        cpu = sum(topology.edges[r, n]["capacity_mbps"] for n in topology.neighbors(r))  # until traffic is known
        for res, kind, cap, unit in ((f"cpu_{r}", "cpu", cpu, "Mbit/s"), (f"buf_{r}", "buffer", DEFAULT_BUFFER_PKTS, "packets")):
            G.add_node(nid("resource", res), kind="resource", name=res, resource=kind, capacity=cap, unit=unit, of=r)
            G.add_edge(nid("router", r), nid("resource", res), key="uses")

    _add_flows(G, topology, traffic, seed, load, max_flows)
    _add_services(G, seed)
    for group in find_srlgs(topology, srlg_radius_km):
        G.add_node(nid("srlg", group["name"]), kind="srlg", name=group["name"], links=group["links"], reason=group["reason"])
        for lid in group["links"]:
            G.add_edge(nid("link", lid), nid("srlg", group["name"]), key="shares_risk")
    if incidents is not None:
        _add_incidents(G, Path(incidents))
    return KnowledgeGraph(G)


def shortest_paths(topology: nx.Graph, sources: list[str], weight: str = "delay_ms") -> tuple[dict, np.ndarray, np.ndarray]:
    """Single-source shortest paths from ``sources`` (scipy Dijkstra): (index, dist, predecessors)."""
    nodes = list(topology.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    rows, cols, w = [], [], []
    for u, v, d in topology.edges(data=True):
        x = float(d[weight]) if weight else 1.0
        rows += [index[u], index[v]]
        cols += [index[v], index[u]]
        w += [x, x]
    mat = csr_matrix((w, (rows, cols)), shape=(len(nodes), len(nodes)))
    src_idx = [index[s] for s in sources]
    dist, pred = dijkstra(mat, directed=True, indices=src_idx, return_predecessors=True)
    return index, dist, pred


def walk(pred_row: np.ndarray, src: int, dst: int, nodes: list) -> list:
    """The path ``src`` -> ``dst`` (indices into ``nodes``) from a row of
    :func:`shortest_paths`' predecessors, as node names; ``dst`` must be reachable."""
    path = [dst]
    while path[-1] != src:
        path.append(pred_row[path[-1]])
    return [nodes[k] for k in reversed(path)]


def _add_flows(G: nx.MultiDiGraph, topology: nx.Graph, model: str, seed: int, load: float, max_flows: int | None) -> None:
    tm = traffic_matrix(topology, model, seed=seed, max_flows=max_flows)
    nodes = list(topology.nodes)
    sources = sorted({s for s, _, _ in tm})
    index, dist, pred = shortest_paths(topology, sources)
    row = {s: i for i, s in enumerate(sources)}
    arc_load: dict[tuple[str, str], float] = {}
    router_load: dict[str, float] = {r: 0.0 for r in nodes}
    flows = []
    for s, d, w in tm:
        i, j = row[s], index[d]
        if not np.isfinite(dist[i, j]):
            continue
        path = walk(pred[i], index[s], j, nodes)
        links = [link_id(a, b) for a, b in zip(path, path[1:])]
        for a, b in zip(path, path[1:]):
            arc_load[a, b] = arc_load.get((a, b), 0.0) + w
        for r in path:
            router_load[r] += w
        flows.append((s, d, w, path, links, float(dist[i, j])))
    # Links are full duplex: scale so the busiest direction of any link sits at `load`.
    scale = min(G.nodes[nid("link", link_id(a, b))]["capacity_mbps"] * load / x for (a, b), x in arc_load.items() if x > 0)
    for lid in (n for n, d in G.nodes(data=True) if d["kind"] == "link"):
        a = G.nodes[lid]
        busiest = max(arc_load.get((a["u"], a["v"]), 0.0), arc_load.get((a["v"], a["u"]), 0.0)) * scale
        a["load_mbps"] = round(busiest, 6)
        a["utilisation"] = round(busiest / a["capacity_mbps"], 6)
    # Routers are provisioned like the busiest link: baseline traffic through them at `load`.
    for r in nodes:
        cpu = G.nodes[nid("resource", f"cpu_{r}")]
        cpu["load"] = round(router_load[r] * scale, 6)
        cpu["capacity"] = round(max(router_load[r] * scale / load, MIN_ROUTER_CAPACITY_MBPS), 6)
    for s, d, w, path, links, delay in flows:
        f = nid("flow", f"{s}~{d}")
        G.add_node(f, kind="flow", name=f"{s}~{d}", src=s, dst=d, demand_mbps=round(w * scale, 6),
                   path=path, links=links, delay_ms=round(delay, 4))
        for hop, lid in enumerate(links):
            G.add_edge(f, nid("link", lid), key="routes_via", hop=hop)
            G.add_edge(f, nid("link", lid), key="depends_on")
            G.add_edge(nid("link", lid), f, key="carries")
        for r in path:
            G.add_edge(f, nid("router", r), key="depends_on")


def _add_services(G: nx.MultiDiGraph, seed: int) -> None:
    rng = random.Random(seed)
    names = list(SERVICES)
    members: dict[str, list[str]] = {s: [] for s in names}
    for f in sorted(n for n, d in G.nodes(data=True) if d["kind"] == "flow"):
        members[rng.choice(names)].append(f)
    for s in names:
        factor, loss = SERVICES[s]
        worst = max((G.nodes[f]["delay_ms"] for f in members[s]), default=0.0)
        G.add_node(nid("service", s), kind="service", name=s, sla_latency_ms=round(factor * worst + 1.0, 3),
                   sla_loss_pct=loss, flows=[G.nodes[f]["name"] for f in members[s]])
        for f in members[s]:
            G.nodes[f]["service"] = s
            G.add_edge(nid("service", s), f, key="depends_on")


def _add_incidents(G: nx.MultiDiGraph, path: Path) -> None:
    """Historical incidents from JSONL: ``{"id", "event_type", "target", "time"?, "description"?}``."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise KnowledgeGraphError(f"cannot read incident log {path}: {exc.strerror}") from None
    kinds = {"router", "link", "srlg"}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            iid, target = str(rec["id"]), str(rec["target"])
        except (ValueError, KeyError, TypeError):
            raise KnowledgeGraphError(f"{path}:{lineno}: not an incident record (needs JSON with 'id' and 'target')") from None
        hit = [nid(k, target) for k in kinds if nid(k, target) in G]
        G.add_node(nid("incident", iid), kind="incident", name=iid, event_type=rec.get("event_type"),
                   target=target, time=rec.get("time"), description=rec.get("description", ""))
        for h in hit:
            G.add_edge(nid("incident", iid), h, key="affected")
