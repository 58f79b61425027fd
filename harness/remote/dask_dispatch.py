"""Multi-host campaigns: twin runs as Dask tasks (``ani campaign run SPEC --scheduler tcp://HOST:8786``).

:class:`DaskRunner` is a campaign runner (see :mod:`harness.campaign.loop`): the loop hands it
a batch of ``(scenario, mitigation)`` jobs for one twin, it submits one task per job and
yields the results in submission order. The campaign loop — generators, validator,
feedback and every write to the campaign directory — stays in the driver process, so the
directory format, resume and the results (same seed, same results) are exactly those of an
in-process run.

Placement
    Flow-twin tasks go to any worker. Emulation tasks are submitted with
    ``resources={"emulation": 1}``, so only workers started with
    ``dask worker tcp://HOST:8786 --resources emulation=1`` (one per host: the emulation
    owns the host's Open vSwitch, and must run as root) take them, one at a time each. A
    batch of emulation jobs with no such worker connected is refused at once rather than
    left waiting forever.

Data
    The knowledge graph is shipped once per batch (``scatter``, broadcast to the workers) and
    scenarios travel as their JSON form; results come back as JSON dicts and are validated
    into :class:`~harness.twin.kpi.ScenarioResult` here. Workers need the same ani version
    installed (the same ``requirements.lock``). An emulation run's directory (controller log,
    probe output, fidelity record) comes back with its result as a gzipped tar and is unpacked
    under ``logs_dir`` (the campaign's ``logs/emulation-dask-<worker>/<scenario>/``), as an
    in-process campaign keeps it under ``logs/emulation-*/``.

Failures
    An ani error on a worker comes back as a :class:`~harness.errors.RemoteError` naming the
    worker and scenario; a lost scheduler or worker too. Everything finished before that was
    written, so ``ani campaign run DIR --resume`` (with or without ``--scheduler``) goes on.
"""

from __future__ import annotations

import io
import re
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

from harness.extras import require
from harness.errors import AniError, RemoteError
from harness.kg.model import KnowledgeGraph
from harness.scenario.model import Scenario
from harness.twin.kpi import ScenarioResult

_ADDRESS = re.compile(r"^(tcp|tls)://[A-Za-z0-9._\[\]:-]+:\d{1,5}$")
EMULATION_RESOURCE = "emulation"


def check_scheduler(address: str) -> str:
    """``tcp://HOST:PORT`` or ``tls://HOST:PORT``; RemoteError otherwise."""
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise RemoteError(f"invalid Dask scheduler address {address!r}: use tcp://HOST:PORT (e.g. tcp://lab1:8786)")
    return address


_flow_twins: dict = {}


def evaluate(twin_name: str, kg: KnowledgeGraph, scenario: dict, mitigation: str | None) -> dict:
    """The task run on a worker: one scenario on one twin. Returns ``{"result": JSON data,
    "worker": address}`` and, for a twin with a run directory (the emulation), ``"logs"``: that
    directory as a gzipped tar."""
    from harness.twin import make_twin

    sid = scenario.get("id", "?")
    try:
        s = Scenario.model_validate(scenario)
        if twin_name == "flow":
            # The flow twin keeps no state between runs: one per worker process is enough.
            twin = _flow_twins.setdefault(twin_name, make_twin(twin_name))
            return {"result": twin.run(kg, s, mitigation).model_dump(mode="json"), "worker": _worker_address()}
        with tempfile.TemporaryDirectory(prefix="ani-dask-") as run_dir:
            twin = make_twin(twin_name, run_dir=run_dir)
            if not twin.is_available():
                raise RemoteError(f"the {twin_name} twin is not available on this worker (see `ani doctor` there)")
            with twin:
                result = twin.run(kg, s, mitigation).model_dump(mode="json")
            return {"result": result, "worker": _worker_address(), "logs": _pack(Path(run_dir))}
    except AniError as exc:
        raise RemoteError(f"{twin_name} twin failed on Dask worker {_worker_address()} for scenario {sid}: "
                          f"{exc}") from None


def _pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    return buf.getvalue()


def _unpack(data: bytes, dest: Path) -> None:
    """Extract a run directory's tar into ``dest`` (regular files and folders only, no path escapes)."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        # (tarfile's extraction filters need Python >= 3.11.4; Debian 12 has 3.11.2)
        for m in tar.getmembers():
            target = (dest / m.name).resolve()
            if not (target == root or root in target.parents) or not (m.isfile() or m.isdir()):
                continue
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src:
                    target.write_bytes(src.read())


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return "(not in a worker)"


class DaskRunner:
    """Evaluate twin runs on a Dask cluster; a context manager that closes its client.

    Parameters
    ----------
    scheduler
        ``tcp://HOST:PORT`` of a running ``dask scheduler``.
    timeout_s
        How long to wait for the scheduler to answer.
    logs_dir
        Where emulation runs' directories are unpacked (``None``: they are dropped).

    Raises
    ------
    RemoteError
        bad address, scheduler unreachable, no emulation worker, a task failing on a worker.
    """

    def __init__(self, scheduler: str, *, timeout_s: float = 10.0, logs_dir: str | Path | None = None):
        self.address = check_scheduler(scheduler)
        self.timeout_s = timeout_s
        self.logs_dir = Path(logs_dir) if logs_dir is not None else None
        self.client = None
        self._kg: tuple[KnowledgeGraph, object] | None = None

    def connect(self) -> "DaskRunner":
        Client = require("distributed", "campaigns on a Dask cluster").Client

        try:
            self.client = Client(self.address, timeout=self.timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise RemoteError(f"cannot reach the Dask scheduler at {self.address} ({exc}); is `dask scheduler` "
                              "running there and the port open?") from None
        return self

    def __enter__(self) -> "DaskRunner":
        return self.connect() if self.client is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
            self._kg = None

    def workers(self) -> dict[str, dict]:
        """Connected workers: address → resources."""
        info = self.client.scheduler_info(n_workers=-1)
        return {addr: dict(w.get("resources") or {}) for addr, w in info.get("workers", {}).items()}

    def _scattered(self, kg: KnowledgeGraph):
        if self._kg is None or self._kg[0] is not kg:
            self._kg = (kg, self.client.scatter(kg, broadcast=True, hash=False))
        return self._kg[1]

    def map(self, twin_name: str, kg: KnowledgeGraph, jobs: list[tuple[Scenario, str | None]]
            ) -> Iterator[ScenarioResult]:
        if not jobs:
            return iter(())
        if self.client is None:
            self.connect()
        resources = None
        if twin_name != "flow":
            resources = {EMULATION_RESOURCE: 1}
            if not any(r.get(EMULATION_RESOURCE) for r in self.workers().values()):
                raise RemoteError(f"the spec asks for the {twin_name} twin, but no Dask worker at {self.address} "
                                  f"offers the `{EMULATION_RESOURCE}` resource; start one on a root host with Open "
                                  f"vSwitch: `dask worker {self.address} --resources {EMULATION_RESOURCE}=1`")
        try:
            kg_future = self._scattered(kg)
            futures = [self.client.submit(evaluate, twin_name, kg_future, s.model_dump(mode="json"), m,
                                          resources=resources, pure=False) for s, m in jobs]
        except (OSError, TimeoutError) as exc:
            raise RemoteError(f"lost the Dask scheduler at {self.address} ({exc})") from None
        return self._gather(futures, [s.id for s, _ in jobs])

    def _keep_logs(self, data: dict, sid: str) -> None:
        if self.logs_dir is None or not data.get("logs"):
            return
        worker = re.sub(r"[^A-Za-z0-9._-]+", "_", str(data.get("worker", "worker")).split("://")[-1])
        _unpack(data["logs"], self.logs_dir / f"emulation-dask-{worker}" / sid)

    def _gather(self, futures, sids: list[str]) -> Iterator[ScenarioResult]:
        from distributed import KilledWorker

        try:
            for fut, sid in zip(futures, sids):
                try:
                    data = fut.result()
                except RemoteError:
                    raise
                except KilledWorker as exc:
                    raise RemoteError(f"a Dask worker died while running a task ({exc}); "
                                      "resume the campaign with --resume") from None
                except (OSError, TimeoutError) as exc:
                    raise RemoteError(f"lost the Dask scheduler at {self.address} ({exc}); "
                                      "resume the campaign with --resume") from None
                self._keep_logs(data, sid)
                yield ScenarioResult.model_validate(data["result"])
        finally:
            for fut in futures:
                if not fut.done():
                    fut.cancel()
