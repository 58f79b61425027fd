"""Scenario files: YAML or JSON (one scenario or a list), JSONL (one per line)."""

from __future__ import annotations

import json
import sys
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


#: The scenario file types, by extension.
SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")


def check_output(path: str | Path) -> None:
    """Refuse an output path whose extension names no scenario format (before any work)."""
    if str(path) != "-" and Path(path).suffix.lower() not in SUFFIXES:
        raise ScenarioError(f"{path}: unknown scenario file type {Path(path).suffix or '(none)'}; "
                            "use .yaml, .yml, .json, .jsonl or - (standard output)")


def write_scenarios(scenarios: Iterable[Scenario], path: str | Path) -> None:
    """Write scenarios atomically, in the format the extension names: JSONL for ``.jsonl``,
    JSON for ``.json``, YAML for ``.yaml``/``.yml`` (one scenario as a mapping, several as a
    list); ``-`` is standard output, as JSONL. Any other extension is refused."""
    dumped = [s.model_dump(mode="json") for s in scenarios]
    if str(path) == "-":
        sys.stdout.write("".join(json.dumps(d) + "\n" for d in dumped))
        sys.stdout.flush()
        return
    check_output(path)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        text = "".join(json.dumps(d) + "\n" for d in dumped)
    elif suffix == ".json":
        text = json.dumps(dumped if len(dumped) != 1 else dumped[0], indent=2) + "\n"
    else:
        text = yaml.safe_dump(dumped if len(dumped) != 1 else dumped[0], sort_keys=False)
    atomic_write(path, text)
