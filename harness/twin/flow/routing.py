"""Routing for the flow engine: hop-by-hop walks, next-hop DAG routes, reuse across states.

The engine (:mod:`harness.twin.flow.engine`, whose docstring states the model) inherits
:class:`Routing`; the helpers here work on demand x element route-fraction matrices
(elements = 2 arcs per link, then routers).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from harness.errors import ConfigError
from harness.twin.flow.records import NetState

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


def _walk(eng: "Routing", s: int, t: int, ctx: _Ctx, dist_t, dnp: np.ndarray) -> _Walk:
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



class Routing:
    """The engine's routing methods (mixed into :class:`~harness.twin.flow.engine.FlowEngine`)."""

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


