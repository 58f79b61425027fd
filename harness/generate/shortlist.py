"""A bounded set of candidate events per generation step, whatever the graph's size.

Constrained decoding enumerates the admissible targets in the grammar or JSON schema. On
``as:5000`` (5,000 routers, 9,854 links) that is ~14,000-45,000 targets per step: the grammar
alone took the embedded model past 600 s for two scenarios. :func:`shortlist` keeps at most
``limit`` (type, target) pairs, every one still admissible (it only removes), from three sources:

* **the causal neighbourhood** of the events so far (:data:`NEIGHBOUR_SHARE`): the previous
  targets' routers and links, their neighbours, and the links sharing a risk group with
  them — where a multi-step chain goes next — and, with feedback, the same around the
  targets of the most damaging scenarios so far;
* **criticality** (the rest): an element's share of the traffic matrix — the demand of the
  flows whose paths cross it (a router: originated, transit and delivered, a link: carried,
  an SRLG: crossing any of its links) — bridges first among equal shares (their share is lost
  whole, a meshed link's may reroute); after events, on the paths the traffic takes once what
  they took down is gone (what they loaded), not the original ones;
* **exploration** (:data:`EXPLORE_SHARE`): a seeded uniform sample of the remaining
  admissible targets, so the search is not confined to the ranking.

The budget is split evenly over the admissible event types. The knowledge-graph-free ablation
(``use_kg=False``) gets the same bound from a uniform sample only: it knows no loads.
The shortlist and its size go into each scenario's provenance.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import networkx as nx

from harness.kg.build import shortest_paths, walk
from harness.kg.model import KnowledgeGraph, nid
from harness.scenario import types as event_types

#: Pairs offered per step at most: a grammar of 64 targets costs the embedded model no more
#: than Abilene's full admissible set (~100 pairs) did.
DEFAULT_LIMIT = 64
#: Share of each type's budget for the previous events' neighbourhood (multi-step chains).
NEIGHBOUR_SHARE = 0.35
#: Share of each type's budget drawn uniformly from the rest (exploration).
EXPLORE_SHARE = 0.15

#: Added to a bridge's share: it ranks first among equals, and shows as the same percentage.
BRIDGE_TIE = 1e-9
#: (id(kg), routers down, links down) -> (kg, scores); the kg is held so its id is not reused
#: while cached.
_SCORES: dict[tuple, tuple[KnowledgeGraph, dict]] = {}


@dataclass(frozen=True)
class Shortlist:
    options: dict[str, list[str]]
    admissible: int                       # pairs before the shortlist
    sources: dict[str, int] = field(default_factory=dict)   # neighbourhood / critical / explore

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.options.values())

    def record(self) -> dict:
        return {"admissible": self.admissible, "offered": self.size, **self.sources}


def scores(kg: KnowledgeGraph, events=()) -> dict[str, dict[str, float]]:
    """Per kind (router, link, srlg): each element's criticality — the share (0..1) of all
    traffic demand whose paths cross it (a router: originated, transit and delivered; an SRLG:
    a flow crossing any of its links, once). After ``events``, the paths are those once the
    elements they take down are gone: the flows they displace rerouted along the shortest live
    path (by delay, as the KG's routing paths are), the flows they cut off nowhere — where the
    traffic now concentrates, so where a next failure hurts (on Abilene, once KansasCity is down,
    Atlanta-Houston carries 43 % of all demand, 14 % before). A bridge's share is lost whole when it
    fails, a meshed link's may reroute, so at an equal share bridges rank first. Cached per
    knowledge graph and set of elements taken down."""
    down_routers, down_links = taken_down(kg, events)
    key = (id(kg), frozenset(down_routers), frozenset(down_links))
    hit = _SCORES.get(key)
    if hit is not None and hit[0] is kg:
        return hit[1]
    router = dict.fromkeys(kg.routers, 0.0)
    link = dict.fromkeys(kg.links, 0.0)
    groups: dict[str, list[str]] = {}
    for s in kg.srlgs:
        for l in kg.attrs("srlg", s)["links"]:
            groups.setdefault(l, []).append(s)
    srlg = dict.fromkeys(kg.srlgs, 0.0)

    def carry(path: list[str], links: list[str], d: float) -> None:
        for r in path:
            router[r] = router.get(r, 0.0) + d
        for l in links:
            link[l] = link.get(l, 0.0) + d
        for s in {s for l in links for s in groups.get(l, ())}:
            srlg[s] += d

    displaced: list[dict] = []
    total = 0.0
    for f in kg.flows:
        a = kg.attrs("flow", f)
        total += float(a["demand_mbps"])
        if down_routers.intersection(a["path"]) or down_links.intersection(a["links"]):
            displaced.append(a)
        else:
            carry(a["path"], a["links"], float(a["demand_mbps"]))
    for a, path in zip(displaced, rerouted(kg, displaced, down_routers, down_links)):
        if path is not None:
            carry(path, [kg.topology.edges[u, v]["id"] for u, v in zip(path, path[1:])], float(a["demand_mbps"]))
    total = total or 1.0
    out = {kind: {k: v / total for k, v in table.items()}
           for kind, table in (("router", router), ("link", link), ("srlg", srlg))}
    for u, v in nx.bridges(kg.topology):
        out["link"][kg.topology.edges[u, v]["id"]] += BRIDGE_TIE
    if len(_SCORES) >= 16:
        _SCORES.pop(next(iter(_SCORES)))
    _SCORES[key] = (kg, out)
    return out


def rerouted(kg: KnowledgeGraph, flows: list[dict], down_routers: set[str], down_links: set[str]) -> list:
    """Each flow's shortest live path by delay (scipy Dijkstra from every source at once: on
    ``as:5000`` networkx, source by source, took ~40 s a step), or None when it is cut off."""
    if not flows:
        return []
    live = nx.Graph()
    live.add_nodes_from(r for r in kg.topology.nodes if r not in down_routers)
    live.add_edges_from((u, v, d) for u, v, d in kg.topology.edges(data=True)
                        if u in live and v in live and d["id"] not in down_links)
    sources = sorted({a["path"][0] for a in flows if a["path"][0] in live})
    if not sources:
        return [None] * len(flows)
    index, dist, pred = shortest_paths(live, sources)
    nodes = list(live.nodes)
    row = {s: i for i, s in enumerate(sources)}
    out = []
    for a in flows:
        s, d = a["path"][0], a["path"][-1]
        if s not in row or d not in index or not math.isfinite(dist[row[s], index[d]]):
            out.append(None)
            continue
        out.append(walk(pred[row[s]], index[s], index[d], nodes))
    return out


def taken_down(kg: KnowledgeGraph, events) -> tuple[set[str], set[str]]:
    """The routers and links the events take down, by each event type's own effect (an SRLG
    failure: its links; a power outage: every router in its radius); events that only degrade
    or load an element leave the paths as they are."""
    routers: set[str] = set()
    links: set[str] = set()
    for e in events:
        if event_types.get(e.event_type).effect_kinds & {"links_down", "routers_down"}:
            effect = event_types.effect_of(kg, e)
            routers |= effect.routers_down
            links |= effect.links_down
    return routers, links


def neighbourhood(kg: KnowledgeGraph, events, focus=()) -> set[str]:
    """Names near the events' targets (and the ``focus`` targets): their routers and links,
    the routers' neighbours and links, and links sharing a risk group with any of those links."""
    topo = kg.topology
    routers: set[str] = set()
    links: set[str] = set()
    for t in [e.target for e in events] + list(focus):
        if kg.has("link", t):
            links.add(t)
            routers |= set(kg.link_ends(t))
        elif kg.has("router", t):
            routers.add(t)
        elif kg.has("srlg", t):
            for l in kg.attrs("srlg", t)["links"]:
                links.add(l)
                routers |= set(kg.link_ends(l))
    for r in list(routers):
        for n in topo.neighbors(r):
            routers.add(n)
            links.add(topo.edges[r, n]["id"])
    srlgs = {s.removeprefix("srlg:") for l in links for s in kg.related(nid("link", l), "shares_risk")}
    for s in srlgs:
        links |= set(kg.attrs("srlg", s)["links"])
    return routers | links | srlgs


def shortlist(kg: KnowledgeGraph, options: dict[str, list[str]], events=(), *, seed: int = 0,
              limit: int = DEFAULT_LIMIT, use_kg: bool = True, focus=()) -> Shortlist:
    """At most ``limit`` of the admissible ``options`` ({event type: [targets]}). ``focus``:
    targets that hurt before (the feedback's worst scenarios); they and their surroundings
    count as the neighbourhood."""
    total = sum(len(v) for v in options.values())
    if total <= limit:
        return Shortlist(by_criticality(kg, options, events) if use_kg else dict(options), total, {"all": total})
    rng = random.Random(f"shortlist:{seed}:{len(events)}")
    budget = max(1, limit // max(1, len(options)))
    near = neighbourhood(kg, events, focus) if (use_kg and (events or focus)) else set()
    score = scores(kg, events) if use_kg else {}
    counts = {"neighbourhood": 0, "critical": 0, "explore": 0}
    out: dict[str, list[str]] = {}
    for et, targets in options.items():
        if len(targets) <= budget:
            out[et] = list(targets)
            counts["critical"] += len(targets)
            continue
        if not use_kg:
            out[et] = rng.sample(list(targets), budget)
            counts["explore"] += budget
            continue
        s = score.get(event_types.get(et).target_kind, {})
        ranked = sorted(targets, key=lambda t: (-s.get(t, 0.0), t))
        n_near = math.ceil(budget * NEIGHBOUR_SHARE) if near else 0
        n_explore = max(1, math.floor(budget * EXPLORE_SHARE)) if budget >= 4 else 0
        chosen = [t for t in ranked if t in near][:n_near]
        counts["neighbourhood"] += len(chosen)
        taken = set(chosen)
        crit = [t for t in ranked if t not in taken][:budget - len(chosen) - n_explore]
        counts["critical"] += len(crit)
        taken |= set(crit)
        rest = [t for t in targets if t not in taken]
        extra = rng.sample(rest, min(len(rest), budget - len(taken)))
        counts["explore"] += len(extra)
        out[et] = chosen + crit + extra
    return Shortlist(by_criticality(kg, out, events) if use_kg else out, total, counts)


def by_criticality(kg: KnowledgeGraph, options: dict[str, list[str]], events=()) -> dict[str, list[str]]:
    """``options`` most critical first: each type's targets by :func:`scores`, and the types by
    their most critical target. The prompt lists them in this order, and a small model leans
    on the order it is shown (SmolLM2-135M, 20 draws on Geant2012's first step: with the types
    in their registry order it wrote fiber_link_failure 11 times in 20; with router_failure —
    holding DE, 61 % of the demand — listed first, router_failure 20 times in 20)."""
    score = scores(kg, events)

    def of(et: str) -> dict[str, float]:
        return score.get(event_types.get(et).target_kind, {})

    ranked = {et: sorted(ts, key=lambda t, s=of(et): (-s.get(t, 0.0), t)) for et, ts in options.items()}
    return dict(sorted(ranked.items(), key=lambda kv: -max((of(kv[0]).get(t, 0.0) for t in kv[1]), default=0.0)))
