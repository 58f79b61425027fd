"""Scenario files: YAML/JSON/JSONL round trips and malformed files."""

from __future__ import annotations

import pytest

from harness.errors import ScenarioError
from harness.scenario import Event, Scenario, read_scenarios, validate_scenario, write_scenarios


def make(i: int) -> Scenario:
    return Scenario(id=f"s{i}", topology="topozoo/Abilene", description="a cut",
                    events=[Event(event_type="fiber_link_failure", target="Denver-KansasCity", timestamp=1.5 * i)])


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".jsonl"])
def test_round_trip(tmp_path, suffix, abilene_kg):
    items = [make(1), make(2)]
    p = tmp_path / f"s{suffix}"
    write_scenarios(items, p)
    back = [Scenario.model_validate(r) for r in read_scenarios(p)]
    assert back == items
    assert validate_scenario(abilene_kg, back[0]).events[0].target == "Denver-KansasCity"


@pytest.mark.parametrize("name, text, words", [
    ("bad.yaml", "id: [unclosed", "malformed YAML"),
    ("bad.json", "{", "malformed JSON"),
    ("bad.jsonl", '{"id": "a"}\n{oops\n', "bad.jsonl:2"),
    ("bad.txt", "id: a", "unknown scenario file type"),
    ("empty.yaml", "", "expected a scenario"),
    ("scalar.yaml", "42", "expected a scenario"),
])
def test_malformed_files(tmp_path, name, text, words):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ScenarioError, match=words):
        read_scenarios(p)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="not found"):
        read_scenarios(tmp_path / "nope.yaml")
