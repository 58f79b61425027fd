"""The report in a real browser: Debian's headless chromium opens every page at 1280 px.

Needs the ``chromium`` package (``make deb-test`` installs it); without it the test fails and says
so — it is not skipped.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from harness.campaign import parse_spec, run_campaign
from harness.campaign.report import SECTIONS, build_report
from harness.campaign.report.browser import Chromium, check_report
from harness.cli.main import _register, cli

_register()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "c"
    # Geant2012 (40 routers): long labels, cascades and many impacted nodes to fit on a page
    spec = parse_spec({"name": "browser", "topology": "topozoo/Geant2012",
                       "generators": [{"generator": "rule"}, {"generator": "greedy", "label": "twin-only"}],
                       "budget": {"iterations": 2, "per_iteration": 2}, "mitigation": ["auto", "none"], "seed": 2})
    run_campaign(root, spec)
    return build_report(root).parent


def test_every_page_renders_without_overflow_and_with_every_figure(report_dir):
    rows = check_report(report_dir, width=1280)
    scenario_pages = sorted(p.name for p in (report_dir / "scenarios").glob("*.html"))
    assert [r["page"] for r in rows] == ["report.html"] + [f"scenarios/{n}" for n in scenario_pages]
    assert len(scenario_pages) == 8
    for r in rows:
        assert r["problems"] == [], (r["page"], r["problems"])
        assert r["scroll_width"] <= 1280, r["page"]
        assert r["images"] and all(i["loaded"] for i in r["images"]), r["page"]
    index = rows[0]
    assert index["sections"] == list(SECTIONS)
    assert len(index["images"]) == 3            # map, impact, convergence (fidelity needs both twins)
    for r in rows[1:]:
        assert r["sections"][:5] == ["events", "impact", "kpis", "timeline", "mitigation"], r["page"]
        assert len(r["images"]) == 1            # the flow twin's map (one per twin that ran it)


def test_overflow_is_caught(report_dir, tmp_path):
    """The check is not vacuous: a page with a table wider than the window fails it."""
    (tmp_path / "scenarios").mkdir()
    wide = "<tr>" + "".join(f"<td>column-number-{i}-with-a-long-unbreakable-name</td>" for i in range(40)) + "</tr>"
    (tmp_path / "report.html").write_text(f"<!doctype html><html><body><table>{wide}</table>"
                                          "<img src='missing.png'></body></html>")
    (row,) = check_report(tmp_path)
    assert row["scroll_width"] > 1280
    assert any("overflow" in p for p in row["problems"])
    assert any("images did not load" in p for p in row["problems"])


def test_cli_check_and_screenshot(report_dir, tmp_path):
    r = CliRunner().invoke(cli, ["campaign", "report", str(report_dir.parent), "--check"])
    assert r.exit_code == 0, r.output
    assert "checked 9 pages in chromium at 1280 px" in r.output
    page = sorted((report_dir / "scenarios").glob("*.html"))[0]
    with Chromium(width=1280) as browser:
        shot = browser.screenshot(page, tmp_path / "shot.png", max_height=1500)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1280      # the PNG's width
