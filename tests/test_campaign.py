"""Campaigns: the loop end to end on the flow twin, SIGKILL and resume, integrity checks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.campaign import CampaignStore, load_spec, parse_spec, run_campaign
from harness.errors import CampaignError

SPEC = {
    "name": "flowonly",
    "topology": "topozoo/Abilene",
    "generators": [{"generator": "rule"}, {"generator": "random"}, {"generator": "replay"},
                   {"generator": "greedy"}, {"generator": "mutate"}],
    "budget": {"iterations": 3, "per_iteration": 3},
    "mitigation": ["auto", "none"],
    "seed": 5,
}


def kpis(root: Path) -> dict:
    """Every result's KPI rows, keyed by file name (timings left out)."""
    store = CampaignStore(root)
    return {f"{m['label']}/{r.scenario_id}/{r.twin}/{m['mitigation']}": {p: row.model_dump() for p, row in r.rows.items()}
            for m, r in store.results()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref") / "c"
    summary = run_campaign(root, parse_spec(SPEC))
    assert summary.accepted > 0 and summary.runs["flow"] == 2 * summary.accepted
    return root


def test_campaign_directory_is_complete(reference):
    store = CampaignStore(reference)
    scen = [json.loads(l) for l in (reference / "scenarios.jsonl").read_text().splitlines()]
    labels = {s["label"] for s in scen}
    assert labels == {"rule", "random", "replay", "greedy", "mutate"}
    df = store.results_frame()
    assert set(df["phase"]) == {"baseline", "failure", "mitigated"}
    assert set(df["mitigation"]) == {"auto", "none"}
    assert len(df) == len(scen) * (3 + 2) * 10  # auto: 3 phases, none: 2 phases; 10 KPIs each
    proposals = list((reference / "proposals").rglob("*.json"))
    assert len(proposals) == 5 * 3
    # mutate builds on what the campaign found: its parents exist among earlier scenarios.
    ids = {s["id"] for s in scen}
    assert all(s["provenance"]["extra"]["parent"] in ids for s in scen if s["label"] == "mutate")


def test_resume_of_a_finished_campaign_adds_nothing(reference, tmp_path):
    before = kpis(reference)
    summary = run_campaign(reference, resume=True)
    assert summary.runs == {}
    assert kpis(reference) == before


def _units(root: Path) -> int:
    """Campaign units written so far (proposals, verdicts, results), temporaries excluded."""
    return sum(1 for p in root.rglob("*.json") if not p.name.startswith(".")) if root.is_dir() else 0


def test_sigkill_at_random_points_then_resume_loses_and_duplicates_nothing(reference, tmp_path):
    """Kill on progress, not on wall time: each attempt is killed once the directory holds a
    random number of units short of the finished campaign's, so at least one kill happens on
    any machine speed."""
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    root = tmp_path / "killed"
    total = _units(reference)
    rng = random.Random(11)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "harness.cli", "campaign", "run", str(spec_file), "-o", str(root)]
    kills = 0
    for attempt in range(4):
        done = _units(root)
        if total - done < 2:
            break
        target = rng.randint(done + 1, min(total - 1, done + max(1, (total - done) // 2)))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=Path.cwd())
        while proc.poll() is None and _units(root) < target:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))   # land anywhere, mid-write included
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err.decode(errors="replace")[-2000:]
        cmd = [sys.executable, "-m", "harness.cli", "campaign", "run", str(root), "--resume"]
    subprocess.run([sys.executable, "-m", "harness.cli", "campaign", "run", str(root), "--resume"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    assert kills >= 1, "every attempt finished before its kill"
    assert kpis(root) == kpis(reference)
    ref_lines = (reference / "scenarios.jsonl").read_text().splitlines()
    assert (root / "scenarios.jsonl").read_text().splitlines() == ref_lines
    assert not list(root.rglob(".*.tmp"))


def test_hand_edited_result_is_detected(reference, tmp_path):
    import shutil

    root = tmp_path / "c"
    shutil.copytree(reference, root)
    unit = sorted((root / "results").glob("*.json"))[0]
    data = json.loads(unit.read_text())
    data["body"]["result"]["rows"]["failure"]["loss_pct"] = 0.0
    unit.write_text(json.dumps(data))
    with pytest.raises(CampaignError, match="modified or corrupted"):
        CampaignStore(root).results()
    unit.write_text("{not json")
    with pytest.raises(CampaignError, match="corrupt"):
        CampaignStore(root).results()


def test_verify_checks_every_unit_and_the_result_count(reference, tmp_path):
    import shutil

    root = tmp_path / "c"
    shutil.copytree(reference, root)
    n = CampaignStore(root).verify()
    assert n == len(list(root.glob("*/**/*.json"))) + 1
    proposal = sorted((root / "proposals").rglob("*.json"))[0]       # not read by results()
    data = json.loads(proposal.read_text())
    data["body"]["iteration"] = 99
    proposal.write_text(json.dumps(data))
    CampaignStore(root).results_frame()                              # the old check misses it
    with pytest.raises(CampaignError, match="modified or corrupted"):
        CampaignStore(root).verify()
    shutil.rmtree(root)
    shutil.copytree(reference, root)
    sorted((root / "results").glob("*.json"))[0].unlink()
    with pytest.raises(CampaignError, match="results where its manifest counts"):
        CampaignStore(root).verify()


def test_edited_parquet_is_detected(reference, tmp_path):
    import shutil

    import pandas as pd

    root = tmp_path / "c"
    shutil.copytree(reference, root)
    df = pd.read_parquet(root / "results.parquet")
    df.loc[0, "value"] = 123.0
    df.to_parquet(root / "results.parquet", index=False)
    with pytest.raises(CampaignError, match="does not match the campaign manifest"):
        CampaignStore(root).results_frame()


@pytest.mark.parametrize("change, words", [
    ({"generators": []}, "generators"),
    ({"colour": "blue"}, "colour"),
    ({"generators": [{"generator": "rule", "no_kg": True}]}, "apply to the llm generator"),
    ({"generators": [{"generator": "rule"}, {"generator": "rule"}]}, "labels must be unique"),
    ({"mitigation": ["pray"]}, "unknown mitigation"),
    ({"budget": {"iterations": 0}}, "iterations"),
])
def test_bad_specs(change, words):
    with pytest.raises(CampaignError, match=words):
        parse_spec({**SPEC, **change})


def test_new_campaign_refuses_existing_dir_and_resume_needs_one(reference, tmp_path):
    with pytest.raises(CampaignError, match="already holds a campaign"):
        run_campaign(reference, parse_spec(SPEC))
    with pytest.raises(CampaignError, match="nothing to resume"):
        run_campaign(tmp_path / "none", resume=True)


def test_shipped_campaign_specs_parse():
    specs = sorted(Path("scenarios/campaigns").glob("*.yaml"))
    assert specs
    for p in specs:
        load_spec(p)


def test_operator_scope_holds_for_every_arm(tmp_path):
    """event_types and max_events bound every arm: the random generator draws inside the scope,
    and a proposal outside it (the rule arm's router failures, mutate's added events) is rejected
    with the rule ``scope`` before anything runs."""
    from harness.campaign import parse_spec

    spec = parse_spec({"name": "scoped", "topology": "topozoo/Abilene",
                       "generators": [{"generator": "random"}, {"generator": "rule"}, {"generator": "mutate"}],
                       "budget": {"iterations": 2, "per_iteration": 8}, "mitigation": ["none"],
                       "event_types": ["fiber_link_failure"], "max_events": 1, "seed": 3})
    run_campaign(tmp_path / "c", spec)
    store = CampaignStore(tmp_path / "c")
    from harness.scenario.model import Scenario

    accepted = [Scenario.model_validate(r["scenario"]) for r in store.scenarios()]
    assert accepted and all(len(s.events) == 1 and s.events[0].event_type == "fiber_link_failure" for s in accepted)
    scoped = [r for r in store.rejected() if any(x["rule"] == "scope" for x in r["reasons"])]
    assert any(r["label"] == "rule" for r in scoped)
    assert any("outside the campaign's event_types" in x["message"] for r in scoped for x in r["reasons"])
    with pytest.raises(CampaignError, match="unknown event type 'cable_cut'"):
        parse_spec({**spec.model_dump(mode="json"), "event_types": ["cable_cut"]})
