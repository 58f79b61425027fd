"""An emulation run on a Dask worker (root, real OVS + os-ken) comes back with its run directory:
the controller log and probe output land in the campaign's logs, as in an in-process run."""

from __future__ import annotations

import os

import pytest

from harness.remote.dask_dispatch import DaskRunner
from harness.scenario.model import Scenario

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def emulation_cluster():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, resources={"emulation": 1},
                      dashboard_address=None, worker_dashboard_address=None) as c:
        yield c


def test_emulation_logs_come_back_from_the_worker(emulation_cluster, abilene_kg, tmp_path):
    s = Scenario.model_validate({"id": "dask-cut", "topology": "topozoo/Abilene", "events": [
        {"event_type": "fiber_link_failure", "target": "Denver-KansasCity", "timestamp": 1, "severity": "high"}]})
    with DaskRunner(emulation_cluster.scheduler_address, logs_dir=tmp_path / "logs") as runner:
        (result,) = list(runner.map("emulation", abilene_kg, [(s, None)]))
    assert result.twin == "emulation" and result.scenario_id == "dask-cut"
    (worker_dir,) = list((tmp_path / "logs").glob("emulation-dask-*"))
    logs = worker_dir / "dask-cut"
    controller = list(logs.rglob("controller.log"))
    assert controller and "switch" in controller[0].read_text()
    assert list(logs.rglob("probes/*"))           # the probes' ping output
