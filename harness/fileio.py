"""Atomic file writes: every file ani writes appears whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write to a temporary file beside ``path``, fsync it, rename it into place, fsync the
    directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(text.encode() if isinstance(text, str) else text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_DIRECTORY)   # the rename itself survives a crash
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cache_dir() -> Path:
    """ani's per-user cache (VM images, the vLLM venv and model): ``$ANI_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/ani``, else ``~/.cache/ani``."""
    env = os.environ.get("ANI_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ani"
