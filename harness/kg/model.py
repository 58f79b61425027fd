"""The knowledge graph: a typed ``networkx.MultiDiGraph`` of the network and its dependencies.

Node ids are ``"<kind>:<name>"`` and every node has ``kind`` and ``name`` attributes:

=========  ==========================  ==============================================
kind       name                        attributes
=========  ==========================  ==============================================
router     router id (``NewYork``)     label, lat, lon
link       link id (``Chicago-NewYork``)  u, v, delay_ms, capacity_mbps, dist_km, load_mbps, utilisation
host       ``h_<router>``              router, ip
flow       ``<src>~<dst>``             src, dst, demand_mbps, path (routers), links, delay_ms, service
service    ``voice`` …                 sla_latency_ms, sla_loss_pct, flows
resource   ``cpu_<r>``, ``buf_<r>``, ``cap_<link>``  resource (cpu|buffer|capacity), capacity, unit, of
srlg       ``srlg<N>``                  links, reason (``proximity`` | ``conduit``)
incident   incident id                 event_type, target, time, description
=========  ==========================  ==============================================

Edges are keyed by relation (``G.edges[u, v, rel]``):

* ``connects``    router -> link and link -> router
* ``carries``     link -> flow (the link carries the flow's traffic)
* ``routes_via``  flow -> link, with ``hop`` (the flow's ordered path)
* ``depends_on``  flow -> link, flow -> router (on its path), service -> flow,
  link -> router (its endpoints), host -> router
* ``shares_risk`` link -> srlg
* ``hosts``       router -> host
* ``uses``        router -> resource, link -> resource
* ``affected``    incident -> the element it hit

``depends_on`` points from the dependent to what it depends on, so everything a failure of
``x`` touches is the set of ``depends_on`` ancestors of ``x`` (:func:`harness.kg.dependents`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Iterator

import networkx as nx

from harness.errors import KnowledgeGraphError

KINDS = ("router", "link", "host", "flow", "service", "resource", "srlg", "incident")
RELATIONS = ("connects", "carries", "routes_via", "depends_on", "shares_risk", "hosts", "uses", "affected")


def nid(kind: str, name: str) -> str:
    """The node id of element ``name`` of ``kind``."""
    return f"{kind}:{name}"


def split(node_id: str) -> tuple[str, str]:
    kind, _, name = node_id.partition(":")
    return kind, name


class KnowledgeGraph:
    """Holds the typed graph; algorithms over it are free functions in :mod:`harness.kg`."""

    def __init__(self, graph: nx.MultiDiGraph):
        self.graph = graph

    # ------------------------------------------------------------------ lookups
    @property
    def name(self) -> str:
        return self.graph.graph.get("topology", "")

    def names(self, kind: str) -> list[str]:
        """Names of every node of ``kind``, in insertion order."""
        return list(self._by_kind.get(kind, ()))

    def has(self, kind: str, name: str) -> bool:
        return nid(kind, name) in self.graph

    def attrs(self, kind: str, name: str) -> dict:
        try:
            return self.graph.nodes[nid(kind, name)]
        except KeyError:
            raise KnowledgeGraphError(f"no {kind} named {name!r} in the knowledge graph of {self.name}") from None

    def kind_of(self, name: str) -> list[str]:
        """Every kind that has an element called ``name``."""
        return [k for k in KINDS if nid(k, name) in self.graph]

    def related(self, node_id: str, rel: str, *, reverse: bool = False) -> Iterator[str]:
        """Neighbours of ``node_id`` along edges of relation ``rel`` (incoming if ``reverse``)."""
        edges = self.graph.in_edges(node_id, keys=True) if reverse else self.graph.out_edges(node_id, keys=True)
        for u, v, k in edges:
            if k == rel:
                yield u if reverse else v

    @property
    def routers(self) -> list[str]:
        return self.names("router")

    @property
    def links(self) -> list[str]:
        return self.names("link")

    @property
    def flows(self) -> list[str]:
        return self.names("flow")

    @property
    def srlgs(self) -> list[str]:
        return self.names("srlg")

    def link_ends(self, link: str) -> tuple[str, str]:
        a = self.attrs("link", link)
        return a["u"], a["v"]

    def router_links(self, router: str) -> list[str]:
        """The links at ``router``, sorted (from :attr:`topology`: no scan of every link)."""
        return sorted(d["id"] for _, _, d in self.topology.edges(router, data=True))

    @cached_property
    def _by_kind(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n, d in self.graph.nodes(data=True):
            out.setdefault(d["kind"], []).append(d["name"])
        return out

    @cached_property
    def topology(self) -> nx.Graph:
        """The router-level graph (routers and links with their attributes), for algorithms."""
        g = nx.Graph(name=self.name)
        for r in self.routers:
            g.add_node(r, **{k: v for k, v in self.attrs("router", r).items() if k not in ("kind", "name")})
        for link in self.links:
            a = self.attrs("link", link)
            g.add_edge(a["u"], a["v"], id=link, **{k: v for k, v in a.items() if k not in ("kind", "name", "u", "v")})
        return g

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(v)} {k}s" for k, v in self._by_kind.items())
        return f"<KnowledgeGraph {self.name}: {counts}>"

    def summary(self) -> dict:
        """Counts per node kind and per relation."""
        rels: dict[str, int] = {}
        for _, _, k in self.graph.edges(keys=True):
            rels[k] = rels.get(k, 0) + 1
        return {
            "topology": self.name,
            "nodes": {k: len(self._by_kind.get(k, ())) for k in KINDS},
            "edges": {r: rels.get(r, 0) for r in RELATIONS},
            "traffic": self.graph.graph.get("traffic"),
            "seed": self.graph.graph.get("seed"),
        }
