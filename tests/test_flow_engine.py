"""The flow-level twin engine against hand-computed and networkx ground truth."""

from __future__ import annotations

import math
import random

import networkx as nx
import numpy as np
import pytest

from harness.errors import ConfigError, TopologyError
from harness.topology import link_id, load_topology
from harness.twin.flow.engine import Demand, EngineConfig, NetState, build


BIG = EngineConfig(router_capacity=1e12)  # keep router overload out of link tests
#: link cascades are opt-in (routers trip by default): the link-cascade tests turn them on
LINKS = EngineConfig(router_capacity=1e12, cascade_links=True)


def graph(edges, cap=1000.0):
    """Edges as (u, v, delay_ms[, capacity_mbps])."""
    G = nx.Graph()
    for e in edges:
        u, v, d = e[:3]
        G.add_edge(u, v, delay_ms=float(d), capacity_mbps=float(e[3] if len(e) > 3 else cap))
    return G


def square():
    # A-B-D and A-C-D, equal cost
    return graph([("A", "B", 1), ("B", "D", 1), ("A", "C", 1), ("C", "D", 1)])


# ----------------------------------------------------------------- routing


def test_bridge_cut_loses_exactly_the_crossing_demands():
    G = graph([("A", "B", 1), ("B", "C", 1), ("A", "C", 1), ("C", "D", 1),
               ("D", "E", 1), ("E", "F", 1), ("D", "F", 1)])
    nodes = sorted(G)
    demands = [Demand(s, t, 10, f"{s}{t}") for s in nodes for t in nodes if s != t]
    eng = build(G, demands, BIG)
    out = eng.evaluate(NetState(failed_links=frozenset({"C-D"})))
    H = G.copy()
    H.remove_edge("C", "D")
    for d, reach, deliv in zip(demands, out.reachable, out.delivered_fraction):
        assert bool(reach) == nx.has_path(H, d.src, d.dst), d
        assert deliv == (1.0 if nx.has_path(H, d.src, d.dst) else 0.0)
    assert out.link("C-D")["load_mbps"] == 0.0 and out.link("C-D")["failed"]
    assert out.failed_links == {"C-D"}
    assert eng.baseline.reachable.all()


def test_ecmp_square_splits_half_and_half():
    eng = build(square(), [Demand("A", "D", 100, "f")], BIG)
    b = eng.baseline
    assert b.paths("f") == pytest.approx({"A-B": 0.5, "B-D": 0.5, "A-C": 0.5, "C-D": 0.5})
    for lid in ("A-B", "B-D", "A-C", "C-D"):
        assert b.link(lid)["load_mbps"] == pytest.approx(50.0)
    assert b.router("B")["load_mbps"] == pytest.approx(50.0)
    assert b.router("A")["load_mbps"] == pytest.approx(100.0)
    # without ECMP a single path carries everything
    one = build(square(), [Demand("A", "D", 100, "f")], EngineConfig(ecmp=False, router_capacity=1e12))
    assert sorted(one.baseline.paths("f").values()) == [1.0, 1.0]


def test_ecmp_is_per_hop_not_per_path():
    # A has next hops B and C; B has two next hops (X, Y) to D: per-hop split gives A-C 1/2
    G = graph([("A", "B", 1), ("A", "C", 1), ("B", "X", 1), ("B", "Y", 1), ("X", "D", 1),
               ("Y", "D", 1), ("C", "Z", 1), ("Z", "D", 1)])
    eng = build(G, [Demand("A", "D", 120, "f")], BIG)
    p = eng.baseline.paths("f")
    assert p["A-C"] == pytest.approx(0.5) and p["B-X"] == pytest.approx(0.25)


def test_avoid_links_and_hops_weight():
    G = graph([("A", "B", 1), ("B", "D", 1), ("A", "C", 5), ("C", "D", 5), ("D", "E", 1)])
    eng = build(G, [Demand("A", "E", 10, "f")], BIG)
    assert set(eng.baseline.paths("f")) == {"A-B", "B-D", "D-E"}
    out = eng.evaluate(NetState(avoid_links=frozenset({"A-B", "D-E"})))
    assert set(out.paths("f")) == {"A-C", "C-D", "D-E"}  # D-E is a bridge: still used
    assert out.path_changed[0] and out.reachable[0]
    hops = build(G, [Demand("A", "E", 10, "f")], EngineConfig(weight="hops", router_capacity=1e12))
    assert len(hops.baseline.paths("f")) == 5  # both 3-hop paths, split
    assert hops.baseline.latency_ms[0] == pytest.approx((3 + 11) / 2, abs=0.05)


# ----------------------------------------------------------------- load, loss, delay


def test_overload_on_a_line_drops_one_minus_cap_over_load_on_exactly_the_path():
    G = graph([("A", "B", 1, 100), ("B", "C", 1, 100), ("C", "D", 1, 100), ("B", "E", 1, 100)])
    eng = build(G, [Demand("A", "D", 150, "f")], BIG)
    b = eng.baseline
    on_path = {"A-B", "B-C", "C-D"}
    for lid, loss in zip(b.link_ids, b.link_loss):
        assert loss == pytest.approx(1 - 100 / 150 if lid in on_path else 0.0), lid
    assert b.link("A-B")["utilisation"] == pytest.approx(1.5)
    assert b.delivered_fraction[0] == pytest.approx((100 / 150) ** 3)
    assert b.latency_ms[0] == pytest.approx(3 + 3 * 50.0)  # saturated: queue at its cap
    # extra capacity removes the loss
    fix = eng.evaluate(NetState(extra_capacity={lid: 100.0 for lid in on_path}))
    assert fix.link_loss.max() == 0.0 and fix.delivered_fraction[0] == pytest.approx(1.0)
    assert fix.link("A-B")["capacity_mbps"] == 200.0


def test_queueing_delay_is_mm1():
    G = graph([("A", "B", 2, 100)])
    eng = build(G, [Demand("A", "B", 50, "f")], BIG)
    mu, lam = 100e6 / 8000, 50e6 / 8000
    assert eng.baseline.latency_ms[0] == pytest.approx(2 + 1e3 / (mu - lam))


def test_degradation_loss_compounds_and_ecmp_loss_is_exact():
    G = graph([("A", "B", 1), ("B", "C", 1)])
    eng = build(G, [Demand("A", "C", 10, "f")], BIG)
    out = eng.evaluate(NetState(link_loss={"A-B": 0.1, "B-C": 0.1}))
    assert out.delivered_fraction[0] == pytest.approx(0.81)
    sq = build(square(), [Demand("A", "D", 10, "f")], BIG)
    out = sq.evaluate(NetState(link_loss={"A-B": 0.5}))
    assert out.delivered_fraction[0] == pytest.approx(0.75)  # 0.5*0.5 + 0.5*1
    half = sq.evaluate(NetState(link_capacity_factor={"A-B": 0.5}))
    assert half.link("A-B")["capacity_mbps"] == 500.0


def test_router_overload_drops_the_excess():
    G = graph([("A", "B", 1), ("B", "C", 1)])
    eng = build(G, [Demand("A", "C", 80, "f")], EngineConfig(router_capacity=100.0, cascade=False))
    out = eng.evaluate(NetState(router_capacity_factor={"B": 0.5}))
    assert out.router("B")["loss"] == pytest.approx(1 - 50 / 80)
    assert out.delivered_fraction[0] == pytest.approx(50 / 80)
    assert out.router("A")["loss"] == 0.0


# ----------------------------------------------------------------- cascades


def cascade_graph():
    # four parallel S->T routes of increasing delay; the 2nd and 3rd have a 50 Mb/s hop
    return graph([
        ("S", "A", 1, 1000), ("A", "T", 1, 1000),
        ("S", "B", 2, 50), ("B", "T", 2, 1000),
        ("S", "C", 3, 50), ("C", "T", 3, 1000),
        ("S", "D", 4, 1000), ("D", "T", 4, 1000),
    ])


def test_cascade_has_depth_two():
    eng = build(cascade_graph(), [Demand("S", "T", 100, "f")], LINKS)
    out = eng.evaluate(NetState(failed_links=frozenset({"A-S"})))
    assert out.cascade_rounds == 2
    assert out.induced_links == (("B-S",), ("C-S",))
    assert out.failed_links == {"A-S", "B-S", "C-S"}
    assert set(out.paths("f")) == {"D-S", "D-T"}
    assert out.delivered_fraction[0] == pytest.approx(1.0)
    no = build(cascade_graph(), [Demand("S", "T", 100, "f")],
               EngineConfig(cascade=False, router_capacity=1e12))
    out = no.evaluate(NetState(failed_links=frozenset({"A-S"})))
    assert out.cascade_rounds == 0 and out.delivered_fraction[0] == pytest.approx(0.5)


def test_alpha_decides_whether_a_cut_cascades():
    # S->T is split over S-A-T and S-B-T (30 each); S-A and A-T carry 40 (40 % of S-A) in the
    # baseline and 70 after B-T fails, and router A receives 40, then 70. Motter-Lai
    # tolerance (1 + alpha) x 40 is 60 with alpha=0.5: S-A, A-T and A trip and every demand
    # is lost (S is cut off); with alpha=1 it is 80 and nothing trips. No physical capacity
    # is reached either way (S-A: 70 of 100).
    G = graph([("S", "A", 1, 100), ("A", "T", 1, 1000), ("S", "B", 1, 1000), ("B", "T", 1, 1000),
               ("S", "X", 5, 1000), ("X", "A", 5, 1000)])
    demands = [Demand("S", "T", 60, "st"), Demand("S", "A", 10, "sa"), Demand("A", "T", 10, "at")]
    cut = NetState(failed_links=frozenset({"B-T"}))
    tight = build(G, demands, EngineConfig(alpha=0.5, router_capacity=1e12, cascade_links=True))
    assert tight.baseline.link("A-S")["load_mbps"] == pytest.approx(40)
    out = tight.evaluate(cut)
    assert out.link("A-S")["capacity_mbps"] == 100
    assert (out.cascade_rounds, out.induced_links, out.induced_routers) == (1, (("A-S", "A-T"),), (("A",),))
    assert out.delivered_fraction.tolist() == [0.0, 0.0, 0.0]
    loose = build(G, demands, EngineConfig(alpha=1.0, router_capacity=1e12, cascade_links=True)).evaluate(cut)
    assert (loose.cascade_rounds, loose.induced_links, loose.induced_routers) == (0, (), ())
    assert loose.link("A-S")["load_mbps"] == pytest.approx(70) and loose.delivered_fraction.tolist() == [1.0] * 3


def test_links_do_not_fail_from_load_by_default_routers_do():
    # The same cut as above with the default rule (routers only): S-A and A-T carry 70
    # (over their tolerance 60 at alpha=0.5) but stay up, congested, and router A, which
    # receives 70 against a tolerance of 60, fails with its links.
    G = graph([("S", "A", 1, 100), ("A", "T", 1, 1000), ("S", "B", 1, 1000), ("B", "T", 1, 1000),
               ("S", "X", 5, 1000), ("X", "A", 5, 1000)])
    demands = [Demand("S", "T", 60, "st"), Demand("S", "A", 10, "sa"), Demand("A", "T", 10, "at")]
    cut = NetState(failed_links=frozenset({"B-T"}))
    out = build(G, demands, EngineConfig(alpha=0.5, router_capacity=1e12)).evaluate(cut)
    assert (out.cascade_rounds, out.induced_links, out.induced_routers) == (1, ((),), (("A",),))
    assert {"A-S", "A-T", "A-X"} <= out.failed_links
    # a link pushed past its tolerance without any router past its own: congestion, no cascade
    eng = build(cascade_graph(), [Demand("S", "T", 100, "f")], BIG)
    out = eng.evaluate(NetState(failed_links=frozenset({"A-S"})))
    assert out.cascade_rounds == 0 and out.delivered_fraction[0] == pytest.approx(0.5)


# ----------------------------------------------------------------- misconfiguration


def test_blackhole_drops_only_matching_destinations():
    G = graph([("A", "B", 1), ("B", "C", 1), ("C", "D", 1)])
    eng = build(G, [Demand("A", "D", 10, "ad"), Demand("A", "C", 10, "ac")], BIG)
    out = eng.evaluate(NetState(blackhole={"B": frozenset({"D"})}))
    assert not out.reachable[0] and out.delivered_fraction[0] == 0.0
    assert out.reachable[1] and out.delivered_fraction[1] == 1.0
    assert out.link("C-D")["load_mbps"] == 0.0 and out.link("A-B")["load_mbps"] == 20.0
    sq = build(square(), [Demand("A", "D", 10, "f")], BIG)
    half = sq.evaluate(NetState(blackhole={"B": None}))
    assert half.delivered_fraction[0] == pytest.approx(0.5) and half.latency_ms[0] == pytest.approx(2, abs=0.05)


def test_wrong_next_hop_loop_is_lost_and_detour_is_delivered():
    G = graph([("A", "B", 1), ("B", "C", 1), ("C", "D", 1), ("B", "E", 3), ("E", "D", 3)])
    eng = build(G, [Demand("A", "D", 10, "f")], BIG)
    loop = eng.evaluate(NetState(wrong_next_hop={"C": (frozenset({"D"}), "B")}))
    assert not loop.reachable[0] and loop.delivered_fraction[0] == 0.0
    detour = eng.evaluate(NetState(wrong_next_hop={"B": (None, "E")}))
    assert detour.delivered_fraction[0] == 1.0
    assert detour.latency_ms[0] == pytest.approx(1 + 3 + 3, abs=0.05)
    assert set(detour.paths("f")) == {"A-B", "B-E", "D-E"} and detour.path_changed[0]
    other = eng.evaluate(NetState(wrong_next_hop={"C": (frozenset({"A"}), "B")}))
    assert other.delivered_fraction[0] == 1.0 and not other.path_changed[0]
    with pytest.raises(ConfigError):
        eng.evaluate(NetState(wrong_next_hop={"A": (None, "D")}))


# ----------------------------------------------------------------- mitigations, surges


def test_rate_limit_is_a_meter_that_cuts_every_demand_of_the_source_alike():
    G = graph([("A", "B", 1)])
    eng = build(G, [Demand("A", "B", 60, "legit"), Demand("B", "A", 10, "back")], BIG)
    attack = (Demand("A", "B", 100, "atk"),)
    out = eng.evaluate(NetState(extra_demands=attack, rate_limit={"A": 80}))
    assert out.demand_ids == ("legit", "back", "atk")
    # no classifier: 160 Mbit/s offered at A, 80 admitted, every demand of A keeps half
    assert out.admitted_mbps.tolist() == pytest.approx([30, 10, 50])
    assert out.link("A-B")["load_fwd"] == pytest.approx(80)
    assert out.delivered_fraction[0] == pytest.approx(0.5) and out.delivered_fraction[1] == 1.0
    out = eng.evaluate(NetState(extra_demands=attack, rate_limit={"A": 200}))   # under the limit
    assert out.admitted_mbps.tolist() == pytest.approx([60, 10, 100])
    # an extra demand in the other direction, beside the baseline one (10)
    rev = eng.evaluate(NetState(extra_demands=(Demand("B", "A", 5, "rev"),)))
    assert rev.reachable.all() and rev.link("A-B")["load_rev"] == 15.0 and rev.link("A-B")["load_fwd"] == 60.0


def test_surge_overloads_and_load_aware_reroute_relieves():
    G = graph([("A", "B", 1, 100), ("B", "D", 1, 100), ("A", "C", 5, 1000), ("C", "D", 5, 1000)])
    eng = build(G, [Demand("A", "D", 60, "f")], EngineConfig(router_capacity=1e12, cascade=False))
    surge = (Demand("A", "D", 90, "surge"),)
    hot = eng.evaluate(NetState(extra_demands=surge))
    assert hot.link("A-B")["loss"] == pytest.approx(1 - 100 / 150)
    cool = eng.evaluate(NetState(extra_demands=surge, load_aware=True))
    assert cool.link_loss.max() == 0.0 and cool.link("A-C")["load_mbps"] == pytest.approx(150)
    assert cool.path_changed[0]


def test_unchanged_state_equals_baseline_and_bad_ids_are_refused():
    G = load_topology("as:60", seed=3)
    rng = random.Random(0)
    nodes = sorted(G)
    demands = [Demand(*rng.sample(nodes, 2), rng.uniform(10, 3000), f"f{i}") for i in range(200)]
    eng = build(G, demands)
    b, again = eng.baseline, eng.evaluate(NetState())
    for name in ("delivered_fraction", "link_load_mbps", "router_load_mbps", "link_loss"):
        np.testing.assert_array_equal(getattr(b, name), getattr(again, name))
    np.testing.assert_array_equal(b.latency_ms, again.latency_ms)
    assert not again.path_changed.any() and again.cascade_rounds == 0
    with pytest.raises(ConfigError):
        eng.evaluate(NetState(failed_links=frozenset({"nope"})))
    with pytest.raises(ConfigError):
        build(G, [Demand("AS0", "zzz", 1, "x")])
    with pytest.raises(ConfigError):
        eng.evaluate(NetState(link_loss={sorted(b.link_ids)[0]: 1.5}))
    with pytest.raises(ConfigError):
        eng.evaluate(NetState(blackhole={"AS0": frozenset({"nowhere"})}))
    with pytest.raises(ConfigError):
        build(G, [Demand("AS0", "AS1", 1, "x"), Demand("AS1", "AS0", 1, "x")])
    with pytest.raises(TopologyError):
        build(graph([("A", "B", 1), ("C", "D", 1)]), [])


@pytest.mark.parametrize("ecmp", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_random_failures_match_networkx(seed, ecmp):
    G = load_topology("as:60", seed=seed)
    rng = random.Random(seed)
    nodes = sorted(G)
    demands = [Demand(s, t, 1.0, f"{s}>{t}") for s in nodes[::3] for t in nodes[1::4] if s != t]
    eng = build(G, demands, EngineConfig(cascade=False, ecmp=ecmp))
    links = sorted(link_id(u, v) for u, v in G.edges)
    penalty = sum(d["delay_ms"] for *_, d in G.edges(data=True)) + 1
    for k in range(6):
        fl = frozenset(rng.sample(links, rng.randint(1, 8)))
        fr = frozenset(rng.sample(nodes, rng.randint(0, 2)))
        avoid = frozenset(rng.sample(links, 3)) if k % 2 else frozenset()
        out = eng.evaluate(NetState(failed_links=fl, failed_routers=fr, avoid_links=avoid))
        H = G.copy()
        H.remove_edges_from(tuple(lid.split("-")) for lid in fl)
        H.remove_nodes_from(fr)
        for u, v, d in H.edges(data=True):
            d["cost"] = d["delay_ms"] + (penalty if link_id(u, v) in avoid else 0.0)
        for i, d in enumerate(demands):
            ok = d.src in H and d.dst in H and nx.has_path(H, d.src, d.dst)
            assert bool(out.reachable[i]) == ok, (d, fl, fr)
            if ok:
                path = nx.shortest_path(H, d.src, d.dst, weight="cost")
                delay = sum(H[a][b]["delay_ms"] for a, b in zip(path, path[1:]))
                # tiny loads: queueing adds < 1e-3 ms per hop
                assert out.latency_ms[i] == pytest.approx(delay, abs=0.02), d
                before = {k: round(v, 9) for k, v in eng.baseline.paths(d.id).items()}
                after = {k: round(v, 9) for k, v in out.paths(d.id).items()}
                assert bool(out.path_changed[i]) == (before != after), d
                assert out.delivered_fraction[i] == pytest.approx(1.0)
            else:
                assert math.isnan(out.latency_ms[i]) and out.delivered_fraction[i] == 0.0


def per_hop_loads(H, demands, tol=1e-6):
    """Independent ground truth: per-hop equal ECMP split from networkx distances."""
    load = {}
    for d in demands:
        if d.src not in H or d.dst not in H or not nx.has_path(H, d.src, d.dst):
            continue
        dist = nx.single_source_dijkstra_path_length(H, d.dst, weight="delay_ms")
        inflow = {d.src: d.mbps}
        order = sorted((x for x in dist), key=lambda x: -dist[x])
        for u in order:
            f = inflow.get(u, 0.0)
            if f == 0.0 or u == d.dst:
                continue
            nh = [v for v in H[u] if abs(dist[u] - H[u][v]["delay_ms"] - dist[v]) <= tol]
            for v in nh:
                key = (u, v)
                load[key] = load.get(key, 0.0) + f / len(nh)
                inflow[v] = inflow.get(v, 0.0) + f / len(nh)
    return load


@pytest.mark.parametrize("seed", range(3))
def test_link_loads_match_independent_ecmp_computation(seed):
    G = load_topology("as:60", seed=seed)
    rng = random.Random(100 + seed)
    nodes = sorted(G)
    demands = [Demand(*rng.sample(nodes, 2), rng.uniform(1, 100), f"d{i}") for i in range(150)]
    eng = build(G, demands, EngineConfig(cascade=False))
    links = sorted(link_id(u, v) for u, v in G.edges)
    for fl in (frozenset(), frozenset(rng.sample(links, 4))):
        out = eng.evaluate(NetState(failed_links=fl))
        H = G.copy()
        H.remove_edges_from(tuple(lid.split("-")) for lid in fl)
        truth = per_hop_loads(H, demands)
        for lid, fwd, rev in zip(out.link_ids, out.link_load_fwd, out.link_load_rev):
            a, b = lid.split("-")
            assert fwd == pytest.approx(truth.get((a, b), 0.0), abs=1e-6), lid
            assert rev == pytest.approx(truth.get((b, a), 0.0), abs=1e-6), lid


# ----------------------------------------------------------------- fast path == exact walk

OUTCOME_ARRAYS = (
    "offered_mbps", "admitted_mbps", "routed_fraction", "reachable", "delivered_fraction", "loss_fraction",
    "latency_ms", "path_changed", "link_load_fwd", "link_load_rev", "link_load_mbps", "link_capacity_mbps",
    "link_utilisation", "link_loss", "link_failed", "router_load_mbps", "router_capacity_mbps",
    "router_utilisation", "router_loss", "router_failed",
)


def random_state(rng, G, nodes, links):
    kw = {"failed_links": frozenset(rng.sample(links, rng.randint(0, 4)))}
    if rng.random() < 0.2:
        kw["failed_routers"] = frozenset(rng.sample(nodes, rng.randint(1, 2)))
    if rng.random() < 0.6:  # squeezed links: overload and Motter-Lai cascades
        kw["link_capacity_factor"] = {lid: rng.uniform(0.01, 0.5) for lid in rng.sample(links, rng.randint(5, 40))}
    if rng.random() < 0.3:
        kw["link_loss"] = {lid: rng.uniform(0, 0.2) for lid in rng.sample(links, 3)}
    if rng.random() < 0.5:  # surges
        kw["extra_demands"] = tuple(
            Demand(*rng.sample(nodes, 2), rng.uniform(1000, 20000), f"x{i}") for i in range(rng.randint(1, 4))
        )
    if rng.random() < 0.5:
        kw["blackhole"] = {
            r: None if rng.random() < 0.3 else frozenset(rng.sample(nodes, rng.randint(1, 10)))
            for r in rng.sample(nodes, rng.randint(1, 2))
        }
    if rng.random() < 0.5:
        kw["wrong_next_hop"] = {
            r: (None if rng.random() < 0.3 else frozenset(rng.sample(nodes, rng.randint(1, 10))), rng.choice(sorted(G[r])))
            for r in rng.sample(nodes, rng.randint(1, 3))
        }
    if rng.random() < 0.2:
        kw["rate_limit"] = {r: rng.uniform(10, 300) for r in rng.sample(nodes, 3)}
    if rng.random() < 0.3:
        kw["avoid_links"] = frozenset(rng.sample(links, 3))
    kw["load_aware"] = rng.random() < 0.3
    return NetState(**kw)


@pytest.mark.parametrize("cfg", [EngineConfig(), EngineConfig(ecmp=False), EngineConfig(weight="hops")],
                         ids=["ecmp", "no-ecmp", "hops-ecmp"])
@pytest.mark.parametrize("seed", range(2))
def test_fast_routing_equals_exact_walk(seed, cfg, monkeypatch):
    """The vectorised DAG routing (table and per-hop variants) gives the exact walk's outcome."""
    import harness.twin.flow.routing as routing_mod

    G = load_topology("as:200", seed=seed)
    rng = random.Random(seed)
    nodes = sorted(G)
    links = sorted(link_id(u, v) for u, v in G.edges)
    demands = [Demand(*rng.sample(nodes, 2), round(rng.lognormvariate(4, 1.5), 1), f"d{i}") for i in range(300)]
    demands.append(Demand(nodes[0], nodes[0], 5.0, "self"))
    modes = {"exact": (True, routing_mod._DAG_TABLE_MAX), "table": (False, 10**12), "per-hop": (False, 0)}

    def in_mode(mode, fn, *args):
        with monkeypatch.context() as mp:
            mp.setattr(routing_mod, "_EXACT_ONLY", modes[mode][0])
            mp.setattr(routing_mod, "_DAG_TABLE_MAX", modes[mode][1])
            return fn(*args)

    engines = {mode: in_mode(mode, build, G, demands, cfg) for mode in modes}
    states = [NetState()] + [random_state(rng, G, nodes, links) for _ in range(12)]
    cascades = 0
    for st in states:
        ref = in_mode("exact", engines["exact"].evaluate, st)
        cascades += ref.cascade_rounds > 0
        for mode in ("table", "per-hop"):
            out = in_mode(mode, engines[mode].evaluate, st)
            for name in OUTCOME_ARRAYS:
                a, b = getattr(out, name), getattr(ref, name)
                if a.dtype == bool:
                    assert np.array_equal(a, b), (mode, name, st)
                else:
                    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=f"{mode} {name} {st}")
            for name in ("failed_links", "failed_routers", "induced_links", "induced_routers", "cascade_rounds"):
                assert getattr(out, name) == getattr(ref, name), (mode, name, st)
            diff = out._fractions - ref._fractions
            assert diff.nnz == 0 or abs(diff).max() <= 1e-12, (mode, st)
    assert cascades > 0, cascades  # the states exercise cascade rounds


def test_cascade_reroutes_demands_diverted_by_a_misconfiguration():
    # A-B-C-D is the short way (3 ms), A-E-D the long one (10 ms). B sends traffic for D
    # back to A: A's traffic for D loops (A -> B -> A -> B). A surge C -> D trips C-D; the
    # IGP then takes A-E-D at A, and the demand is delivered although C-D was never on
    # its (looping) route.
    G = graph([("A", "B", 1), ("B", "C", 1), ("C", "D", 1, 100.0), ("A", "E", 5), ("E", "D", 5)])
    # a large alpha: only C-D's physical capacity trips (not D, whose received load the surge
    # multiplies)
    eng = build(G, [Demand("A", "D", 10.0, "ad")], EngineConfig(router_capacity=1e12, alpha=100.0,
                                                                cascade_links=True))
    wnh = {"B": (frozenset({"D"}), "A")}
    looped = eng.evaluate(NetState(wrong_next_hop=wnh))
    assert looped.routed_fraction[0] == 0.0 and looped.cascade_rounds == 0
    out = eng.evaluate(NetState(wrong_next_hop=wnh, extra_demands=(Demand("C", "D", 500.0, "surge"),)))
    assert out.induced_links == (("C-D",),)
    assert out.routed_fraction[0] == 1.0 and out.paths("ad") == {"A-E": 1.0, "D-E": 1.0}
    # the surge now goes C -> B, is sent back to A by B, then A -> E -> D
    assert out.paths("surge") == {"B-C": 1.0, "A-B": 1.0, "A-E": 1.0, "D-E": 1.0}
