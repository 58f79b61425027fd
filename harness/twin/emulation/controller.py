"""Start, watch and stop the ani os-ken controller process; talk to its JSON API.

The controller runs as its own process (``python -m controllers.run``) with its log in
``run_dir/controller.log``.  :class:`ControllerProcess` picks free loopback ports, waits
until every switch is connected and has its routes, and raises
:class:`~harness.errors.ControllerError` (with the log tail) if the process died.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.ports import free_port  # noqa: F401 (re-exported)
from harness.errors import ControllerError

#: The project root (so ``controllers`` is importable by the child process).
PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: Marker on the controller's command line that ``ani cleanup`` looks for.
PROCESS_TAG = "ani-controller"


class ControllerClient:
    """A small httpx client for the controller API (see :mod:`controllers.api`).

    Every failure becomes :class:`ControllerError` with a plain message. ``timeout`` is per
    request and generous: the API answers in milliseconds on this host, but in the VM under
    software emulation with a scenario's traffic running it took more than 5 s (docs/vm.md).
    """

    def __init__(self, api_port: int, *, timeout: float = 30.0, process: "ControllerProcess | None" = None):
        self.base = f"http://127.0.0.1:{api_port}"
        self._http = httpx.Client(base_url=self.base, timeout=timeout)
        self._process = process

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kw) -> dict:
        if self._process is not None:
            self._process.check_alive()
        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            if self._process is not None:
                self._process.check_alive()
            raise ControllerError(f"controller API at {self.base} is unreachable ({exc})") from None
        try:
            data = r.json()
        except ValueError:
            raise ControllerError(f"controller answered {method} {path} with non-JSON (HTTP {r.status_code})") from None
        if r.status_code >= 400:
            raise ControllerError(f"controller refused {method} {path}: {data.get('error', r.text)}")
        return data

    def health(self) -> dict:
        """Connected/ready switches, installed paths, down links, failover log."""
        return self._call("GET", "/health")

    def ports(self) -> dict:
        """Per-port counters, rates (Mbit/s) and utilisation of the shaped link rate."""
        return self._call("GET", "/ports")

    def paths(self) -> dict:
        """Current router-level paths ``{"A>B": [A, ..., B]}``."""
        return self._call("GET", "/paths")

    def meters(self) -> dict:
        """Per router: packets/bytes its forwarding-capacity meter passed and dropped."""
        return self._call("GET", "/meters")["meters"]

    def router_capacity(self, router: str | None = None, mbps: float | None = None) -> dict:
        """Set ``router``'s forwarding capacity to ``mbps``; without ``mbps`` restore its
        nominal capacity; without either restore every router's."""
        body: dict = {} if router is None else {"router": router}
        if mbps is not None:
            body["mbps"] = mbps
        return self._call("POST", "/capacity", json=body)

    def rate_limit(self, router: str, mbps: float) -> dict:
        """Police traffic entering ``router`` from its host at ``mbps`` (OpenFlow meter)."""
        return self._call("POST", "/mitigation", json={"action": "rate_limit", "router": router, "mbps": mbps})

    def reroute(self, avoid: list[str]) -> dict:
        """Recompute routes avoiding the given link ids where any alternative exists."""
        return self._call("POST", "/mitigation", json={"action": "reroute", "avoid": list(avoid)})

    def undo_mitigation(self, what: str = "all", router: str | None = None) -> dict:
        body = {"action": "undo", "what": what}
        if router:
            body["router"] = router
        return self._call("POST", "/mitigation", json=body)

    def blackhole(self, router: str, dst: str) -> int:
        """Misconfigure ``router`` to drop traffic for ``dst``'s host; returns the misconfig id."""
        return self._call("POST", "/misconfig", json={"kind": "blackhole", "router": router, "dst": dst})["id"]

    def wrong_next_hop(self, router: str, dst: str, via: str) -> int:
        """Misconfigure ``router`` to send traffic for ``dst`` to neighbour ``via``."""
        return self._call("POST", "/misconfig", json={"kind": "wrong_next_hop", "router": router,
                                                      "dst": dst, "via": via})["id"]

    def rollback(self, misconfig_id: int | None = None) -> dict:
        """Undo one misconfiguration, or all of them."""
        params = {"id": misconfig_id} if misconfig_id is not None else None
        return self._call("DELETE", "/misconfig", params=params)


class ControllerProcess:
    """The controller as a child process; use as a context manager or call start/stop."""

    def __init__(self, topology_file: Path, run_dir: Path, *, ofp_port: int | None = None,
                 api_port: int | None = None, stats_interval: float = 1.0):
        self.topology_file = Path(topology_file)
        self.run_dir = Path(run_dir)
        self.ofp_port = ofp_port or free_port()
        self.api_port = api_port or free_port()
        self.stats_interval = stats_interval
        self.log_path = self.run_dir / "controller.log"
        self.proc: subprocess.Popen | None = None
        self.client: ControllerClient | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "controllers.run", "--topology-file", str(self.topology_file),
                "--ofp-port", str(self.ofp_port), "--api-port", str(self.api_port),
                "--stats-interval", str(self.stats_interval), "--tag", PROCESS_TAG]

    def start(self) -> "ControllerProcess":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT, env=env,
                                         start_new_session=True)
        except OSError as exc:
            raise ControllerError(f"could not start the controller: {exc}") from None
        finally:
            log.close()
        try:
            self.client = ControllerClient(self.api_port, process=self)
        except BaseException:  # e.g. Ctrl-C right after the fork: never orphan the child
            self.stop()
            raise
        return self

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        """Raise ControllerError if the process has exited."""
        if self.proc is None:
            raise ControllerError("the controller is not running")
        rc = self.proc.poll()
        if rc is not None:
            raise ControllerError(f"the controller process died (exit code {rc}); log {self.log_path}:\n"
                                  f"{self.log_tail()}")

    def wait_listening(self, timeout: float = 30.0) -> None:
        """Wait until the OpenFlow port listens (read from /proc/net/tcp: no probe connection)."""
        want = f":{self.ofp_port:04X}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                    f = line.split()
                    if f[1].endswith(want) and f[3] == "0A":
                        return
            except OSError:
                return  # cannot tell: let OVS retry
            time.sleep(0.01)
        raise ControllerError(f"controller did not open its OpenFlow port within {timeout:.0f} s; "
                              f"log {self.log_path}")

    def wait_ready(self, timeout: float = 30.0) -> dict:
        """Wait until every switch is connected and its routes are confirmed; return /health."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = self.client._http.get("/health").json()
                if last.get("ready"):
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        got = f"{last['switches_ready']}/{last['switches_expected']} switches ready" if last else "API never answered"
        raise ControllerError(f"controller not ready after {timeout:.0f} s ({got}); log {self.log_path}")

    def stop(self, timeout: float = 5.0) -> None:
        if self.client is not None:
            self.client.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
