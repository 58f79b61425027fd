"""Campaign reports render and contain every section; fidelity needs both twins."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from harness.campaign import parse_spec, run_campaign
from harness.campaign.report import SECTIONS, build_report
from harness.cli.main import _register, cli
from harness.errors import CampaignError

_register()


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep") / "c"
    spec = parse_spec({"name": "rep", "topology": "topozoo/Abilene",
                       "generators": [{"generator": "rule"}, {"generator": "replay"}, {"generator": "random"}],
                       "budget": {"iterations": 2, "per_iteration": 2}, "mitigation": ["auto"], "seed": 2})
    run_campaign(root, spec)
    return root


def test_report_renders_every_section(campaign_dir):
    path = build_report(campaign_dir)
    html = path.read_text()
    for key, title in SECTIONS.items():
        assert f"id='{key}'" in html, key
    assert html.count("data:image/png;base64,") >= 3  # impact, convergence, network (self-contained)
    for name in ("impact.png", "convergence.png", "network.png", "summary.csv", "table2.csv", "mitigation.csv"):
        assert (path.parent / name).stat().st_size > 0, name
    summary = (path.parent / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("generator,proposed,accepted,validity_pct")
    assert {l.split(",")[0] for l in summary[1:]} == {"rule", "replay", "random"}
    table2 = (path.parent / "table2.csv").read_text()
    assert "loss_pct (failure)" in table2 and "loss_pct (mitigated)" in table2
    assert "No scenario ran on both twins" in html  # flow-only campaign: said plainly, not faked
    assert not re.search(r"<script", html)


def test_report_and_fidelity_cli(campaign_dir):
    r = CliRunner().invoke(cli, ["campaign", "report", str(campaign_dir)])
    assert r.exit_code == 0 and "report.html" in r.output
    r = CliRunner().invoke(cli, ["campaign", "fidelity", str(campaign_dir)])
    assert r.exit_code == 1 and "no scenario ran on both twins" in r.output
    r = CliRunner().invoke(cli, ["campaign", "report", str(campaign_dir), "--json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["report"].endswith("report.html") and doc["check"] is None
    assert doc["scenario_pages"] and all(p.endswith(".html") for p in doc["scenario_pages"])


def test_report_refuses_edited_results(campaign_dir, tmp_path):
    import shutil

    import pandas as pd

    root = tmp_path / "c"
    shutil.copytree(campaign_dir, root)
    df = pd.read_parquet(root / "results.parquet")
    df.to_parquet(root / "results.parquet", index=True)
    with pytest.raises(CampaignError, match="manifest"):
        build_report(root)
