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
    The tripping rule of :mod:`harness.twin.cascade`, shared with the emulation: an
    element trips when its load exceeds ``min((1 + alpha) * baseline_load, capacity)``
    (never below its baseline load; ``alpha = EngineConfig.alpha``; the capacity is the current one, after degradation).
    A link's load is its busier direction; a router's is what it receives from its
    neighbours, transit and delivered traffic, as its incoming links carry it (each at
    most its capacity: a link drops its excess before the router sees it), not what its
    own hosts send (their excess is dropped at its ingress, so a surge never fails its own
    source), against the same measure in the baseline. After the injected events, every live element that trips
    fails; routing and loads are recomputed; this repeats until no new element fails (or
    ``max_cascade_rounds``). ``cascade_rounds`` counts rounds that induced failures; an
    induced router failure takes all its links down. Loads are offered loads and include
    surge/attack demands (after rate limits). Loss and latency are those of the fixed
    point, i.e. of the network after the cascade.
Rate limiting
    ``rate_limit[r]`` caps the total admitted rate of demands originating at ``r``, as a
    meter on ``r``'s host ports does: it cannot tell attack or surge traffic from the
    regular demands, so every demand from ``r`` keeps the same share ``cap / offered``.
    Rate limits apply before routing; the cut counts in the demand's ``delivered_fraction``.
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

import time
from types import SimpleNamespace
from typing import Iterable, Mapping

import networkx as nx
import numpy as np
import scipy.sparse as sp

from harness.errors import ConfigError, TopologyError
from harness.topology.load import link_id
from harness.twin.cascade import CascadeRule
from harness.twin.flow import routing
from harness.twin.flow.records import Demand, EngineConfig, NetState, Outcome
from harness.twin.flow.routing import Routing, _Routes, _replay, _rows_crossing, _rows_differ

__all__ = ["Demand", "NetState", "EngineConfig", "Outcome", "FlowEngine", "build"]


# --------------------------------------------------------------------------- engine


class FlowEngine(Routing):
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
        # what each router receives from its neighbours (transit + delivered): the cascade's router load
        self._base_router_received = self._received(loads[: 2 * m], self._cap_link)
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

    def evaluate(self, state: NetState) -> Outcome:
        """Apply ``state`` to the baseline and return the :class:`Outcome`.

        Phases: the state's elements and capacities (:meth:`_elements`), the offered and
        admitted demands (:meth:`_offered_demands`), the misconfigured routers
        (:meth:`_misconfigured`), routing and cascade rounds (:meth:`_route_and_cascade`),
        then loss, delay and the outcome (:meth:`_outcome`).

        Raises
        ------
        ConfigError
            Unknown link or router ids, a wrong next hop that is not a neighbour,
            factors or loss fractions outside their ranges, clashing extra demand ids.
        """
        t0 = time.perf_counter()
        self._dijkstra_runs = 0
        el = self._elements(state)
        dm = self._offered_demands(state)
        rt = self._route_and_cascade(state, el, dm, self._misconfigured(state))
        return self._outcome(el, dm, rt, t0)

    def _elements(self, state: NetState) -> SimpleNamespace:
        """Per link and router: alive/failed, capacity, random loss, routing weight."""
        n, m = len(self.router_ids), len(self.link_ids)
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

        return SimpleNamespace(link_alive=link_alive, router_failed=router_failed, cap_link=cap_link,
                               deg_loss=deg_loss, cap_router=cap_router, w_link=w_link, avoid_idx=avoid_idx)

    def _offered_demands(self, state: NetState) -> SimpleNamespace:
        """Base and extra demands: ids, ends, offered and admitted (after rate limits) rates."""
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
        admitted = offered.copy()
        for r, cap in state.rate_limit.items():
            sel = src == self._ridx[r]
            excess = admitted[sel].sum() - cap
            if excess <= 0:
                continue
            # a meter polices the source's total: every demand from it loses the same share
            admitted[sel] *= cap / (cap + excess)

        return SimpleNamespace(ids=ids, nb=nb, src=src, dst=dst, offered=offered, admitted=admitted)

    def _misconfigured(self, state: NetState) -> dict[int, set | None]:
        """Misconfigured routers -> the destinations they touch (``None``: all)."""
        misconf: dict[int, set | None] = {}
        for r, d in [*state.blackhole.items(), *((r, d) for r, (d, _y) in state.wrong_next_hop.items())]:
            u = self._ridx[r]
            dd = None if d is None else {self._ridx[x] for x in d}
            if u in misconf:
                misconf[u] = None if (misconf[u] is None or dd is None) else misconf[u] | dd
            else:
                misconf[u] = dd

        return misconf

    def _received(self, arc_load: np.ndarray, cap_link: np.ndarray, router_load: np.ndarray | None = None,
                  cap_router: np.ndarray | None = None) -> np.ndarray:
        """Per router: the traffic its incoming links carry to it — transit and delivered
        traffic, as the emulation counts a router's load (received bytes on its inter-router
        ports). Each arc carries its offered load less what the router at its tail drops when
        overloaded (``router_load`` over ``cap_router``), at most the link's capacity: the
        drops of the two elements just upstream (drops further up still count, no fixed point)."""
        carried = arc_load
        if router_load is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                keep = np.where(router_load > cap_router, cap_router / np.where(router_load > 0, router_load, 1.0), 1.0)
            carried = arc_load * keep[self._tail]
        carried = np.minimum(carried, np.repeat(cap_link, 2))
        return np.bincount(self._head, weights=carried, minlength=len(self.router_ids))

    def _route_and_cascade(self, state: NetState, el: SimpleNamespace, dm: SimpleNamespace,
                           misconf: dict) -> SimpleNamespace:
        """Route (re-walking only what the state changes), load, and trip cascades until no
        element is overloaded past its tolerance. Fails elements in ``el`` as they trip."""
        cfg, na = self.config, self._n_arcs
        link_alive, router_failed, cap_link, cap_router = el.link_alive, el.router_failed, el.cap_link, el.cap_router
        w_link, avoid_idx = el.w_link, el.avoid_idx
        ids, nb, src, dst, admitted = dm.ids, dm.nb, dm.src, dm.dst, dm.admitted
        rule = CascadeRule(alpha=cfg.alpha, links=cfg.cascade_links)
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
            if routes is None or routing._EXACT_ONLY:
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
            # a router trips on what its neighbours send it (transit and delivered traffic) as
            # its incoming links carry it (less the upstream router's and the link's drops); its
            # own hosts' excess is dropped at its ingress
            received = self._received(arc_load, cap_link, router_load, cap_router)
            new_l = (np.flatnonzero(link_alive & rule.over(self._base_link_load, link_load, cap_link))
                     if rule.links else np.empty(0, dtype=int))
            new_r = np.flatnonzero(~router_failed & rule.over(self._base_router_received, received, cap_router))
            if new_l.size == 0 and new_r.size == 0:
                break
            rounds += 1
            link_alive[new_l] = False
            router_failed[new_r] = True
            induced_links.append(tuple(self.link_ids[i] for i in new_l))
            induced_routers.append(tuple(self.router_ids[i] for i in new_r))

        return SimpleNamespace(final=final, arc_load=arc_load, router_load=router_load, link_load=link_load,
                               changed_rows=changed_rows, induced_links=induced_links,
                               induced_routers=induced_routers, rounds=rounds, t_route=t_route)

    def _outcome(self, el: SimpleNamespace, dm: SimpleNamespace, rt: SimpleNamespace, t0: float) -> Outcome:
        """Loss (overload and degradation), queueing delay and latency per demand, and the outcome."""
        cfg, n, na = self.config, len(self.router_ids), self._n_arcs
        link_alive, router_failed, cap_link, cap_router, deg_loss = (el.link_alive, el.router_failed, el.cap_link,
                                                                     el.cap_router, el.deg_loss)
        ids, nb, src, dst, offered, admitted = dm.ids, dm.nb, dm.src, dm.dst, dm.offered, dm.admitted
        final, arc_load, router_load, link_load = rt.final, rt.arc_load, rt.router_load, rt.link_load
        changed_rows, rounds = rt.changed_rows, rt.rounds
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
            induced_links=tuple(rt.induced_links),
            induced_routers=tuple(rt.induced_routers),
            cascade_rounds=rounds,
            timing={
                "total_ms": total * 1e3,
                "route_ms": rt.t_route * 1e3,
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
