"""A small real campaign end to end: embedded model, flow twin, Mininet/OVS emulation, report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.campaign import CampaignStore, parse_spec, run_campaign
from harness.campaign.fidelity import fidelity_rows
from harness.campaign.report import SECTIONS, build_report
from harness.cli.main import _register, cli

_register()

pytestmark = [pytest.mark.root, pytest.mark.model]


def test_small_real_campaign_on_both_twins(tmp_path, need_emulation):
    spec = parse_spec({
        "name": "e2e", "topology": "topozoo/Abilene",
        "generators": [{"generator": "llm"}, {"generator": "rule"}],
        "budget": {"iterations": 1, "per_iteration": 2},
        "twins": {"flow": True, "emulation": {"top_k": 1, "sample": 1}},
        "mitigation": ["auto"], "max_events": 2, "seed": 4,
    })
    root = tmp_path / "c"
    summary = run_campaign(root, spec)
    assert summary.runs["flow"] == summary.accepted >= 3
    assert summary.runs["emulation"] == 2
    store = CampaignStore(root)
    labels = {r["label"] for r in store.scenarios()}
    assert {"llm", "rule"} <= labels
    results = store.results()
    emu = [r for _, r in results if r.twin == "emulation"]
    assert len(emu) == 2
    for r in emu:
        assert set(r.rows) == {"baseline", "failure", "mitigated"}
        assert r.row("baseline").loss_pct is not None and r.row("baseline").loss_pct < 5
        assert r.row("failure").cascade_depth >= 0   # measured: the cascade rule on the measured loads
        assert any("delay" in x for x in r.not_modelled)
    rows = fidelity_rows(store)
    assert len(rows) == 2 and all(0.0 <= row["impacted_jaccard"] <= 1.0 for row in rows)
    r = CliRunner().invoke(cli, ["campaign", "fidelity", str(root), "--json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and len(doc["rows"]) == 2 and doc["summary"]["scenarios"] == 2 and doc["calibration"] is None
    html = build_report(root).read_text()
    assert all(f"id='{k}'" in html for k in SECTIONS)
    assert "No scenario ran on both twins" not in html
    llm_records = [rec for p in (root / "proposals" / "llm").glob("*.json")
                   for rec in store.read_unit(p.relative_to(root))["records"]]
    assert llm_records and all(rec["prompt_hash"] and rec["tokens"] > 0 for rec in llm_records)
    log_lines = (root / "logs" / "llm.jsonl").read_text().splitlines()
    assert len(log_lines) == len(llm_records)
    controller_logs = list((root / "logs").glob("emulation-*/net*/controller.log"))
    assert controller_logs and "switch" in controller_logs[0].read_text()
