"""The numeric core of the flow-level twin: routed demands -> loads, loss, delay, cascades.

A pure engine: :func:`build` takes a topology (the *topology contract* of
:mod:`harness.topology.load`) and a list of :class:`Demand`, precomputes indices and the
baseline, and returns a :class:`FlowEngine`; :meth:`FlowEngine.evaluate` takes a
:class:`NetState` (what events and mitigations did to the network) and returns an
:class:`Outcome` of plain columnar arrays keyed by demand, link and router ids.
Nothing is printed, inputs are not mutated, no I/O happens.

What is modelled (exactly)
--------------------------
Routing
    Hop-by-hop shortest-path forwarding towards each destination, as a link-state IGP
    does. Link weight is ``delay_ms`` (``EngineConfig.weight="delay"``) or 1
    (``"hops"``). Router ``u`` forwards traffic for destination ``t`` to every
    neighbour ``v`` with ``d(u,t) == w(u,v) + d(v,t)`` within
    ``EngineConfig.ecmp_tolerance`` (ECMP), and splits it **equally among those next
    hops at every router** (per-hop equal split, as OSPF/IS-IS ECMP does; not split by
    path counts). With ``ecmp=False`` only the next hop with the smallest router index
    (the order of ``topology.nodes``) is used. Distances are recomputed after failures.
    Traffic with no route is *unreachable* and lost.
Failures
    A failed link carries nothing in either direction; a failed router carries nothing
    and every incident link is down. Demands from or to a failed router are unreachable.
Avoid-links mitigation
    Each avoided link's weight is raised by a penalty larger than the sum of all link
    weights, so it is used only when no other path exists.
Load-aware mitigation (``NetState.load_aware``)
    One best-response re-routing step: after routing and loading the network, every
    link whose utilisation is above ``EngineConfig.load_aware_threshold`` gets its
    weight multiplied by ``1 + load_aware_penalty * utilisation``; traffic crossing
    such links is re-routed once with those weights (no further iteration, so it can
    still leave or shift congestion).
Misconfiguration
    *Blackhole* ``r -> dsts``: traffic for those destinations (``None`` = every
    destination) that reaches router ``r`` is dropped there (including traffic ``r``
    originates; traffic *terminating* at ``r`` is still delivered). *Wrong next hop*
    ``r -> (dsts, y)``: traffic for those destinations reaching ``r`` is sent to
    neighbour ``y`` whatever the IGP says; from ``y`` normal forwarding continues. Traffic
    that returns to a misconfigured router it has already passed is in a forwarding loop
    and lost (ECMP hashing is per flow, so a flow that loops once loops for ever). A
    wrong next hop over a failed link is ignored (a static route whose interface is down
    is withdrawn). Looping traffic loads each link of the loop **once** (a real loop
    multiplies load up to the TTL; that amplification is not modelled).
Load
    Links are full duplex: each direction has the link's capacity and its own load.
    Link *utilisation* and *loss* reported per link are the max over the two
    directions. Loads are **offered** loads: every demand's admitted rate is counted on
    every link and router of its route(s), i.e. traffic dropped upstream still loads
    downstream elements (conservative; no fixed point over loss). Router load is the
    traffic a router handles: every demand counts once at every router on its route,
    source and destination included.
Capacity
    ``link capacity = capacity_mbps * link_capacity_factor + extra_capacity`` (each
    direction). Router forwarding capacity is ``EngineConfig.router_capacity`` (default:
    sum of the nominal capacities of its incident links) ``* router_capacity_factor``.
Loss
    An element with load above capacity drops the overload fraction
    ``1 - capacity/load`` of every flow crossing it. A degraded link additionally drops
    ``link_loss`` (random loss) in each direction. Survival compounds multiplicatively
    along a route; with ECMP the delivered fraction is the exact split-weighted sum
    over routes. A demand's ``delivered_fraction`` is relative to its offered rate and
    includes rate limiting, misconfiguration drops, unreachability and element loss.
Latency
    Mean over the ECMP split of, per link, propagation ``delay_ms`` plus an M/M/1 sojourn
    time with mean packet ``EngineConfig.packet_bytes`` (default 1000 B):
    ``mu = capacity*1e6 / (8*packet_bytes)`` packets/s, ``lambda`` likewise from the
    load, ``d_q = 1000/(mu - lambda)`` ms, capped at ``queue_cap_ms`` (default 50 ms, a
    full buffer) and equal to the cap when ``lambda >= mu``. Routers add no delay.
    For a demand only partly routed (a blackhole or loop on some ECMP branches) the
    mean is over the routed part. ``NaN`` for demands with no route at all.
Cascades (Motter–Lai)
    Tolerance of an element = ``max((1 + alpha) * baseline_load,
    cascade_floor * current_capacity)``; with the default ``cascade_floor=1.0`` an
    element never trips while it is within its capacity. After the injected events,
    every live element whose load exceeds its tolerance fails; routing and loads are
    recomputed; this repeats until no new element fails (or ``max_cascade_rounds``).
    ``cascade_rounds`` counts rounds that induced failures. Link load here is the max of
    the two directions; an induced router failure takes all its links down. Loads include
    surge/attack demands (after rate limits). Loss and latency are those of the fixed
    point, i.e. of the network after the cascade.
Rate limiting
    ``rate_limit[r]`` caps the total admitted rate of demands originating at ``r``.
    The excess is cut from the attack/surge demands (``extra_demands``) first, in
    proportion to their rates, then from the regular demands in proportion. Rate limits
    apply before routing; the cut counts in the demand's ``delivered_fraction``.
Baseline
    ``FlowEngine.baseline`` is ``evaluate(NetState())``; ``path_changed`` compares a
    demand's route fractions with it (extra demands have no baseline: ``False``).

What is *not* modelled: TCP congestion control (flows do not back off), packet-level
dynamics and transients, router processing delay, convergence time, BGP policy,
buffers shared between ports, per-flow hashing imbalance (ECMP splits are exact
fractions), loss reducing downstream load (see *Load*).

Performance
-----------
:func:`build` routes every demand once and stores a sparse demand x element matrix of
route fractions (elements = 2 arcs per link, then routers) and the baseline loads.
:meth:`FlowEngine.evaluate` re-routes only the demands whose baseline route crosses a
changed element (failed link or router, avoided link, router misconfigured for the
demand's destination) and the extra demands; a state touching no route needs no routing
at all (one sparse mat-vec, then the vectorised KPI arithmetic). A cascade round
re-routes only the demands whose current route crosses an element induced by the
previous round (failures only lengthen other paths, so a route avoiding them keeps its
distances and next hops) plus those diverted by a misconfiguration (their route also
depends on the IGP path they were diverted from); a load-aware step re-routes those
crossing a penalised link. For each destination of the re-routed demands one scipy
Dijkstra (C) runs **on the 2-core of the topology only**: routers in trees hanging off
the core (about 60% of an ``as:N`` graph) get their distance through their attachment
router, and routers in the destination's own branch by a short tree walk. Forwarding is
then vectorised over all re-routed demands at once (numpy): the next hops of every
(destination, router) pair are found in one array operation (on large graphs, only for
the routers reached), and each demand's unit mass is pushed hop by hop through its
destination's next-hop DAG with the per-hop equal split, so the cost grows with the hop
count of the longest route rather than with the number of demands. Demands whose DAG
reaches a router misconfigured for their destination are re-done by an exact
per-demand walk (~0.1-0.3 ms each) that follows the misconfiguration and detects loops;
the results of the two paths agree to rounding (summation order), which
``tests/test_flow_engine.py`` checks against the walk. Typical figures on a 2-core
machine: ``benchmarks/sweep.py`` (all 181 single link cuts of ``topozoo/TataNld``, 2000
demands) ~0.9-1.3 s, i.e. ~3-5 ms per cut without cascade and ~6-10, 11-18 and 20-30
ms with a cascade of depth 1, 2 and 3 (the per-demand walk took ~4.5 s);
``benchmarks/flow_engine.py`` (``as:5000``, 2000 demands, two failed links) median
~16 ms, max ~55 ms, most of it Dijkstra (~0.4 ms per re-routed destination). An engine
keeps per-call scratch state: do not call :meth:`~FlowEngine.evaluate` on one engine
from several threads at once.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from harness.errors import ConfigError, TopologyError
from harness.topology.load import link_id

__all__ = ["Demand", "NetState", "EngineConfig", "Outcome", "FlowEngine", "build"]


@dataclass(frozen=True)
class Demand:
    """A traffic demand of ``mbps`` from router ``src`` to router ``dst``."""

    src: str
    dst: str
    mbps: float
    id: str


@dataclass(frozen=True)
class NetState:
    """What events and mitigations did to the network (every field optional).

    Link ids are canonical ``A-B`` ids (:func:`harness.topology.link_id`).
    """

    failed_links: frozenset[str] = frozenset()
    failed_routers: frozenset[str] = frozenset()
    link_capacity_factor: Mapping[str, float] = field(default_factory=dict)
    link_loss: Mapping[str, float] = field(default_factory=dict)
    router_capacity_factor: Mapping[str, float] = field(default_factory=dict)
    extra_demands: tuple[Demand, ...] = ()
    blackhole: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    wrong_next_hop: Mapping[str, tuple[frozenset[str] | None, str]] = field(default_factory=dict)
    rate_limit: Mapping[str, float] = field(default_factory=dict)
    extra_capacity: Mapping[str, float] = field(default_factory=dict)
    avoid_links: frozenset[str] = frozenset()
    load_aware: bool = False


@dataclass(frozen=True)
class EngineConfig:
    """Engine options (unknown keyword arguments are refused by the dataclass).

    ``weight``               ``"delay"`` (link ``delay_ms``) or ``"hops"`` (1 per link)
    ``ecmp``                 split equally over equal-cost next hops (else lowest router index)
    ``ecmp_tolerance``       two path costs within this (weight units) are equal (1e-6)
    ``cascade``              run Motter–Lai overload cascades (True)
    ``alpha``                Motter–Lai tolerance parameter (0.5)
    ``cascade_floor``        tolerance is never below this x current capacity (1.0)
    ``max_cascade_rounds``   stop a cascade after this many rounds (50)
    ``packet_bytes``         mean packet size of the M/M/1 queue (1000 B)
    ``queue_cap_ms``         queueing delay cap, also the delay of a saturated link (50 ms)
    ``router_capacity``      forwarding capacity: one number, ``{router: mbps}`` (others get
                             the default) or ``None`` = sum of incident link capacities
    ``load_aware_threshold`` utilisation above which load-aware routing penalises a link (0.8)
    ``load_aware_penalty``   weight multiplier is ``1 + penalty * utilisation`` (4.0)
    """

    weight: str = "delay"  # "delay" | "hops"
    ecmp: bool = True
    ecmp_tolerance: float = 1e-6  # in weight units
    cascade: bool = True
    alpha: float = 0.5
    cascade_floor: float = 1.0
    max_cascade_rounds: int = 50
    packet_bytes: float = 1000.0
    queue_cap_ms: float = 50.0
    router_capacity: float | Mapping[str, float] | None = None
    load_aware_threshold: float = 0.8
    load_aware_penalty: float = 4.0

    def __post_init__(self):
        if self.weight not in ("delay", "hops"):
            raise ConfigError(f"EngineConfig.weight must be 'delay' or 'hops', not {self.weight!r}")
        if self.alpha < 0 or self.cascade_floor < 0:
            raise ConfigError("EngineConfig.alpha and cascade_floor must be >= 0")
        if self.packet_bytes <= 0 or self.queue_cap_ms <= 0 or self.ecmp_tolerance < 0:
            raise ConfigError("EngineConfig.packet_bytes and queue_cap_ms must be > 0, ecmp_tolerance >= 0")


@dataclass(frozen=True, eq=False)
class Outcome:
    """Result of one evaluation, as columnar arrays aligned with the id tuples.

    Demands: ``demand_ids`` (base demands, then ``extra_demands``) with
    ``offered_mbps``, ``admitted_mbps`` (after rate limits), ``routed_fraction`` (share of
    the admitted traffic that routing brings to the destination, ignoring element
    loss), ``reachable`` (``routed_fraction > 0``), ``delivered_fraction`` and
    ``loss_fraction`` (of offered), ``latency_ms`` and ``path_changed`` (route differs
    from the baseline; always ``False`` for extra demands).
    Links: ``link_ids`` with ``link_load_fwd``/``link_load_rev`` (direction ``A->B`` /
    ``B->A`` of id ``A-B``), ``link_load_mbps`` (max direction), ``link_capacity_mbps``
    (per direction, after degradation and extra capacity), ``link_utilisation``,
    ``link_loss`` (max direction), ``link_failed``.
    Routers: ``router_ids`` with ``router_load_mbps``, ``router_capacity_mbps``,
    ``router_utilisation``, ``router_loss``, ``router_failed``.
    ``failed_links``/``failed_routers`` include induced failures (``failed_links`` also
    every link of a failed router);
    ``induced_links[i]``/``induced_routers[i]`` are those induced in cascade round i+1.
    """

    demand_ids: tuple[str, ...]
    offered_mbps: np.ndarray
    admitted_mbps: np.ndarray
    routed_fraction: np.ndarray
    reachable: np.ndarray
    delivered_fraction: np.ndarray
    loss_fraction: np.ndarray
    latency_ms: np.ndarray
    path_changed: np.ndarray
    link_ids: tuple[str, ...]
    link_load_fwd: np.ndarray
    link_load_rev: np.ndarray
    link_load_mbps: np.ndarray
    link_capacity_mbps: np.ndarray
    link_utilisation: np.ndarray
    link_loss: np.ndarray
    link_failed: np.ndarray
    router_ids: tuple[str, ...]
    router_load_mbps: np.ndarray
    router_capacity_mbps: np.ndarray
    router_utilisation: np.ndarray
    router_loss: np.ndarray
    router_failed: np.ndarray
    failed_links: frozenset[str]
    failed_routers: frozenset[str]
    induced_links: tuple[tuple[str, ...], ...]
    induced_routers: tuple[tuple[str, ...], ...]
    cascade_rounds: int
    timing: dict
    _fractions: sp.csr_matrix = field(repr=False)
    _n_arcs: int = field(repr=False)

    def paths(self, demand_id: str) -> dict[str, float]:
        """Link id -> fraction of the demand's admitted traffic sent over that link."""
        i = self.demand_ids.index(demand_id)
        row = self._fractions.getrow(i)
        out: dict[str, float] = {}
        for col, frac in zip(row.indices, row.data):
            if col < self._n_arcs:
                lid = self.link_ids[col // 2]
                out[lid] = out.get(lid, 0.0) + float(frac)
        return out

    def demand(self, demand_id: str) -> dict:
        """One demand's figures as a plain dict."""
        i = self.demand_ids.index(demand_id)
        return {
            "id": demand_id,
            "offered_mbps": float(self.offered_mbps[i]),
            "admitted_mbps": float(self.admitted_mbps[i]),
            "routed_fraction": float(self.routed_fraction[i]),
            "reachable": bool(self.reachable[i]),
            "delivered_fraction": float(self.delivered_fraction[i]),
            "loss_fraction": float(self.loss_fraction[i]),
            "latency_ms": float(self.latency_ms[i]),
            "path_changed": bool(self.path_changed[i]),
            "paths": self.paths(demand_id),
        }

    def link(self, lid: str) -> dict:
        """One link's figures as a plain dict."""
        i = self.link_ids.index(lid)
        return {
            "id": lid,
            "load_mbps": float(self.link_load_mbps[i]),
            "load_fwd": float(self.link_load_fwd[i]),
            "load_rev": float(self.link_load_rev[i]),
            "capacity_mbps": float(self.link_capacity_mbps[i]),
            "utilisation": float(self.link_utilisation[i]),
            "loss": float(self.link_loss[i]),
            "failed": bool(self.link_failed[i]),
        }

    def router(self, rid: str) -> dict:
        """One router's figures as a plain dict."""
        i = self.router_ids.index(rid)
        return {
            "id": rid,
            "load_mbps": float(self.router_load_mbps[i]),
            "capacity_mbps": float(self.router_capacity_mbps[i]),
            "utilisation": float(self.router_utilisation[i]),
            "loss": float(self.router_loss[i]),
            "failed": bool(self.router_failed[i]),
        }


# --------------------------------------------------------------------------- walks


@dataclass
class _Walk:
    """One demand's route: offered fraction per element and a replayable program."""

    elems: dict  # element index -> offered fraction
    routed: float  # fraction that reaches the destination (no element loss)
    steps: list  # (from_state, arc, to_state, share) in topological order
    start: tuple
    simple: bool  # a single loop-free path with routed == 1


class _Ctx:
    """Everything a walk needs for one routing configuration (Python lists for speed)."""

    __slots__ = ("w", "alive", "blackhole", "wnh", "ecmp", "tol", "alive_np", "w_np", "alive_router",
                 "alive_np_router", "core_graph", "d_root")


class _Routes:
    """Routes of all demands under one routing configuration.

    ``F``: demand x element route fractions (CSR, sorted indices; elements = 2 arcs per
    link, then routers); ``routed``/``simple``: per demand, as in :class:`_Walk`;
    ``slow``: ``{row: _Walk}`` for the rows routed by the exact walk (misconfiguration).
    """

    __slots__ = ("F", "routed", "simple", "slow")

    def __init__(self, F, routed, simple, slow):
        self.F, self.routed, self.simple, self.slow = F, routed, simple, slow


def _walk(eng: "FlowEngine", s: int, t: int, ctx: _Ctx, dist_t, dnp: np.ndarray) -> _Walk:
    """Follow ``s``'s traffic for ``t`` hop by hop (``dist_t``/``dnp``: distances to ``t``)."""
    n_arcs = eng._n_arcs
    elems: dict = {}
    start = (s, frozenset())
    if dist_t is None or not math.isfinite(dist_t[s]):
        return _Walk({}, 0.0, [], start, False)
    frac = {start: 1.0}
    heap = [(0, -dist_t[s], 0, start)]
    seq = 1
    routed = 0.0
    steps = []
    simple = True
    adj, hubs = eng._adj, eng._hub_arcs
    w, alive, tol = ctx.w, ctx.alive, ctx.tol
    bh, wnh = ctx.blackhole, ctx.wnh
    while heap:
        _, _, _, key = heapq.heappop(heap)
        f = frac[key]
        u, S = key
        if u in S:  # came back to a misconfigured router: forwarding loop
            simple = False
            continue
        ri = n_arcs + u
        elems[ri] = elems.get(ri, 0.0) + f
        if u == t:
            routed += f
            continue
        if u in bh and (bh[u] is None or t in bh[u]):
            simple = False
            continue
        nxt = None
        if u in wnh:
            dsts, y, arc = wnh[u]
            if (dsts is None or t in dsts) and alive[arc]:
                nxt = [(y, arc)]
                S2 = S | {u}
        if nxt is None:
            S2 = S
            du = dist_t[u]
            if u in hubs:  # vectorised next-hop test on high-degree routers
                a = hubs[u]
                hit = a[ctx.alive_np[a] & (np.abs(du - ctx.w_np[a] - dnp[eng._head[a]]) <= tol)].tolist()
                if not ctx.ecmp:
                    hit = hit[:1]
                hl = eng._head_l
                nxt = [(hl[arc], arc) for arc in hit]
            else:
                nxt = []
                for v, arc in adj[u]:
                    if alive[arc] and abs(du - w[arc] - dist_t[v]) <= tol:
                        nxt.append((v, arc))
                        if not ctx.ecmp:
                            break
            if not nxt:
                simple = False
                continue
        share = 1.0 / len(nxt)
        if len(nxt) > 1:
            simple = False
        for v, arc in nxt:
            k2 = (v, S2)
            elems[arc] = elems.get(arc, 0.0) + f * share
            steps.append((key, arc, k2, share))
            if k2 in frac:
                frac[k2] += f * share
            else:
                frac[k2] = f * share
                heapq.heappush(heap, (len(S2), -dist_t[v], seq, k2))
                seq += 1
    return _Walk(elems, routed, steps, start, simple and routed > 0)


def _replay(walk: _Walk, t: int, surv_arc, surv_router, arc_delay) -> tuple[float, float]:
    """Exact delivered fraction and mean latency of the delivered traffic of a walk."""
    frac = {walk.start: surv_router[walk.start[0]]}
    lat = {walk.start: 0.0}  # traffic-weighted sum of latency arriving at each state
    for src, arc, dst, share in walk.steps:
        if src[0] in src[1]:
            continue
        f = frac.get(src, 0.0)
        g = f * share * surv_arc[arc] * surv_router[dst[0]]
        frac[dst] = frac.get(dst, 0.0) + g
        lat[dst] = lat.get(dst, 0.0) + lat.get(src, 0.0) * share * surv_arc[arc] * surv_router[dst[0]] + g * arc_delay[arc]
    got = sum(f for (u, S), f in frac.items() if u == t and u not in S)
    ls = sum(lat[k] for k in frac if k[0] == t and t not in k[1])
    return got, (ls / got if got > 0 else math.nan)


# --------------------------------------------------------------------------- engine


class FlowEngine:
    """A built engine: topology indices, baseline routing and loads. Use :func:`build`."""

    def __init__(self, topology: nx.Graph, demands: list[Demand], config: EngineConfig):
        self.config = config
        if topology.number_of_nodes() == 0 or not nx.is_connected(topology):
            raise TopologyError("the flow engine needs a non-empty, connected topology (the topology contract)")
        self.router_ids = tuple(topology.nodes)
        self._ridx = {r: i for i, r in enumerate(self.router_ids)}
        n = len(self.router_ids)
        edges = []
        for u, v, d in topology.edges(data=True):
            a, b = sorted((u, v))
            edges.append((link_id(a, b), a, b, d))
        edges.sort(key=lambda e: e[0])
        self.link_ids = tuple(e[0] for e in edges)
        self._lidx = {lid: i for i, lid in enumerate(self.link_ids)}
        m = len(edges)
        self._n_arcs = 2 * m
        tail = np.empty(2 * m, dtype=np.int64)
        head = np.empty(2 * m, dtype=np.int64)
        delay = np.empty(m)
        cap = np.empty(m)
        for i, (_, a, b, d) in enumerate(edges):
            tail[2 * i], head[2 * i] = self._ridx[a], self._ridx[b]
            tail[2 * i + 1], head[2 * i + 1] = self._ridx[b], self._ridx[a]
            try:
                delay[i] = float(d["delay_ms"])
                cap[i] = float(d["capacity_mbps"])
            except (KeyError, TypeError, ValueError):
                raise TopologyError(f"link {edges[i][0]} lacks a numeric delay_ms or capacity_mbps") from None
            if delay[i] <= 0 or cap[i] < 0:
                raise TopologyError(f"link {edges[i][0]}: delay_ms must be > 0 and capacity_mbps >= 0")
        self._tail, self._head = tail, head
        self._cap_link = cap
        self._delay_arc = np.repeat(delay, 2)
        self._w_link = delay.copy() if config.weight == "delay" else np.ones(m)
        self._head_l = head.tolist()
        self._tail_l = tail.tolist()
        self._avoid_penalty = float(self._w_link.sum()) + 1.0
        self._adj = [[] for _ in range(n)]
        for arc in range(2 * m):
            self._adj[tail[arc]].append((int(head[arc]), arc))
        for lst in self._adj:
            lst.sort()
        #: arcs out of high-degree routers, in adjacency order, for vectorised next hops
        #: adjacency as CSR (arcs by tail, then head), for vectorised next hops
        self._adj_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(lst) for lst in self._adj], out=self._adj_ptr[1:])
        self._adj_arc = np.array([arc for lst in self._adj for _, arc in lst], dtype=np.int64)
        self._adj_tail, self._adj_head = tail[self._adj_arc], head[self._adj_arc]
        self._hub_arcs = {
            u: np.array([arc for _, arc in lst], dtype=np.int64) for u, lst in enumerate(self._adj) if len(lst) > 24
        }
        self._init_core(topology)
        rc = config.router_capacity
        if rc is None:
            rcap = np.zeros(n)
            np.add.at(rcap, tail, np.repeat(cap, 2))
        elif isinstance(rc, Mapping):
            default = np.zeros(n)
            np.add.at(default, tail, np.repeat(cap, 2))
            rcap = np.array([float(rc.get(r, default[i])) for i, r in enumerate(self.router_ids)])
        else:
            rcap = np.full(n, float(rc))
        self._cap_router = rcap
        # demands
        self._demands = list(demands)
        ids = [d.id for d in demands]
        if len(set(ids)) != len(ids):
            raise ConfigError("demand ids must be unique")
        for d in demands:
            self._check_router(d.src, f"demand {d.id}")
            self._check_router(d.dst, f"demand {d.id}")
            if not d.mbps >= 0:
                raise ConfigError(f"demand {d.id}: mbps must be >= 0, not {d.mbps!r}")
        self._src = np.array([self._ridx[d.src] for d in demands], dtype=np.int64)
        self._dst = np.array([self._ridx[d.dst] for d in demands], dtype=np.int64)
        self._rate = np.array([float(d.mbps) for d in demands])
        self._demand_ids = tuple(ids)
        # baseline routing
        empty = NetState()
        ctx = self._context(empty, np.ones(m, bool), np.zeros(n, bool), self._w_link)
        nd = len(demands)
        empty_routes = _Routes(sp.csr_matrix((0, 2 * m + n)), np.zeros(0), np.zeros(0, bool), {})
        self._base_routes = self._route_state(ctx, empty_routes, np.arange(nd), self._src, self._dst)
        self._F0 = self._base_routes.F
        loads = self._F0.T @ self._rate
        self._base_link_load = np.maximum(loads[0 : 2 * m : 2], loads[1 : 2 * m : 2])
        self._base_router_load = loads[2 * m :]
        self.baseline = self.evaluate(empty)

    # ----------------------------------------------------------------- helpers
    def _init_core(self, topology: nx.Graph):
        """Split routers into the 2-core and the trees hanging off it (for Dijkstra)."""
        n = len(self.router_ids)
        core = {self._ridx[r] for r in nx.k_core(topology, 2)} if n > 2 else set()
        if not core:  # a tree: root everything at router 0
            core = {0}
        self._core_nodes = np.array(sorted(core), dtype=np.int64)
        self._core_pos = np.full(n, -1, dtype=np.int64)
        self._core_pos[self._core_nodes] = np.arange(len(self._core_nodes))
        self._core_arcs = np.flatnonzero((self._core_pos[self._tail] >= 0) & (self._core_pos[self._head] >= 0))
        self._parent = np.arange(n)
        self._par_arc = np.zeros(n, dtype=np.int64)
        self._root = np.arange(n)
        self._members: dict[int, set] = {}
        levels = []
        frontier = sorted(core)
        seen = set(core)
        while frontier:
            nxt = []
            for x in frontier:
                for y, arc in self._adj[x]:
                    if y not in seen:
                        seen.add(y)
                        self._parent[y] = x
                        self._par_arc[y] = arc ^ 1  # the reverse arc, y -> x
                        self._root[y] = self._root[x]
                        self._members.setdefault(int(self._root[x]), set()).add(y)
                        nxt.append(y)
            if nxt:
                levels.append(np.array(nxt, dtype=np.int64))
            frontier = nxt
        self._tree_levels = levels
        self._tree_nodes = np.concatenate(levels) if levels else np.zeros(0, dtype=np.int64)

    def _check_router(self, r: str, what: str):
        if r not in self._ridx:
            raise ConfigError(f"{what}: unknown router {r!r}")

    def _check_link(self, lid: str, what: str) -> int:
        try:
            return self._lidx[lid]
        except KeyError:
            raise ConfigError(f"{what}: unknown link {lid!r} (ids are canonical 'A-B', A<B)") from None

    def _context(self, state: NetState, link_alive, router_failed, w_link) -> _Ctx:
        ctx = _Ctx()
        arc_alive = np.repeat(link_alive, 2) & ~router_failed[self._tail] & ~router_failed[self._head]
        ctx.alive = arc_alive.tolist()
        ctx.w = np.repeat(w_link, 2).tolist()
        ctx.ecmp = self.config.ecmp
        ctx.tol = self.config.ecmp_tolerance
        ctx.blackhole = {
            self._ridx[r]: (None if d is None else frozenset(self._ridx[x] for x in d))
            for r, d in state.blackhole.items()
        }
        wnh = {}
        for r, (d, y) in state.wrong_next_hop.items():
            u, v = self._ridx[r], self._ridx[y]
            arc = next((a for vv, a in self._adj[u] if vv == v), None)
            if arc is None:
                raise ConfigError(f"wrong_next_hop: {y!r} is not a neighbour of {r!r}")
            wnh[u] = (None if d is None else frozenset(self._ridx[x] for x in d), v, arc)
        ctx.wnh = wnh
        ctx.alive_np = arc_alive
        ctx.w_np = np.repeat(w_link, 2)
        ctx.alive_router = (~router_failed).tolist()
        ctx.alive_np_router = ~router_failed
        ctx.core_graph = None
        return ctx

    def _route(self, ctx: _Ctx, rows: np.ndarray, src: np.ndarray, dst: np.ndarray):
        """Route demand ``rows`` (sorted indices into ``src``/``dst``) under ``ctx``.

        Returns ``(F_sub, routed, simple, slow)``: the route fractions of those rows (one
        CSR row each), their routed fraction and simple flag, and ``{row: _Walk}`` for the
        rows routed by the exact hop-by-hop walk (those reaching a router misconfigured
        for their destination).

        Fast path, for all destinations of the rows together: the next hops of router ``u``
        for destination ``t`` are the arcs ``u -> v`` with ``|d(u) - w - d(v)| <= tol`` (the
        test of :func:`_walk`), found for every (destination, router) state at once when
        the graph is small (``_DAG_TABLE_MAX``), else for the states reached only. Each
        row's unit mass at its source is then pushed one hop at a time through its
        destination's DAG with the per-hop equal split, all rows at once (numpy); masses
        of branches meeting again are summed. The masses reaching each router are the
        walk's router fractions, ``mass * share`` its arc fractions. Rows whose DAG reaches
        a router misconfigured for their destination are re-done by the exact walk; for
        the other rows the DAG result is exact, as they never meet a misconfiguration.
        """
        n, na = len(self.router_ids), self._n_arcs
        ncols = na + n
        R = len(rows)
        routed = np.zeros(R)
        simple = np.zeros(R, bool)
        slow: dict[int, _Walk] = {}
        if R == 0:
            return sp.csr_matrix((0, ncols)), routed, simple, slow
        rs, rt = src[rows], dst[rows]
        dests, kinv = np.unique(rt, return_inverse=True)
        D = self._full_dists(ctx, dests.tolist())
        rules = [(u, d) for u, d in ctx.blackhole.items()] + [(u, d) for u, (d, _v, _a) in ctx.wnh.items()]
        if _EXACT_ONLY:  # reference mode (tests): every row by the exact walk
            slow_pos, ent_r, ent_c, ent_v = list(range(R)), [], [], []
        else:
            K = len(dests)
            Kn = K * n
            Dflat = D.ravel()
            head, aptr, aarc = self._head, self._adj_ptr, self._adj_arc
            alive, w_np, tol, ecmp = ctx.alive_np, ctx.w_np, ctx.tol, ctx.ecmp

            def hops(xs):
                """Next-hop arcs of states ``xs`` (``k*n + u``): (entry of xs, arc, share, next state, count)."""
                u = xs % n
                kn = xs - u
                deg = aptr[u + 1] - aptr[u]
                deg[u == dests[kn // n]] = 0  # the destination forwards nothing
                rep = np.repeat(np.arange(len(xs)), deg)
                p = np.arange(rep.size) + np.repeat(aptr[u] - (np.cumsum(deg) - deg), deg)
                a = aarc[p]
                kr = kn[rep]
                hd = head[a]
                with np.errstate(invalid="ignore"):
                    ok = alive[a] & (np.abs(Dflat[kr + u[rep]] - w_np[a] - Dflat[kr + hd]) <= tol)
                okx = np.flatnonzero(ok)
                if not ecmp and okx.size:  # only the next hop with the smallest router index
                    r = rep[okx]
                    first = np.ones(okx.size, bool)
                    first[1:] = r[1:] != r[:-1]
                    okx = okx[first]
                rep, a = rep[okx], a[okx]
                cnt = np.bincount(rep, minlength=len(xs))
                return rep, a, 1.0 / cnt[rep], kr[okx] + hd[okx], cnt

            if K * na <= _DAG_TABLE_MAX:
                # small enough: next hops of every state at once (destinations x arcs, arcs in
                # adjacency order), then hops are table look-ups
                ta, hd_a = self._adj_tail, self._adj_head
                with np.errstate(invalid="ignore"):
                    ok = np.abs(D[:, ta] - w_np[aarc] - D[:, hd_a]) <= tol
                ok &= alive[aarc]
                ok &= ta != dests[:, None]  # the destination forwards nothing
                kk, jj = np.nonzero(ok)  # sorted by destination, then tail, then head
                st = kk * n + ta[jj]
                if not ecmp and st.size:  # only the next hop with the smallest router index
                    first = np.ones(st.size, bool)
                    first[1:] = st[1:] != st[:-1]
                    kk, jj, st = kk[first], jj[first], st[first]
                t_cnt = np.bincount(st, minlength=Kn)
                t_arc = aarc[jj]
                t_share = 1.0 / t_cnt[st]
                t_nxt = kk * n + hd_a[jj]
                t_ptr = np.zeros(Kn + 1, dtype=np.int64)
                np.cumsum(t_cnt, out=t_ptr[1:])

                def hops(xs):  # noqa: F811 -- same result as the lazy version, by look-up
                    cnt = t_cnt[xs]
                    rep = np.repeat(np.arange(len(xs)), cnt)
                    p = np.arange(rep.size) + np.repeat(t_ptr[xs] - (np.cumsum(cnt) - cnt), cnt)
                    return rep, t_arc[p], t_share[p], t_nxt[p], cnt

            # propagate the sources' unit masses through the DAGs, one hop at a time
            fin = np.isfinite(Dflat[kinv * n + rs])
            xi = np.flatnonzero(fin)
            xs = (kinv * n + rs)[fin]
            xf = np.ones(len(xi))
            acc_i, acc_s, acc_f = [xi], [xs], [xf]
            branched = False
            for _ in range(n):
                # xi is sorted; a row with several entries may have branches meeting again
                multi = xi.size > 1 and bool((xi[1:] == xi[:-1]).any())
                branched |= multi
                rep, _a, share, nxt, _cnt = hops(xs)
                if rep.size == 0:
                    break
                if multi:
                    uk, inv = np.unique(xi[rep] * Kn + nxt, return_inverse=True)
                    xf = np.bincount(inv, weights=xf[rep] * share, minlength=len(uk))  # sums branches meeting again
                    xi, xs = uk // Kn, uk % Kn
                else:
                    xi, xs, xf = xi[rep], nxt, xf[rep] * share
                acc_i.append(xi)
                acc_s.append(xs)
                acc_f.append(xf)
            xi, xs, xf = np.concatenate(acc_i), np.concatenate(acc_s), np.concatenate(acc_f)
            if branched:  # nodes reached at several hop counts
                uk, inv = np.unique(xi * Kn + xs, return_inverse=True)
                xf = np.bincount(inv, weights=xf, minlength=len(uk))
                xi, xs = uk // Kn, uk % Kn
            node = xs % n
            # demands reaching a router misconfigured for their destination: exact walk
            slow_pos: list[int] = []
            if rules:
                flagged = [k * n + u for k, t in enumerate(dests.tolist()) for u, d in rules if d is None or t in d]
                if flagged:
                    bad_row = np.zeros(R, bool)
                    bad_row[xi[np.isin(xs, np.array(flagged, dtype=np.int64))]] = True
                    slow_pos = np.flatnonzero(bad_row).tolist()
                    keep = ~bad_row[xi]
                    xi, xs, xf, node = xi[keep], xs[keep], xf[keep], node[keep]
            at_t = node == dests[xs // n]
            routed[xi[at_t]] = xf[at_t]
            rep, a, share, _nxt, cnt = hops(xs)
            simple[:] = np.bincount(xi[(cnt != 1) & ~at_t], minlength=R) == 0
            # router entries, then one entry per next-hop arc: f * share
            ent_r, ent_c, ent_v = [xi, xi[rep]], [na + node, a], [xf, xf[rep] * share]
            simple &= routed > 0
        if slow_pos:
            at = {int(t): k for k, t in enumerate(dests.tolist())}
            rows_l, src_l, dst_l = rows.tolist(), rs.tolist(), rt.tolist()
            lists: dict[int, list] = {}
            for q in sorted(slow_pos):
                t = dst_l[q]
                row = D[at[t]]
                if t not in lists:
                    lists[t] = row.tolist()
                wk = _walk(self, src_l[q], t, ctx, lists[t], row)
                slow[rows_l[q]] = wk
                routed[q] = wk.routed
                simple[q] = wk.simple
                ent_r.append(np.full(len(wk.elems), q, dtype=np.int64))
                ent_c.append(np.fromiter(wk.elems.keys(), dtype=np.int64, count=len(wk.elems)))
                ent_v.append(np.fromiter(wk.elems.values(), dtype=float, count=len(wk.elems)))
        # CSR with sorted indices; (row, element) pairs are unique by construction
        r_ = np.concatenate(ent_r) if ent_r else np.zeros(0, dtype=np.int64)
        c_ = np.concatenate(ent_c) if ent_c else np.zeros(0, dtype=np.int64)
        v_ = np.concatenate(ent_v) if ent_v else np.zeros(0)
        o = np.argsort(r_ * ncols + c_, kind="stable")
        indptr = np.zeros(R + 1, dtype=np.int64)
        np.cumsum(np.bincount(r_, minlength=R), out=indptr[1:])
        F_sub = sp.csr_matrix((v_[o], c_[o], indptr), shape=(R, ncols))
        F_sub.has_sorted_indices = True
        return F_sub, routed, simple, slow

    def _full_dists(self, ctx: _Ctx, dests) -> np.ndarray:
        """Distances to each of ``dests`` (rows) from every router, under ``ctx``.

        Scipy Dijkstra runs on the 2-core only (arcs are symmetric, so distance from
        ``t`` is distance to ``t``); routers in trees hanging off the core get their
        distance through their attachment router, and routers in the destination's
        own tree by a walk of that tree.
        """
        self._dijkstra_runs += len(dests)
        n = len(self.router_ids)
        if ctx.core_graph is None:
            alive = ctx.alive_np[self._core_arcs]
            ca = self._core_arcs[alive]
            nc = len(self._core_nodes)
            ctx.core_graph = sp.csr_matrix(
                (ctx.w_np[ca], (self._core_pos[self._tail[ca]], self._core_pos[self._head[ca]])), shape=(nc, nc)
            )
            d_root = np.zeros(n)
            wa = np.where(ctx.alive_np, ctx.w_np, np.inf)
            for lvl in self._tree_levels:
                d_root[lvl] = d_root[self._parent[lvl]] + wa[self._par_arc[lvl]]
            ctx.d_root = d_root
        d_root = ctx.d_root
        roots = [t if self._core_pos[t] >= 0 else self._root[t] for t in dests]
        uniq = sorted(set(roots))
        Dc = dijkstra(ctx.core_graph, directed=True, indices=self._core_pos[np.asarray(uniq, dtype=np.int64)])
        Dc = Dc.reshape(len(uniq), -1)
        at = {r: k for k, r in enumerate(uniq)}
        out = np.empty((len(dests), n))
        tree = self._tree_nodes
        alive, w, adj = ctx.alive, ctx.w, self._adj
        dests_np = np.asarray(dests, dtype=np.int64)
        out[:, self._core_nodes] = Dc[[at[r] for r in roots]] + d_root[dests_np][:, None]
        out[:, tree] = d_root[tree] + out[:, self._root[tree]]
        out[~ctx.alive_np_router[dests_np]] = np.inf
        for k, (t, r) in enumerate(zip(dests, roots)):
            if t == r or not ctx.alive_router[t]:
                continue
            row = out[k]
            # t hangs off r: distances inside its own tree by a walk from t
            members = self._members[r]
            for x in members:
                row[x] = np.inf
            row[t] = 0.0
            stack = [t]
            while stack:
                x = stack.pop()
                dx = row[x]
                for y, arc in adj[x]:
                    if alive[arc] and (y in members or y == r) and dx + w[arc] < row[y]:
                        row[y] = dx + w[arc]
                        if y != r:
                            stack.append(y)
            if row[r] < np.inf:  # the rest of r's tree, through r
                stack = [r]
                while stack:
                    x = stack.pop()
                    for y, arc in adj[x]:
                        if alive[arc] and y in members and row[x] + w[arc] < row[y]:
                            row[y] = row[x] + w[arc]
                            stack.append(y)
        return out

    _dijkstra_runs = 0

    # ----------------------------------------------------------------- evaluate
    def evaluate(self, state: NetState) -> Outcome:
        """Apply ``state`` to the baseline and return the :class:`Outcome`.

        Raises
        ------
        ConfigError
            Unknown link or router ids, a wrong next hop that is not a neighbour,
            factors or loss fractions outside their ranges, clashing extra demand ids.
        """
        t0 = time.perf_counter()
        self._dijkstra_runs = 0
        cfg = self.config
        n, m, na = len(self.router_ids), len(self.link_ids), self._n_arcs
        link_alive = np.ones(m, bool)
        for lid in state.failed_links:
            link_alive[self._check_link(lid, "failed_links")] = False
        router_failed = np.zeros(n, bool)
        for r in state.failed_routers:
            self._check_router(r, "failed_routers")
            router_failed[self._ridx[r]] = True
        for r in list(state.blackhole) + list(state.wrong_next_hop) + list(state.rate_limit) + list(
            state.router_capacity_factor
        ):
            self._check_router(r, "router in state")
        for r, d in state.blackhole.items():
            for x in d or ():
                self._check_router(x, f"blackhole at {r}")
        for r, (d, y) in state.wrong_next_hop.items():
            self._check_router(y, f"wrong_next_hop at {r}")
            for x in d or ():
                self._check_router(x, f"wrong_next_hop at {r}")
        cap_link = self._cap_link.copy()
        for lid, f in state.link_capacity_factor.items():
            if not 0 < f <= 1:
                raise ConfigError(f"link_capacity_factor[{lid}] must be in (0, 1], not {f!r}")
            cap_link[self._check_link(lid, "link_capacity_factor")] *= f
        for lid, x in state.extra_capacity.items():
            cap_link[self._check_link(lid, "extra_capacity")] += x
        deg_loss = np.zeros(m)
        for lid, x in state.link_loss.items():
            if not 0 <= x <= 1:
                raise ConfigError(f"link_loss[{lid}] must be in [0, 1], not {x!r}")
            deg_loss[self._check_link(lid, "link_loss")] = x
        cap_router = self._cap_router.copy()
        for r, f in state.router_capacity_factor.items():
            if not 0 < f <= 1:
                raise ConfigError(f"router_capacity_factor[{r}] must be in (0, 1], not {f!r}")
            cap_router[self._ridx[r]] *= f
        w_link = self._w_link.copy()
        avoid_idx = [self._check_link(lid, "avoid_links") for lid in state.avoid_links]
        w_link[avoid_idx] += self._avoid_penalty

        # demands: base + extra, admitted after rate limits
        extra = list(state.extra_demands)
        for d in extra:
            self._check_router(d.src, f"extra demand {d.id}")
            self._check_router(d.dst, f"extra demand {d.id}")
        nb = len(self._demands)
        ids = self._demand_ids + tuple(d.id for d in extra)
        if extra and len(set(ids)) != len(ids):
            raise ConfigError("extra demand ids must be unique and differ from the base demand ids")
        src = np.concatenate([self._src, np.array([self._ridx[d.src] for d in extra], dtype=np.int64)])
        dst = np.concatenate([self._dst, np.array([self._ridx[d.dst] for d in extra], dtype=np.int64)])
        offered = np.concatenate([self._rate, np.array([float(d.mbps) for d in extra])])
        is_extra = np.arange(len(ids)) >= nb
        admitted = offered.copy()
        for r, cap in state.rate_limit.items():
            sel = src == self._ridx[r]
            excess = admitted[sel].sum() - cap
            if excess <= 0:
                continue
            for group in (sel & is_extra, sel & ~is_extra):
                tot = admitted[group].sum()
                if tot <= 0 or excess <= 0:
                    continue
                cut = min(excess, tot)
                admitted[group] *= 1.0 - cut / tot
                excess -= cut

        # misconfigured routers touch demands through them (filtered by destination)
        misconf: dict[int, set | None] = {}
        for r, d in [*state.blackhole.items(), *((r, d) for r, (d, _y) in state.wrong_next_hop.items())]:
            u = self._ridx[r]
            dd = None if d is None else {self._ridx[x] for x in d}
            if u in misconf:
                misconf[u] = None if (misconf[u] is None or dd is None) else misconf[u] | dd
            else:
                misconf[u] = dd

        induced_links: list[tuple[str, ...]] = []
        induced_routers: list[tuple[str, ...]] = []
        t_route = 0.0
        rounds = 0
        n_rows = len(ids)
        routes = None  # routes of the current round before any load-aware step
        changed_rows = np.zeros(0, dtype=np.int64)  # rows re-routed at some point (the rest = baseline)
        while True:
            tr = time.perf_counter()
            ctx = self._context(state, link_alive, router_failed, w_link)
            if routes is None or _EXACT_ONLY:
                # demands whose baseline route crosses a changed element, misconfigured
                # routers (for their destination) and the extra demands
                changed_links = np.union1d(np.flatnonzero(~link_alive), np.asarray(avoid_idx, dtype=np.int64))
                cols = np.concatenate([2 * changed_links, 2 * changed_links + 1, na + np.flatnonzero(router_failed)])
                parts = [_rows_crossing(self._F0, cols.astype(np.int64)), np.arange(nb, n_rows)]
                for u, dd in misconf.items():
                    hit = _rows_crossing(self._F0, np.array([na + u], dtype=np.int64))
                    if dd is not None:
                        hit = hit[np.isin(dst[hit], np.fromiter(dd, dtype=np.int64, count=len(dd)))]
                    parts.append(hit)
                rows = np.unique(np.concatenate(parts)).astype(np.int64)
                routes = self._route_state(ctx, self._base_routes, rows, src, dst)
            else:
                # a cascade round: only routes crossing the newly failed elements change
                # (failures only lengthen other paths, so a route avoiding them keeps its
                # distances and next hops) -- true of the plain IGP routes; a route through
                # a misconfigured router also depends on the IGP paths it was diverted
                # from, so those (``routes.slow``) are always re-routed
                cols = np.concatenate([2 * new_l, 2 * new_l + 1, na + new_r]).astype(np.int64)
                rows = _rows_crossing(routes.F, cols)
                if routes.slow:
                    rows = np.union1d(rows, np.fromiter(routes.slow, dtype=np.int64, count=len(routes.slow)))
                routes = self._route_state(ctx, routes, rows, src, dst)
            changed_rows = np.union1d(changed_rows, rows)
            final = routes
            loads = final.F.T @ admitted
            if state.load_aware:
                util = np.maximum(loads[0:na:2], loads[1:na:2]) / np.maximum(cap_link, 1e-12)
                hot = np.flatnonzero((util > cfg.load_aware_threshold) & link_alive)
                if hot.size:
                    w2 = w_link.copy()
                    w2[hot] *= 1.0 + cfg.load_aware_penalty * util[hot]
                    ctx2 = self._context(state, link_alive, router_failed, w2)
                    rows2 = _rows_crossing(routes.F, np.concatenate([2 * hot, 2 * hot + 1]).astype(np.int64))
                    final = self._route_state(ctx2, routes, rows2, src, dst)
                    changed_rows = np.union1d(changed_rows, rows2)
                    loads = final.F.T @ admitted
            t_route += time.perf_counter() - tr
            arc_load, router_load = loads[:na], loads[na:]
            link_load = np.maximum(arc_load[0::2], arc_load[1::2])
            if not (cfg.cascade and rounds < cfg.max_cascade_rounds):
                break
            tol_link = np.maximum((1 + cfg.alpha) * self._base_link_load, cfg.cascade_floor * cap_link)
            tol_router = np.maximum((1 + cfg.alpha) * self._base_router_load, cfg.cascade_floor * cap_router)
            new_l = np.flatnonzero(link_alive & (link_load > tol_link + 1e-9))
            new_r = np.flatnonzero(~router_failed & (router_load > tol_router + 1e-9))
            if new_l.size == 0 and new_r.size == 0:
                break
            rounds += 1
            link_alive[new_l] = False
            router_failed[new_r] = True
            induced_links.append(tuple(self.link_ids[i] for i in new_l))
            induced_routers.append(tuple(self.router_ids[i] for i in new_r))

        # capacities, loss, delay
        arc_cap = np.repeat(cap_link, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ovl_arc = np.where(arc_load > arc_cap, 1.0 - arc_cap / np.where(arc_load > 0, arc_load, 1.0), 0.0)
            ovl_r = np.where(router_load > cap_router, 1.0 - cap_router / np.where(router_load > 0, router_load, 1.0), 0.0)
        surv_arc = (1.0 - ovl_arc) * np.repeat(1.0 - deg_loss, 2)
        surv_r = 1.0 - ovl_r
        pps = 1e6 / (8.0 * cfg.packet_bytes)
        mu, lam = arc_cap * pps, arc_load * pps
        with np.errstate(divide="ignore", invalid="ignore"):
            dq = np.where(lam < mu, 1e3 / (mu - lam), np.inf)
        dq = np.minimum(dq, cfg.queue_cap_ms)
        arc_delay = self._delay_arc + dq
        F = final.F
        routed = final.routed
        with np.errstate(divide="ignore"):
            log_s = np.concatenate([np.log(surv_arc), np.log(surv_r)])
        lat = F @ np.concatenate([arc_delay, np.zeros(n)])
        with np.errstate(invalid="ignore", divide="ignore"):
            lat = np.where(routed > 0, lat / np.where(routed > 0, routed, 1.0), np.nan)
        # exact delivered fraction: product along a single path, replay for the rest
        lossy = np.concatenate([surv_arc < 1.0, surv_r < 1.0])
        touches = (F @ lossy.astype(float)) > 0
        with np.errstate(invalid="ignore"):
            surv = np.exp(F @ np.where(lossy, log_s, 0.0))
        surv = np.where(routed > 0, surv, 0.0)
        deliv = routed.copy()
        sa, sr = surv_arc.tolist(), surv_r.tolist()
        ad = arc_delay.tolist()
        ones_a, ones_r = [1.0] * na, [1.0] * n
        dst_l, src_l = dst.tolist(), src.tolist()
        simple = final.simple
        tl = np.flatnonzero(touches)
        deliv[tl] = np.where(simple[tl], surv[tl], deliv[tl])
        for i in tl[~simple[tl]].tolist():
            deliv[i], _ = _replay(self._walk_of(final, i, src_l[i]), dst_l[i], sa, sr, ad)
        for i in np.flatnonzero((routed > 0) & (routed < 1 - 1e-12)).tolist():
            # partial routes (blackhole/loop on some branch): latency of the routed part only
            _, lat[i] = _replay(self._walk_of(final, i, src_l[i]), dst_l[i], ones_a, ones_r, ad)
        with np.errstate(invalid="ignore", divide="ignore"):
            delivered_fraction = np.where(offered > 0, deliv * admitted / np.where(offered > 0, offered, 1), 1.0)
        # latency uses only the routes that deliver: lat already normalised by routed
        changed = np.zeros(len(ids), bool)
        cr = changed_rows[changed_rows < nb]
        if cr.size:
            changed[cr] = _rows_differ(F[cr], self._F0[cr])
        util = np.where(cap_link > 0, link_load / np.where(cap_link > 0, cap_link, 1), np.inf)
        util = np.where(link_load > 0, util, 0.0)
        rutil = np.where(cap_router > 0, router_load / np.where(cap_router > 0, cap_router, 1), np.inf)
        rutil = np.where(router_load > 0, rutil, 0.0)
        link_loss = 1.0 - np.minimum(surv_arc[0::2], surv_arc[1::2])
        link_failed = ~link_alive | router_failed[self._tail[0::2]] | router_failed[self._head[0::2]]
        total = time.perf_counter() - t0
        out = Outcome(
            demand_ids=ids,
            offered_mbps=offered,
            admitted_mbps=admitted,
            routed_fraction=routed,
            reachable=routed > 0,
            delivered_fraction=delivered_fraction,
            loss_fraction=1.0 - delivered_fraction,
            latency_ms=lat,
            path_changed=changed,
            link_ids=self.link_ids,
            link_load_fwd=arc_load[0::2],
            link_load_rev=arc_load[1::2],
            link_load_mbps=link_load,
            link_capacity_mbps=cap_link,
            link_utilisation=util,
            link_loss=link_loss,
            link_failed=link_failed,
            router_ids=self.router_ids,
            router_load_mbps=router_load,
            router_capacity_mbps=cap_router,
            router_utilisation=rutil,
            router_loss=ovl_r,
            router_failed=router_failed,
            failed_links=frozenset(self.link_ids[i] for i in np.flatnonzero(link_failed)),
            failed_routers=frozenset(self.router_ids[i] for i in np.flatnonzero(router_failed)),
            induced_links=tuple(induced_links),
            induced_routers=tuple(induced_routers),
            cascade_rounds=rounds,
            timing={
                "total_ms": total * 1e3,
                "route_ms": t_route * 1e3,
                "dijkstra_runs": self._dijkstra_runs,
                "rewalked_demands": int(changed_rows.size),
            },
            _fractions=F,
            _n_arcs=na,
        )
        for name in ("offered_mbps", "admitted_mbps", "routed_fraction", "reachable", "delivered_fraction",
                     "loss_fraction", "latency_ms", "path_changed", "link_load_fwd", "link_load_rev",
                     "link_load_mbps", "link_capacity_mbps", "link_utilisation", "link_loss", "link_failed",
                     "router_load_mbps", "router_capacity_mbps", "router_utilisation", "router_loss",
                     "router_failed"):
            getattr(out, name).flags.writeable = False
        return out

    def _route_state(self, ctx: _Ctx, prev: _Routes, rows: np.ndarray, src, dst) -> _Routes:
        """``prev`` with ``rows`` (sorted) re-routed under ``ctx``; rows beyond ``prev`` are added."""
        n_rows = len(src)
        F_sub, r_sub, s_sub, slow_sub = self._route(ctx, rows, src, dst)
        F = _replace_rows(prev.F, n_rows, rows, F_sub)
        routed = np.zeros(n_rows)
        simple = np.zeros(n_rows, bool)
        k = len(prev.routed)
        routed[:k], simple[:k] = prev.routed, prev.simple
        routed[rows], simple[rows] = r_sub, s_sub
        slow = prev.slow
        if slow or slow_sub:
            drop = set(rows.tolist())
            slow = {r: wk for r, wk in prev.slow.items() if r not in drop}
            slow.update(slow_sub)
        return _Routes(F, routed, simple, slow)

    def _walk_of(self, routes: _Routes, i: int, s: int) -> _Walk:
        """A replayable walk of row ``i``: the exact walk, or rebuilt from a DAG route's fractions."""
        wk = routes.slow.get(i)
        if wk is not None:
            return wk
        F, na = routes.F, self._n_arcs
        cols = F.indices[F.indptr[i]:F.indptr[i + 1]].tolist()
        tl, hl = self._tail_l, self._head_l
        out: dict[int, list] = {}
        indeg: dict[int, int] = {}
        for c in cols:
            if c < na:
                out.setdefault(tl[c], []).append(c)
                indeg[hl[c]] = indeg.get(hl[c], 0) + 1
        E = frozenset()
        steps = []
        stack = [s]
        while stack:  # topological order of the route's DAG
            u = stack.pop()
            arcs = out.get(u, ())
            for c in arcs:
                v = hl[c]
                steps.append(((u, E), c, (v, E), 1.0 / len(arcs)))
                indeg[v] -= 1
                if indeg[v] == 0:
                    stack.append(v)
        return _Walk({}, float(routes.routed[i]), steps, (s, E), False)


#: route with a precomputed next-hop table when (destinations x arcs) is at most this; else
#: next hops are found per hop for the routers reached only (the same test, same result)
_DAG_TABLE_MAX = 200_000
#: reference mode for the tests: route every demand by the exact hop-by-hop walk and
#: every cascade round from the baseline (no reuse of the previous round's routes)
_EXACT_ONLY = False


def _rows_crossing(F: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """Sorted rows of ``F`` with an entry in one of ``cols``."""
    if len(cols) == 0 or F.nnz == 0:
        return np.zeros(0, dtype=np.int64)
    mask = np.zeros(F.shape[1], bool)
    mask[cols] = True
    hit = mask[F.indices]
    if not hit.any():
        return np.zeros(0, dtype=np.int64)
    row_of = np.repeat(np.arange(F.shape[0]), np.diff(F.indptr))
    return np.unique(row_of[hit])


def _replace_rows(F: sp.csr_matrix, n_rows: int, rows: np.ndarray, F_sub: sp.csr_matrix) -> sp.csr_matrix:
    """``F`` (padded to ``n_rows`` rows) with ``rows`` replaced by the rows of ``F_sub``."""
    cnt = np.zeros(n_rows, dtype=np.int64)
    start = np.zeros(n_rows, dtype=np.int64)
    k = F.shape[0]
    cnt[:k] = np.diff(F.indptr)
    start[:k] = F.indptr[:-1]
    cnt[rows] = np.diff(F_sub.indptr)
    start[rows] = F_sub.indptr[:-1] + F.nnz
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(cnt, out=indptr[1:])
    src = np.arange(indptr[-1]) + np.repeat(start - indptr[:-1], cnt)
    data = np.concatenate([F.data, F_sub.data])[src]
    indices = np.concatenate([F.indices, F_sub.indices])[src]
    out = sp.csr_matrix((data, indices, indptr), shape=(n_rows, F.shape[1]))
    out.has_sorted_indices = True
    return out


def _rows_differ(A: sp.csr_matrix, B: sp.csr_matrix) -> np.ndarray:
    """Per row: different elements, or a fraction differing by more than 1e-9."""
    ca, cb = np.diff(A.indptr), np.diff(B.indptr)
    same = ca == cb
    ea, eb = np.repeat(same, ca), np.repeat(same, cb)
    bad = (A.indices[ea] != B.indices[eb]) | (np.abs(A.data[ea] - B.data[eb]) > 1e-9)
    row_of = np.repeat(np.flatnonzero(same), ca[same])
    out = ~same
    out[row_of[bad]] = True
    return out


def build(topology: nx.Graph, demands: Iterable[Demand], config: EngineConfig | None = None) -> FlowEngine:
    """Precompute indices, baseline routing and loads for ``demands`` on ``topology``.

    Parameters
    ----------
    topology : networkx.Graph
        A graph following the topology contract (edges carry ``delay_ms`` and
        ``capacity_mbps``).
    demands : iterable of Demand
        The baseline traffic matrix; ids must be unique.
    config : EngineConfig, optional

    Raises
    ------
    TopologyError
        The graph is empty, disconnected, or a link lacks ``delay_ms``/``capacity_mbps``.
    ConfigError
        Unknown routers in a demand, duplicate demand ids, negative rates.
    """
    return FlowEngine(topology, list(demands), config or EngineConfig())
