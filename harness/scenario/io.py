"""Scenario files: YAML or JSON (one scenario or a list), JSONL (one per line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import yaml

from harness.errors import ScenarioError
from harness.fileio import atomic_write
from harness.scenario.model import Scenario


def read_scenarios(path: str | Path) -> list[dict]:
    """Raw scenario records from a file (shape is checked by the validator, not here)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path} is a directory, not a scenario file") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path} is not a text file") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as exc:
                    raise ScenarioError(f"{path}:{lineno}: malformed JSON: {exc}") from None
    elif suffix == ".json":
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise ScenarioError(f"{path}: malformed JSON: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            records = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: malformed YAML: {str(exc).splitlines()[0]}"
                                + (f" (line {exc.problem_mark.line + 1})" if getattr(exc, "problem_mark", None) else "")) from None
    else:
        raise ScenarioError(f"{path}: unknown scenario file type {suffix or '(none)'}; use .yaml, .yml, .json or .jsonl")
    if isinstance(records, dict) and "scenarios" in records:
        records = records["scenarios"]
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise ScenarioError(f"{path}: expected a scenario mapping or a list of them")
    return records


def write_scenarios(scenarios: Iterable[Scenario], path: str | Path) -> None:
    """Write scenarios atomically: JSONL for ``.jsonl``, else YAML (a list) or JSON."""
    path = Path(path)
    dumped = [s.model_dump(mode="json") for s in scenarios]
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(d) + "\n" for d in dumped)
    elif path.suffix == ".json":
        text = json.dumps(dumped if len(dumped) != 1 else dumped[0], indent=2) + "\n"
    else:
        text = yaml.safe_dump(dumped if len(dumped) != 1 else dumped[0], sort_keys=False)
    atomic_write(path, text)
