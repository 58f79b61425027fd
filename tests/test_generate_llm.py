"""LLM scenario generation with the real embedded model (SmolLM2 via xllamacpp)."""

from __future__ import annotations

import pytest

from harness.errors import LLMError
from harness.generate import GenState, Feedback
from harness.generate.llm import LLMGenerator, event_schema, kg_context, parse_event
from harness.scenario.causal import admissible_events
from harness.llm import EmbeddedServer
from harness.scenario import Scenario, check_scenario

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer() as s:
        yield s


def make(server, **kw) -> LLMGenerator:
    return LLMGenerator(llm_url=server.url, model=server.model, compact_grammar=True, **kw)


def test_twenty_constrained_scenarios_are_all_valid(server, abilene_kg):
    state = GenState(topology="topozoo/Abilene", max_events=2)
    with make(server) as gen:
        out = gen.propose(abilene_kg, state, None, 20, seed=3)
    assert len(out) == 20
    verdicts = [check_scenario(abilene_kg, s) for s in out]
    assert all(isinstance(v, Scenario) for v in verdicts), [str(v[0]) for v in verdicts if not isinstance(v, Scenario)]
    assert [r["id"] for r in gen.records] == [s.id for s in out]
    for s, r in zip(out, gen.records):
        assert s.description and len(s.description) <= 300
        assert s.provenance.model == server.model and s.provenance.prompt_hash == r["prompt_hash"]
        assert r["tokens"] > 0 and r["attempts"] >= len(s.events)
    assert len({(e.event_type, e.target) for s in out for e in s.events}) > 3
    sigs = [frozenset((e.event_type, e.target) for e in s.events) for s in out]
    assert len(set(sigs)) == len(sigs)            # no evaluation spent on a repeat (llm.unseen)


def test_the_last_step_leaves_out_repeats(abilene_kg):
    from harness.generate.llm import unseen

    def sc(i, *evs):      # shapes only: unseen compares (type, target) sets
        return Scenario.model_validate({"id": f"s{i}", "topology": "topozoo/Abilene", "events": [
            {"event_type": et, "target": t, "timestamp": 1.0 + j} for j, (et, t) in enumerate(evs)]})

    options = {"fiber_link_failure": ["Chicago-NewYork", "Denver-KansasCity"], "router_failure": ["Denver"]}
    history = [sc(0, ("router_failure", "Denver")), sc(1, ("router_failure", "Atlanta"), ("fiber_link_failure", "Chicago-NewYork"))]
    assert unseen(options, [], history) == {"fiber_link_failure": ["Chicago-NewYork", "Denver-KansasCity"]}
    prev = history[1].events[:1]
    assert unseen(options, prev, history) == {"fiber_link_failure": ["Denver-KansasCity"], "router_failure": ["Denver"]}
    assert unseen({"router_failure": ["Denver"]}, [], history) == {"router_failure": ["Denver"]}   # nothing else left
    assert unseen(options, [], []) == options


def test_unconstrained_ablation_is_measured_not_assumed(server, abilene_kg):
    state = GenState(topology="topozoo/Abilene", max_events=2)
    with make(server, constrained=False) as gen:
        out = gen.propose(abilene_kg, state, None, 4, seed=5)
    assert len(gen.records) == 4
    validity = sum(isinstance(check_scenario(abilene_kg, s), Scenario) for s in out) / 4
    print(f"unconstrained validity on Abilene: {validity:.0%}")
    # every attempt is either a proposed scenario or says why the model's output was unusable
    assert {r["id"] for r in gen.records if r["id"]} == {s.id for s in out}
    assert all(r["id"] or r["reason"] for r in gen.records)


def test_no_kg_prompt_has_no_graph_context_and_any_names(server, abilene_kg):
    gen = make(server, use_kg=False)
    options = gen._options(abilene_kg, [], 0.0, ["fiber_link_failure"])
    assert options == {"fiber_link_failure": abilene_kg.links}
    prompt = gen._prompt(abilene_kg, GenState(topology="t"), None, [], options, 1, 0)
    assert "Network context" not in prompt and "utilisation" not in prompt
    with_kg = make(server)._prompt(abilene_kg, GenState(topology="t"), None, [], options, 1, 0)
    assert "Busiest links" in with_kg


def test_feedback_reaches_the_prompt_only_when_enabled(server, abilene_kg):
    fb = Feedback(worst=[{"id": "x", "events": "fiber_link_failure@Denver-KansasCity", "loss_pct": 12.0,
                          "impacted_nodes": 5, "cascade_depth": 1, "why": "flows cut off"}])
    on = make(server)._prompt(abilene_kg, GenState(), fb, [], {"router_failure": ["Denver"]}, 1, 0)
    off = make(server, use_feedback=False)._prompt(abilene_kg, GenState(), fb, [], {"router_failure": ["Denver"]}, 1, 0)
    assert "Earlier results" in on and "fiber_link_failure@Denver-KansasCity: loss 12.0%" in on
    assert "Earlier results" not in off and "loss 12.0%" not in off


def test_schema_enums_are_exactly_the_admissible_set(abilene_kg):
    options = admissible_events(abilene_kg, [{"event_type": "router_failure", "target": "Denver", "timestamp": 5.0,
                                              "duration_s": None, "params": {}}], at=5.0)
    schema = event_schema(options, 5.0, 600.0)
    branches = {b["properties"]["event_type"]["const"]: b["properties"]["target"]["enum"] for b in schema["anyOf"]}
    assert branches == options
    assert "Denver" not in branches["router_failure"]
    assert all(b["additionalProperties"] is False for b in schema["anyOf"])


def test_untrusted_output_parsing():
    assert parse_event('Sure! {"event_type": "router_failure", "target": "x"} done') == \
        {"event_type": "router_failure", "target": "x"}
    assert parse_event("no json here") is None
    assert parse_event("[1, 2]") is None


def test_server_down_is_a_clear_error(abilene_kg):
    with LLMGenerator(llm_url="http://127.0.0.1:9/v1", model="m") as gen:
        gen._client = None
        from harness.llm import LLMClient
        gen._client = LLMClient("http://127.0.0.1:9/v1", model="m", retries=0, timeout_s=2)
        with pytest.raises(LLMError, match="127.0.0.1:9"):
            gen.propose(abilene_kg, GenState(topology="topozoo/Abilene"), None, 1, seed=0)


def test_context_mentions_neighbours_flows_and_headroom(abilene_kg):
    text = kg_context(abilene_kg, "Denver-KansasCity")
    assert "Router Denver neighbours" in text and "headroom" in text and "flows cross Denver-KansasCity" in text


def test_best_of_n_keeps_the_most_damaging_valid_candidate(server, abilene_kg):
    """screen=3: three candidates per scenario, each valid one run on the flow twin; the kept
    one is the worst of them, and the screening is in its provenance."""
    from harness.twin.flow.twin import FlowTwin

    state = GenState(topology="topozoo/Abilene", max_events=2)
    with make(server, screen=3) as gen:
        assert gen.label == "llm+best3"
        out = gen.propose(abilene_kg, state, None, 2, seed=5)
    assert len(out) == 2
    twin = FlowTwin()
    for s in out:
        scr = s.provenance.extra["screening"]
        assert scr["candidates"] == 3 and 1 <= scr["valid"] <= 3 and scr["flow_twin_evaluations"] == scr["valid"]
        kept = twin.run(abilene_kg, check_scenario(abilene_kg, s), None).row("failure").loss_pct
        assert kept == pytest.approx(max(scr["losses_pct"]), abs=1e-3)


def test_feedback_grows_chains_from_the_most_damaging_scenario(server, abilene_kg):
    """With feedback, some two-event proposals keep the worst scenario's first event and the
    model writes the second (seed 4: proposals 0 and 5 chain, deterministically); every
    proposal stays valid, and without feedback nothing chains."""
    from harness.scenario import validate_scenario

    parent = validate_scenario(abilene_kg, {"id": "worst-1", "topology": "topozoo/Abilene", "events": [
        {"event_type": "router_failure", "target": "KansasCity", "timestamp": 5.0}]})
    fb = Feedback(worst=[{"id": "worst-1", "events": "router_failure@KansasCity", "targets": ["KansasCity"],
                          "loss_pct": 40.0, "impacted_nodes": 3, "cascade_depth": 0, "why": ""}])
    state = GenState(topology="topozoo/Abilene", max_events=2, history=[parent])
    with make(server) as gen:
        out = gen.propose(abilene_kg, state, fb, 6, seed=4)
    assert all(isinstance(check_scenario(abilene_kg, s), Scenario) for s in out)
    chained = [s for s in out if s.provenance.extra.get("continues") == "worst-1"]
    assert len(chained) == 2
    for s in chained:
        assert len(s.events) == 2 and s.events[0] == parent.events[0] and s.events[1].timestamp >= 5.0
    with make(server, use_feedback=False) as gen:
        assert not any(s.provenance.extra.get("continues") for s in gen.propose(abilene_kg, state, fb, 6, seed=4))


def test_feedback_steers_the_shortlist_only_when_enabled(abilene_kg):
    """With feedback, the worst scenarios' targets and their surroundings are offered first;
    the no-feedback ablation does not see them."""
    from harness.generate.shortlist import neighbourhood, shortlist

    opts = admissible_events(abilene_kg, [])
    focus = ["Seattle-Sunnyvale"]
    near = neighbourhood(abilene_kg, [], focus)
    assert {"Seattle", "Sunnyvale", "Seattle-Sunnyvale"} <= near
    steered = shortlist(abilene_kg, opts, [], limit=16, focus=focus)
    plain = shortlist(abilene_kg, opts, [], limit=16)
    assert steered.sources["neighbourhood"] > 0 and plain.sources["neighbourhood"] == 0


def test_the_offered_width_starts_at_the_most_critical_and_widens(abilene_kg):
    """With the graph: NARROW candidates at the arm's first proposal, GROWTH more per proposal
    in its history, capped at the shortlist limit; the prompt lists them most critical first
    with their share of the demand. Without it: always the limit, listed by name."""
    from harness.generate.llm import GROWTH, NARROW
    from harness.generate.shortlist import scores, shortlist

    assert LLMGenerator(narrow=20, growth=0)._width(GenState(history=[object()] * 9)) == 20

    gen = LLMGenerator(llm_url="http://127.0.0.1:9/v1", model="m")
    history = [object()] * 3
    assert gen._width(GenState()) == NARROW
    assert gen._width(GenState(history=history)) == NARROW + 3 * GROWTH
    assert gen._width(GenState(history=[object()] * 1000)) == gen.shortlist_limit
    assert LLMGenerator(use_kg=False)._width(GenState()) == gen.shortlist_limit
    short = shortlist(abilene_kg, admissible_events(abilene_kg, []), limit=gen._width(GenState()))
    assert short.size <= NARROW
    line = gen._targets_line(abilene_kg, short.options)
    top = max(scores(abilene_kg)["router"].items(), key=lambda kv: kv[1])
    assert line.index(f"router_failure {top[0]} ({top[1]:.0%})") < line.index("fiber_link_failure")
    assert LLMGenerator(use_kg=False)._targets_line(abilene_kg, {"router_failure": ["Seattle", "Atlanta"]}) \
        == "Targets: Atlanta, Seattle."


def test_unconstrained_names_the_graph_lacks_end_the_chain_for_the_validator(abilene_kg, monkeypatch):
    """Unit seam beside the real-model test above: without the grammar the model may write an
    event type as a target (seen from SmolLM2 on Abilene: ``router_failure`` on ``router_failure``).
    Nothing builds on such an event — a second step replays the events so far on the graph, which
    crashed a whole campaign — the scenario goes to the validator, which rejects it by name."""
    from harness.llm.client import Completion

    reply = '{"event_type": "router_failure", "target": "router_failure", "timestamp": 5, "severity": "high"}'
    gen = LLMGenerator(llm_url="http://127.0.0.1:9/v1", model="m", constrained=False)
    monkeypatch.setattr(gen, "_complete", lambda prompt, schema, seed: Completion(reply, "m", 1, 1, "stop", 0.0))
    out = gen.propose(abilene_kg, GenState(topology="topozoo/Abilene", max_events=2), None, 6, seed=1)
    assert len(out) == 6 and {len(s.events) for s in out} == {1}
    for s in out:
        problems = check_scenario(abilene_kg, s)
        assert not isinstance(problems, Scenario) and "router_failure" in str(problems[0])
