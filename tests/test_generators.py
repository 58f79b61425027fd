"""Non-LLM generators produce valid scenarios; metrics on hand-made sets."""

from __future__ import annotations

import math

import pytest

from harness.errors import ConfigError
from harness.generate import GenState, generator_names, make_generator
from harness.generate.metrics import cascade_depth, diversity, novelty, validity_rate
from harness.generate.replay import read_incidents
from harness.generate.rule import rule_order
from harness.scenario import Event, Scenario, check_scenario


def valid(kg, scenarios):
    return [s for s in scenarios if isinstance(check_scenario(kg, s), Scenario)]


@pytest.mark.parametrize("name", ["rule", "random", "replay", "greedy"])
def test_baselines_produce_valid_scenarios(abilene_kg, name):
    state = GenState(topology="topozoo/Abilene")
    out = make_generator(name).propose(abilene_kg, state, None, 8, seed=1)
    assert len(out) == 8
    assert len(valid(abilene_kg, out)) == 8
    assert all(s.provenance.generator == name for s in out)
    assert len({s.id for s in out}) == 8


def test_mutate_keeps_only_valid_children(abilene_kg):
    state = GenState(topology="topozoo/Abilene")
    state.history = make_generator("rule").propose(abilene_kg, state, None, 5, seed=0)
    out = make_generator("mutate").propose(abilene_kg, state, None, 10, seed=2)
    assert out and len(valid(abilene_kg, out)) == len(out)
    parents = {s.id for s in state.history}
    assert all(s.provenance.extra["parent"] in parents for s in out)


def test_rule_order_links_then_routers_by_betweenness(abilene_kg):
    order = rule_order(abilene_kg)
    assert [t for t, _ in order] == ["fiber_link_failure"] * 14 + ["router_failure"] * 11 + ["power_outage"] * 11
    import networkx as nx
    nb = nx.betweenness_centrality(abilene_kg.topology, weight="delay_ms")
    routers = [r for t, r in order if t == "router_failure"]
    assert [nb[r] for r in routers] == sorted(nb.values(), reverse=True)


def test_rule_continues_where_history_left_off(abilene_kg):
    gen = make_generator("rule")
    state = GenState(topology="topozoo/Abilene")
    first = gen.propose(abilene_kg, state, None, 3, 0)
    state.history += first
    second = gen.propose(abilene_kg, state, None, 3, 0)
    assert not {s.events[0].target for s in first} & {s.events[0].target for s in second}


def test_random_is_seeded(abilene_kg):
    state = GenState(topology="topozoo/Abilene")
    a = make_generator("random").propose(abilene_kg, state, None, 4, 7)
    b = make_generator("random").propose(abilene_kg, state, None, 4, 7)
    c = make_generator("random").propose(abilene_kg, state, None, 4, 8)
    assert a == b and a != c


def test_greedy_grows_damage(abilene_kg):
    from harness.twin.flow.engine import NetState
    from harness.twin.flow.twin import FlowTwin

    gen = make_generator("greedy")
    s = gen.propose(abilene_kg, GenState(topology="topozoo/Abilene", max_events=3), None, 1, 0)[0]
    eng = FlowTwin().engine(abilene_kg)
    n = len(abilene_kg.flows)
    losses = []
    for k in range(1, len(s.events) + 1):
        out = eng.evaluate(NetState(failed_links=frozenset(e.target for e in s.events[:k])))
        losses.append(float((out.offered_mbps[:n] * out.loss_fraction[:n]).sum()))
    assert losses == sorted(losses) and len(set(losses)) == len(losses)


def test_replay_skips_unknown_targets(bridge_kg, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"id": "a", "event_type": "router_failure", "target": "A"}\n'
                   '{"id": "b", "event_type": "router_failure", "target": "Atlantis"}\n')
    gen = make_generator("replay", log=log)
    out = gen.propose(bridge_kg, GenState(topology="line_bridge"), None, 3, 0)
    assert [s.events[0].target for s in out] == ["A", "A", "A"]
    assert gen.skipped == 1
    log.write_text("nope\n")
    with pytest.raises(ConfigError, match="log.jsonl:1"):
        read_incidents(log)


def test_unknown_generator_refused():
    with pytest.raises(ConfigError, match="unknown generator 'oracle'"):
        make_generator("oracle")
    assert {"rule", "random", "replay", "greedy", "mutate"} <= set(generator_names())


def mk(*pairs):
    return Scenario(id="x", events=[Event(event_type=t, target=g, timestamp=float(i)) for i, (t, g) in enumerate(pairs)])


def test_metrics_on_hand_made_sets():
    a = mk(("fiber_link_failure", "A-B"))
    b = mk(("fiber_link_failure", "A-B"), ("router_failure", "C"))
    c = mk(("router_failure", "D"))
    d = diversity([a, b, c])
    assert d["distinct_pairs"] == 3
    # Jaccard distances: a-b 1-1/2, a-c 1, b-c 1  -> mean 5/6
    assert d["mean_jaccard_distance"] == pytest.approx(5 / 6)
    # types: 2 fiber, 2 router -> 1 bit
    assert d["type_entropy_bits"] == pytest.approx(1.0)
    assert diversity([a])["type_entropy_bits"] == 0.0
    assert validity_rate(3, 4) == 0.75 and validity_rate(0, 0) == 0.0
    assert cascade_depth([0, 2, 1]) == {"mean": 1.0, "max": 2}
    assert novelty([a, c], [{"event_type": "fiber_link_failure", "target": "A-B"}]) == 0.5
    assert not math.isnan(diversity([])["mean_jaccard_distance"])
