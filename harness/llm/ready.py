"""Waiting for a model server to answer, shared by the embedded server and vLLM."""

from __future__ import annotations

import time
from typing import Callable

import httpx


def wait_ready(url: str, timeout_s: float, *, interval_s: float = 0.1,
               alive: Callable[[], None] = lambda: None) -> str | None:
    """Poll ``url`` until it answers 200; returns None then, or the last failure (``HTTP 503``,
    ``ConnectError``, ...) when ``timeout_s`` has passed. ``alive`` is called before each poll
    and raises if the server died meanwhile."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        alive()
        try:
            resp = httpx.get(url, timeout=2.0)
            if resp.status_code == 200:
                return None
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            return last
        time.sleep(interval_s)
