"""Free functions over a knowledge graph (networkx style): dependencies, blast radius, paths."""

from __future__ import annotations

from typing import Iterable

import networkx as nx

from harness.errors import KnowledgeGraphError
from harness.kg.model import KnowledgeGraph, nid, split
from harness.kg.names import resolve, suggest


def _node(kg: KnowledgeGraph, x: str) -> str:
    """Accept ``kind:name`` or a bare name that is unique across kinds."""
    if x in kg.graph:
        return x
    kinds = kg.kind_of(x)
    if len(kinds) == 1:
        return nid(kinds[0], x)
    if not kinds:
        found = {nid(k, r) for k in ("router", "link") if (r := resolve(kg, k, x))}
        if len(found) == 1:
            return found.pop()
        close = suggest(kg, "router", x) + suggest(kg, "link", x)
        raise KnowledgeGraphError(f"no element named {x!r} in the knowledge graph of {kg.name}"
                                  + (f"; did you mean {', '.join(close)}?" if close else ""))
    raise KnowledgeGraphError(f"{x!r} is ambiguous ({', '.join(kinds)}); write it as kind:name")


def dependents(kg: KnowledgeGraph, x: str) -> set[str]:
    """Every node id that transitively depends on ``x`` (``depends_on`` ancestors).

    For a link: the flows routed over it and the services those flows belong to. For a
    router: its host, its links, and everything depending on those.
    """
    start = _node(kg, x)
    seen: set[str] = set()
    stack = [start]
    while stack:
        n = stack.pop()
        for u in kg.related(n, "depends_on", reverse=True):
            if u not in seen:
                seen.add(u)
                stack.append(u)
    seen.discard(start)
    return seen


def blast_radius(kg: KnowledgeGraph, elements: Iterable[str]) -> dict[str, list[str]]:
    """What acting on ``elements`` (node ids) touches, structurally: the elements, dependent
    flows, services, hosts and routers.

    Returns sorted names per kind: ``elements``, ``flows``, ``services``, ``hosts``,
    ``routers`` (endpoints of affected flows and the routers acted on). For events, see
    :func:`harness.scenario.causal.blast_radius`.
    """
    elements = {_node(kg, x) for x in elements}
    affected: set[str] = set()
    for x in elements:
        affected |= dependents(kg, x)
    out: dict[str, set[str]] = {"flows": set(), "services": set(), "hosts": set(), "routers": set()}
    for n in affected | elements:
        kind, name = split(n)
        if kind == "flow":
            out["flows"].add(name)
            a = kg.graph.nodes[n]
            out["routers"] |= {a["src"], a["dst"]}
        elif kind == "service":
            out["services"].add(name)
        elif kind == "host":
            out["hosts"].add(name)
        elif kind == "router":
            out["routers"].add(name)
    out["hosts"] |= {f"h_{r}" for r in out["routers"]}
    return {"elements": sorted(elements), **{k: sorted(v) for k, v in out.items()}}


def paths(kg: KnowledgeGraph, flow: str) -> dict[str, list[str]]:
    """The ordered routers and links of a flow's baseline route."""
    a = kg.attrs("flow", flow.removeprefix("flow:"))
    return {"routers": list(a["path"]), "links": list(a["links"])}


def reachable(topology: nx.Graph, src: str, dst: str, *, failed_links: set[str] = frozenset(),
              failed_routers: set[str] = frozenset()) -> bool:
    """Whether ``dst`` can be reached from ``src`` avoiding failed elements."""
    if src in failed_routers or dst in failed_routers:
        return False

    def ok_node(n):
        return n not in failed_routers

    def ok_edge(u, v):
        return topology.edges[u, v]["id"] not in failed_links

    view = nx.subgraph_view(topology, filter_node=ok_node, filter_edge=ok_edge)
    return nx.has_path(view, src, dst)
