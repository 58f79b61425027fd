"""Campaigns on Dask: twin runs as tasks on a LocalCluster give the results of a serial run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harness.campaign import CampaignStore, parse_spec, run_campaign
from harness.errors import RemoteError
from harness.remote.dask_dispatch import DaskRunner, check_scheduler

SPEC = {
    "name": "dask-small",
    "topology": "topozoo/Abilene",
    "generators": [{"generator": "rule"}, {"generator": "random"}, {"generator": "mutate"}],
    "budget": {"iterations": 2, "per_iteration": 3},
    "mitigation": ["auto", "none"],
    "seed": 4,
}


def kpis(root: Path) -> dict:
    return {f"{m['label']}/{r.scenario_id}/{r.twin}/{m['mitigation']}": {p: row.model_dump() for p, row in r.rows.items()}
            for m, r in CampaignStore(root).results()}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      worker_dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    root = tmp_path_factory.mktemp("serial") / "c"
    run_campaign(root, parse_spec(SPEC))
    return root


def test_dask_campaign_equals_serial_run(cluster, serial, tmp_path):
    root = tmp_path / "c"
    with DaskRunner(cluster.scheduler_address) as runner:
        summary = run_campaign(root, parse_spec(SPEC), runner=runner)
        workers = runner.workers()
        # every worker process ran flow-twin tasks (each caches its flow twin on first use)
        ran = runner.client.run(lambda: bool(__import__("harness.remote.dask_dispatch",
                                                        fromlist=["_flow_twins"])._flow_twins))
    assert len(workers) == 2
    assert ran == {addr: True for addr in workers}
    assert summary.runs["flow"] == 2 * summary.accepted > 0
    assert kpis(root) == kpis(serial)
    assert (root / "scenarios.jsonl").read_text() == (serial / "scenarios.jsonl").read_text()
    CampaignStore(root).results_frame()


def test_dask_resume_of_a_partial_campaign(cluster, serial, tmp_path):
    import shutil

    root = tmp_path / "c"
    shutil.copytree(serial, root)
    removed = sorted((root / "results").glob("*.json"))[::3]
    for p in removed:
        p.unlink()
    with DaskRunner(cluster.scheduler_address) as runner:
        summary = run_campaign(root, resume=True, runner=runner)
    assert summary.runs == {"flow": len(removed)}
    assert kpis(root) == kpis(serial)


def test_cli_scheduler_option(cluster, serial, tmp_path):
    from harness.cli.main import cli, _register

    _register()
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    res = CliRunner().invoke(cli, ["campaign", "run", str(spec), "-o", str(tmp_path / "c"),
                                   "--scheduler", cluster.scheduler_address])
    assert res.exit_code == 0, res.output
    assert kpis(tmp_path / "c") == kpis(serial)


def test_emulation_without_an_emulation_worker_is_refused(cluster, abilene_kg):
    from harness.scenario.model import Scenario

    s = Scenario.model_validate({"id": "x", "topology": "topozoo/Abilene", "events": [
        {"event_type": "fiber_link_failure", "target": "Denver-KansasCity", "timestamp": 1, "severity": "high"}]})
    with DaskRunner(cluster.scheduler_address) as runner:
        with pytest.raises(RemoteError, match="no Dask worker .* offers the `emulation` resource.*--resources emulation=1"):
            list(runner.map("emulation", abilene_kg, [(s, None)]))


def test_an_error_on_a_worker_comes_back_as_a_remote_error(cluster, abilene_kg):
    from harness.scenario.model import Scenario

    s = Scenario.model_validate({"id": "x", "topology": "topozoo/Abilene", "events": [
        {"event_type": "fiber_link_failure", "target": "Denver-KansasCity", "timestamp": 1, "severity": "high"}]})
    with DaskRunner(cluster.scheduler_address) as runner:
        good = list(runner.map("flow", abilene_kg, [(s, None)]))
        assert good[0].scenario_id == "x" and good[0].row("failure").impacted_nodes is not None
        with pytest.raises(RemoteError, match=r"flow twin failed on Dask worker tcp://.* scenario x: unknown mitigation"):
            list(runner.map("flow", abilene_kg, [(s, "pray")]))


def test_bad_and_unreachable_schedulers():
    with pytest.raises(RemoteError, match="invalid Dask scheduler address"):
        check_scheduler("lab1:8786; rm -rf /")
    with pytest.raises(RemoteError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        DaskRunner("tcp://127.0.0.1:1", timeout_s=1).connect()
