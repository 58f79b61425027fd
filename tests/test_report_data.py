"""The report's content as data: effectiveness that does not invent repairs, the worst-first
ranking, why a scenario hurts, human headers with units, rejected proposals per arm, and a
warning on a scenario the twins disagree on."""

from __future__ import annotations

import re
import shutil

import pytest

from harness.campaign import CampaignStore, parse_spec, run_campaign
from harness.campaign.fidelity import compare
from harness.campaign.report import build_report
from harness.campaign.report.data import (KPI_COLUMNS, failure_elements, fmt, mitigation_effect, rank_worst,
                                          rejected_by_arm, services_hit, why)
from harness.campaign.report.pages import write_scenario_page
from harness.scenario.model import Scenario
from harness.twin.flow.twin import FlowTwin
from harness.twin.kpi import KPIS, KPIRow, ScenarioResult


def _result(failure: dict, mitigated: dict) -> ScenarioResult:
    rows = {p: KPIRow(scenario_id="s", twin="flow", phase=p, **v)
            for p, v in (("baseline", {k: 0 for k in KPIS}), ("failure", failure), ("mitigated", mitigated))}
    return ScenarioResult(scenario_id="s", twin="flow", rows=rows,
                          mitigation={"strategy": "auto", "actions": [{"action": "reroute", "avoid_links": []}]})


FAILURE = {"latency_ms_mean": 4.7, "latency_ms_p95": 14.9, "loss_pct": 95.4, "reroute_time_ms_max": 18.9,
           "reroute_time_ms_mean": 17.0, "max_link_util": 0.02, "congested_links": 0, "impacted_nodes": 37,
           "unreachable_pairs": 1244, "cascade_depth": 4}


def test_unchanged_kpis_never_score_as_repaired():
    # what the flow twin records when a reroute changes nothing: the mitigated phase's reroute
    # time is 0 (nothing rerouted), every other KPI is the failure's
    res = _result(FAILURE, {**FAILURE, "reroute_time_ms_max": 0.0, "reroute_time_ms_mean": 0.0})
    eff = res.effectiveness()
    assert eff["reroute_time_ms_max"] is None and eff["reroute_time_ms_mean"] is None
    assert 1.0 not in eff.values()
    assert eff["loss_pct"] == 0.0 and eff["impacted_nodes"] == 0.0
    assert eff["congested_links"] is None          # 0 and 0: nothing to repair, not "0 % repaired"
    m = mitigation_effect(res)
    assert m["verdict"] == "The actions changed no KPI."
    assert {r["kpi"]: r["effectiveness"] for r in m["rows"]}["Max reroute time (ms)"] is None


def test_effectiveness_still_scores_real_repairs_and_harm():
    eff = _result(FAILURE, {**FAILURE, "loss_pct": 23.85, "congested_links": 2}).effectiveness()
    assert eff["loss_pct"] == pytest.approx(0.75)
    assert eff["congested_links"] == -1.0
    m = mitigation_effect(_result(FAILURE, {**FAILURE, "loss_pct": 23.85}))
    assert m["verdict"] == "Changed: lost traffic 95.40 → 23.85 %."


def test_rank_worst_orders_by_loss_then_impact_then_reach_then_id():
    rows = [{"scenario_id": "b", "loss_pct": 10.0, "impacted_nodes": 2, "unreachable_pairs": 5},
            {"scenario_id": "a", "loss_pct": 10.0, "impacted_nodes": 2, "unreachable_pairs": 5},
            {"scenario_id": "c", "loss_pct": 10.0, "impacted_nodes": 3, "unreachable_pairs": 0},
            {"scenario_id": "d", "loss_pct": 50.0, "impacted_nodes": 0, "unreachable_pairs": 0},
            {"scenario_id": "e", "loss_pct": None, "impacted_nodes": None, "unreachable_pairs": None}]
    ranked = rank_worst(rows)
    assert [r["scenario_id"] for r in ranked] == ["d", "c", "a", "b", "e"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4, 5]


def test_columns_have_units_and_one_precision():
    assert KPI_COLUMNS["loss_pct"].title == "Lost traffic (%)"
    assert KPI_COLUMNS["latency_ms_mean"].title == "Mean latency (ms)"
    assert all("_" not in c.title for c in KPI_COLUMNS.values())
    assert [KPI_COLUMNS["loss_pct"].fmt(x) for x in (1, 2.345678, None)] == ["1.00", "2.35", "n/a"]
    assert fmt(1244, 0) == "1,244" and fmt(float("nan"), 2) == "n/a"


def test_why_names_failed_elements_services_and_cascade(abilene_kg):
    s = Scenario.model_validate({"id": "cut", "topology": "topozoo/Abilene", "events": [
        {"event_type": "fiber_link_failure", "target": "Denver-KansasCity", "timestamp": 10},
        {"event_type": "router_failure", "target": "Atlanta", "timestamp": 20}]})
    res = FlowTwin().run(abilene_kg, s, "auto")
    el = failure_elements(abilene_kg, s, res)
    assert el["failed_links"] == ["Denver-KansasCity"] and el["failed_routers"] == ["Atlanta"]
    assert set(abilene_kg.router_links("Atlanta")) <= set(el["down_links"])   # down with their router
    assert el["impacted_nodes"] == res.row("failure").impacted_node_names
    w = why(abilene_kg, s, res)
    assert w["events"] == ["fiber link failure on Denver-KansasCity", "router failure on Atlanta"]
    assert w["failed"] == ["links Denver-KansasCity", "routers Atlanta"]
    hit = services_hit(abilene_kg, el["down_links"], el["failed_routers"])
    assert sum(h for h, _ in hit.values()) > 0
    assert all(0 < h <= n for h, n in hit.values() if h)
    assert len(w["services"]) == sum(1 for h, _ in hit.values() if h)
    if res.row("failure").cascade_depth:
        assert w["cascade"] and w["cascade"][0].startswith(f"depth {res.row('failure').cascade_depth}")


def test_rejected_by_arm_keeps_every_reason_and_unreadable_outputs():
    rejected = [{"label": "llm", "iteration": 0, "scenario": {"id": "llm-1"},
                 "reasons": [{"index": 1, "rule": "R2-alive", "message": "link A-B is already down"}]}]
    proposals = [{"label": "llm", "iteration": 1, "records": [{"id": None, "reason": "no JSON object"},
                                                              {"id": "llm-2"}]}]
    out = rejected_by_arm(["llm", "rule"], rejected, proposals)
    assert out["rule"] == []
    assert out["llm"] == [
        {"iteration": 0, "scenario": "llm-1", "event": 2, "rule": "R2-alive", "reason": "link A-B is already down"},
        {"iteration": 1, "scenario": "—", "event": None, "rule": "unreadable", "reason": "no JSON object"}]


# ---------------------------------------------------------------------------- the report itself
@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("repdata") / "c"
    spec = parse_spec({"name": "repdata", "topology": "topozoo/Abilene",
                       "generators": [{"generator": "rule"}, {"generator": "random"}],
                       "budget": {"iterations": 2, "per_iteration": 2}, "mitigation": ["auto", "none"], "seed": 3})
    run_campaign(root, spec)
    return root


def _headers(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th>(.*?)</th>", html)]


def test_report_pages_have_human_headers_and_a_ranked_worst_list(campaign_dir):
    index = build_report(campaign_dir)
    html = index.read_text()
    pages = sorted((index.parent / "scenarios").glob("*.html"))
    store = CampaignStore(campaign_dir)
    assert {p.stem for p in pages} == {r["scenario"]["id"] for r in store.scenarios()}
    for text in [html] + [p.read_text() for p in pages]:
        heads = _headers(text)
        assert heads, "no table"
        snake = [h for h in heads if re.search(r"[a-z]+_[a-z]+", h)]
        assert not snake, snake
    # the worst list is the flow twin's failure phase, worst first, each linked to its page
    worst = html.split("id='worst'")[1].split("<h2")[0]
    linked = re.findall(r"href='scenarios/([^']+)\.html'", worst)
    losses = {res.scenario_id: res.row("failure").loss_pct for meta, res in store.results()
              if res.twin == "flow" and meta["mitigation"] == "auto"}
    expected = [r["scenario_id"] for r in rank_worst([
        {"scenario_id": sid, "loss_pct": loss, "impacted_nodes": next(
            res.row("failure").impacted_nodes for m, res in store.results() if res.scenario_id == sid),
         "unreachable_pairs": next(res.row("failure").unreachable_pairs for m, res in store.results()
                                   if res.scenario_id == sid)} for sid, loss in losses.items()])][:10]
    assert linked == expected
    assert "<b>events:</b>" in worst
    # one precision per column: every lost-traffic cell of the worst list has two decimals
    cells = re.findall(r"<td class='num'>([^<]*)</td>", worst)
    assert cells and all(re.fullmatch(r"[\d,]+(\.\d+)?|n/a", c) for c in cells)
    assert sum(bool(re.fullmatch(r"\d+\.\d\d", c)) for c in cells) >= len(linked)
    # mitigation: reroute time is not scored, and the table says why
    mit = html.split("id='mitigation'")[1].split("<h2")[0]
    assert "Reroute time is not scored" in mit and "reroute time (% repaired)" not in mit.lower()
    assert "id='rejected'" in html and "No proposal was rejected." in html


def test_report_lists_rejected_proposals_with_reasons(campaign_dir, tmp_path, abilene_kg):
    from harness.campaign.loop import _validate

    root = tmp_path / "c"
    shutil.copytree(campaign_dir, root)
    store = CampaignStore(root)
    spec = parse_spec({"name": "x", "topology": "topozoo/Abilene", "generators": [{"generator": "rule"}]})
    arm = spec.generators[0]
    bad = {"id": "bad-1", "topology": "topozoo/Abilene", "events": [
        {"event_type": "fiber_link_failure", "target": "Denver-KansasCity", "timestamp": 10},
        {"event_type": "fiber_link_failure", "target": "Denver-KansasCity", "timestamp": 20}]}
    assert _validate(store, abilene_kg, arm, 1, [bad], spec) == []        # the loop's own verdict and unit
    store.rebuild_views()
    html = build_report(root).read_text()
    rej = html.split("id='rejected'")[1].split("<h2")[0]
    rule = rej.split("<h3>rule")[1].split("<h3>")[0]
    reason = store.rejected()[0]["reasons"][0]
    assert "bad-1" in rule and reason["rule"] in rule and reason["message"].split(" ")[0] in rule


def test_scenario_page_warns_when_the_twins_disagree(campaign_dir, tmp_path, abilene_kg):
    """A scenario run on both twins whose emulation lost far less than the flow twin: its page
    warns with the fidelity module's reasons (the emulation record is the flow one, altered)."""
    store = CampaignStore(campaign_dir)
    meta, flow = next((m, r) for m, r in store.results() if r.twin == "flow" and m["mitigation"] == "auto"
                      and (r.row("failure").loss_pct or 0) > 5)
    emu = ScenarioResult.model_validate({**flow.model_dump(), "twin": "emulation", "rows": {
        p: {**row.model_dump(), "twin": "emulation", "loss_pct": (row.loss_pct or 0) / 5}
        for p, row in flow.rows.items()}, "meta": {"baseline_health": {"healthy": True, "loss_pct": 0.0}}})
    fid = compare(flow, emu)
    assert "loss_pct" in fid["disagree"]
    unit = next(r for r in store.scenarios() if r["scenario"]["id"] == flow.scenario_id)
    page = write_scenario_page(tmp_path, abilene_kg, unit, Scenario.model_validate(unit["scenario"]),
                               {("flow", "auto"): (meta, flow), ("emulation", "auto"): (meta, emu)}, fid, 1, "auto")
    text = page.read_text()
    assert "class='warn'" in text and "disagree" in text and "lost traffic" in text and "loss_pct" not in text
    assert (tmp_path / "scenarios" / f"{flow.scenario_id}.flow.png").stat().st_size > 0
    assert (tmp_path / "scenarios" / f"{flow.scenario_id}.emulation.png").stat().st_size > 0
    assert "emulation: failure" in text and "flow twin: failure" in text


def test_large_graph_maps_show_the_failure_around_it():
    """A 5,000-router map would be unreadable and its layout took ~30 s a map: above
    MAP_MAX_NODES only the marked routers and their neighbours are drawn."""
    import networkx as nx

    from harness.campaign.report.figures import MAP_MAX_NODES, _around

    g = nx.random_internet_as_graph(1500, seed=1)
    g = nx.relabel_nodes(g, {n: f"AS{n}" for n in g})
    for k, (u, v) in enumerate(g.edges):
        g.edges[u, v]["id"] = f"{u}-{v}"
    u, v = next(iter(g.edges))
    sub = _around(g, {"down_links": [f"{u}-{v}"], "impacted_nodes": [f"AS{i}" for i in range(400)]})
    assert sub.number_of_nodes() == MAP_MAX_NODES
    assert {u, v} <= set(sub.nodes)          # the failure itself is always drawn
