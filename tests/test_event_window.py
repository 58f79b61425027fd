"""Scenarios worth running (issue 14 item 5): every event leaves a measurable tail of the horizon
(the validator and the LLM's schema agree), and a model's description ships only when the
events support it."""

from __future__ import annotations

import random

from harness.generate.llm import derived_description, event_schema, supported
from harness.generate.random_gen import random_events
from harness.scenario import validate_scenario
from harness.scenario.model import Event, latest_event_time


def _scenario(t: float, horizon: float = 600.0) -> dict:
    return {"id": "late", "topology": "topozoo/Abilene", "horizon_s": horizon,
            "events": [{"event_type": "router_failure", "target": "Houston", "timestamp": t, "severity": "high"}]}


def test_an_event_at_the_horizon_is_rejected_with_the_window_it_needs(abilene_kg):
    assert latest_event_time(600.0) == 570.0 and latest_event_time(20.0) == 19.0
    validate_scenario(abilene_kg, _scenario(570.0))
    from harness.errors import ScenarioInvalid

    try:
        validate_scenario(abilene_kg, _scenario(600.0))
    except ScenarioInvalid as exc:
        assert any(r.rule == "R3-time" and "to measure its effect (latest: 570 s)" in r.message for r in exc.reasons)
    else:
        raise AssertionError("an event at t = horizon was accepted")


def test_the_llm_schema_and_the_random_generator_stay_inside_the_window(abilene_kg):
    schema = event_schema({"router_failure": ["Houston"]}, 0.0, latest_event_time(600.0))
    assert schema["properties"]["timestamp"]["maximum"] == 570.0
    rng = random.Random(1)
    for _ in range(50):
        events = random_events(abilene_kg, rng, 3, 60.0, None)
        assert all(e.timestamp <= latest_event_time(60.0) for e in events)


def test_a_description_ships_only_when_the_events_support_it():
    ev = [Event(event_type="router_failure", target="Houston", timestamp=10, severity="high"),
          Event(event_type="fiber_link_failure", target="Denver-KansasCity", timestamp=40, severity="low")]
    assert not supported("{{#type:tblFlapse}}", ev)          # what a real vLLM answer looked like
    assert not supported("A router fails somewhere.", ev)     # names no target
    assert supported("Houston fails, then the denver-kansas city fibre is cut.", ev)

    class KG:
        name = "Abilene"

    text = derived_description(KG, ev)
    assert text == ("Router failure on Houston at 10 s (high), then fiber link failure on Denver-KansasCity "
                    "at 40 s (low) on Abilene.")
    assert supported(text, ev)
