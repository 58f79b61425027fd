"""Causal state of a scenario as its events fire, and the events admissible next.

:class:`CausalState` replays events in time order over a knowledge graph: what is down,
degraded, overloaded or misconfigured at each moment (events with ``duration_s`` recover),
and each applied event's *footprint* — the routers it acts on, its SRLGs, and the routers
and links on the paths of the flows it affects. The causal validator
(:mod:`harness.scenario.validate`) and constrained generation both use it, so "valid" means
the same thing everywhere. See the validator's docstring for the rules themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx

from harness.kg.model import KnowledgeGraph, nid, split
from harness.kg.query import blast_radius as element_blast_radius
from harness.kg.query import dependents
from harness.scenario import types
from harness.scenario.events.base import R2, R5

#: id(kg) -> (kg, {event key: Footprint}); the kg is kept so its id cannot be reused while cached.
_FOOTPRINTS: dict[int, tuple[KnowledgeGraph, dict]] = {}
_FOOTPRINT_GRAPHS = 8

# Rule identifiers, shared with the validator (R2 and R5 are raised by the event types).
R1, R3, R4 = "R1-target", "R3-time", "R4-causal"


@dataclass(frozen=True)
class Footprint:
    routers: frozenset[str]
    srlgs: frozenset[str]
    elements: frozenset[str]        # node ids acted on
    flow_elements: frozenset[str]   # node ids on the paths of the flows it affects


@dataclass
class CausalState:
    kg: KnowledgeGraph
    time: float = 0.0
    down_links: dict[str, float] = field(default_factory=dict)     # link -> recovery time
    down_routers: dict[str, float] = field(default_factory=dict)
    #: (event type, target) -> end, for types with a ``condition`` (overloaded, degraded, ...)
    conditions: dict[tuple[str, str], float] = field(default_factory=dict)
    footprints: list[Footprint] = field(default_factory=list)
    _cache: tuple | None = field(default=None, repr=False)
    _components: tuple | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ time and liveness
    def advance(self, t: float) -> None:
        """Move to time ``t``: elements whose effect has ended recover."""
        self.time = max(self.time, t)
        for table in (self.down_links, self.down_routers, self.conditions):
            for k in [k for k, end in table.items() if end <= self.time]:
                del table[k]

    def router_alive(self, r: str) -> bool:
        return r not in self.down_routers

    def link_alive(self, link: str) -> bool:
        u, v = self.kg.link_ends(link)
        return link not in self.down_links and self.router_alive(u) and self.router_alive(v)

    def live_topology(self) -> nx.Graph:
        topo = self.kg.topology
        return nx.subgraph_view(topo, filter_node=self.router_alive,
                                filter_edge=lambda u, v: self.link_alive(topo.edges[u, v]["id"]))

    # ------------------------------------------------------------------ checks
    def target_problems(self, kind: str, target: str) -> list[tuple[str, str]]:
        """Rule 2 for a target of ``kind``: is it alive now?"""
        if kind == "link":
            if target in self.down_links:
                return [(R2, f"link {target} is already down")]
            if not self.link_alive(target):
                return [(R2, f"link {target} is down because an endpoint router is down")]
        elif kind == "srlg":
            if not any(self.link_alive(l) for l in self.kg.attrs("srlg", target)["links"]):
                return [(R2, f"every link of {target} is already down")]
        elif not self.router_alive(target):
            return [(R2, f"router {target} is already down")]
        return []

    def in_condition(self, event_type: str, target: str) -> bool:
        """Is ``target`` still in the state an earlier ``event_type`` event put it in?"""
        return (event_type, target) in self.conditions

    def check(self, event_type: str, target: str, params: dict) -> list[tuple[str, str]]:
        """Rule-2 and rule-5 problems of firing this event now: ``[(rule, message)]``."""
        return types.get(event_type).check(self, target, params)

    def components(self) -> tuple[dict[str, int], list[int]]:
        """The live network's connected components: router -> component index, and the sizes.
        Computed once per set of down elements (one pass over the graph), so rule 5 costs a
        lookup per candidate instead of a search (as:5000: 250 s -> well under a second for
        every surge/DDoS target)."""
        key = (frozenset(self.down_links), frozenset(self.down_routers))
        if self._components is None or self._components[0] != key:
            index: dict[str, int] = {}
            sizes: list[int] = []
            for comp in nx.connected_components(self.live_topology()):
                for r in comp:
                    index[r] = len(sizes)
                sizes.append(len(comp))
            self._components = (key, (index, sizes))
        return self._components[1]

    def reach_problems(self, target: str, sources: list[str]) -> list[tuple[str, str]]:
        """Rule 5: can the sources (default: any other router) reach ``target`` now?"""
        index, sizes = self.components()
        problems = []
        for s in sources:
            if not self.router_alive(s):
                problems.append((R2, f"source router {s} is down"))
            elif index.get(s) is None or index.get(s) != index.get(target):
                problems.append((R5, f"source {s} cannot reach {target} through the network as it stands"))
        if not sources and (index.get(target) is None or sizes[index[target]] < 2):
            problems.append((R5, f"no router can reach {target} through the network as it stands"))
        return problems

    def footprint(self, event_type: str, target: str, params: dict) -> Footprint:
        """What the event acts on; memoised per knowledge graph (it depends on nothing else)."""
        key = (event_type, target, repr(sorted(params.items())))
        if id(self.kg) not in _FOOTPRINTS and len(_FOOTPRINTS) >= _FOOTPRINT_GRAPHS:
            _FOOTPRINTS.pop(next(iter(_FOOTPRINTS)))
        memo = _FOOTPRINTS.setdefault(id(self.kg), (self.kg, {}))[1]
        if key not in memo:
            memo[key] = self._footprint(event_type, target, params)
        return memo[key]

    def _footprint(self, event_type: str, target: str, params: dict) -> Footprint:
        kg = self.kg
        etype = types.get(event_type)
        elements = etype.touched(kg, target, params)
        routers: set[str] = set()
        for e in elements:
            kind, name = split(e)
            routers |= set(kg.link_ends(name)) if kind == "link" else {name}
        for key in etype.router_params:
            value = params.get(key)
            if value:
                routers |= {value} if isinstance(value, str) else set(value)
        srlgs = {s for e in elements if e.startswith("link:") for s in kg.related(e, "shares_risk")}
        if etype.target_kind == "srlg":
            srlgs.add(nid("srlg", target))
        flow_elements: set[str] = set()
        for e in elements:
            for d in dependents(kg, e):
                if d.startswith("flow:"):
                    a = kg.graph.nodes[d]
                    flow_elements |= {nid("link", l) for l in a["links"]} | {nid("router", r) for r in a["path"]}
        return Footprint(frozenset(routers), frozenset(srlgs), frozenset(elements), frozenset(flow_elements))

    def connected(self, fp: Footprint) -> bool:
        """Rule 4: is this footprint causally connected to an earlier event's?"""
        if not self.footprints:
            return True
        near, srlgs, flow_elements = self._union()
        return bool(fp.routers & near or fp.srlgs & srlgs or fp.elements & flow_elements)

    def _union(self) -> tuple[set[str], set[str], set[str]]:
        """Routers (with their neighbours), SRLGs and flow-path elements of all footprints."""
        if self._cache and self._cache[0] == len(self.footprints):
            return self._cache[1]
        near: set[str] = set()
        srlgs: set[str] = set()
        flow_elements: set[str] = set()
        topo = self.kg.topology
        for f in self.footprints:
            near |= f.routers
            srlgs |= f.srlgs
            flow_elements |= f.flow_elements
        for r in list(near):
            near.update(topo.neighbors(r))
        self._cache = (len(self.footprints), (near, srlgs, flow_elements))
        return self._cache[1]

    # ------------------------------------------------------------------ apply
    def apply(self, event_type: str, target: str, end: float, params: dict) -> None:
        """Record the event's effect until ``end`` and its footprint."""
        self.footprints.append(self.footprint(event_type, target, params))
        etype = types.get(event_type)
        if etype.effect_kinds & {"links_down", "routers_down"}:   # only removals need their effect here
            effect = etype.effect(self.kg, target, params)
            for link in effect.links_down:   # an element already down stays down the longer time
                self.down_links[link] = max(self.down_links.get(link, end), end)
            for r in effect.routers_down:
                self.down_routers[r] = max(self.down_routers.get(r, end), end)
        if etype.condition:
            self.conditions[(event_type, target)] = end


def admissible_events(kg: KnowledgeGraph, events=(), *, at: float | None = None,
                      event_types: list[str] | None = None, allow_independent: bool = False) -> dict[str, list[str]]:
    """Which ``{event_type: [targets]}`` may fire next, given the events already applied.

    ``events`` are validated :class:`~harness.scenario.model.Event` objects (or dicts with
    the same fields) already in the scenario; ``at`` is when the next event fires (default:
    the last event's timestamp). A target is admissible when it exists (rule 1), is alive
    then (rule 2), is causally connected to an earlier event (rule 4, unless
    ``allow_independent``) and, for surges and DDoS, reachable (rule 5, with default
    sources). Types with no admissible target are left out.
    """
    state = replay(kg, events)
    last = max((_get(e, "timestamp") for e in events), default=0.0)
    state.advance(last if at is None else at)
    out: dict[str, list[str]] = {}
    for et in (event_types or types.names()):
        kind = types.get(et).target_kind
        candidates = kg.names(kind)
        ok = []
        for target in candidates:
            if state.check(et, target, {}):
                continue
            if not allow_independent and state.footprints and not state.connected(state.footprint(et, target, {})):
                continue
            ok.append(target)
        if ok:
            out[et] = ok
    return out


def replay(kg: KnowledgeGraph, events) -> CausalState:
    """A :class:`CausalState` with ``events`` (assumed valid) applied in order."""
    state = CausalState(kg)
    for e in events:
        t = _get(e, "timestamp")
        state.advance(t)
        d = _get(e, "duration_s")
        state.apply(_get(e, "event_type"), _get(e, "target"), t + d if d else math.inf, _get(e, "params") or {})
    return state


def _get(e, key):
    return e.get(key) if isinstance(e, dict) else getattr(e, key)


def blast_radius(kg: KnowledgeGraph, events) -> dict[str, list[str]]:
    """What ``events`` (Event objects or dicts with ``event_type``, ``target`` and optionally
    ``params``) touch, structurally — see :func:`harness.kg.query.blast_radius`."""
    elements: set[str] = set()
    for e in events:
        elements |= types.get(_get(e, "event_type")).touched(kg, _get(e, "target"), _get(e, "params") or {})
    return element_blast_radius(kg, elements)
