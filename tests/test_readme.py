"""The README's commands run as written (the ones that finish on this machine in CI).

Every ``ani`` line in the README's ``sh`` blocks runs, in order, from a scratch directory
that sees the repository's ``scenarios/`` and ``topologies/``; ``ani llm serve`` and
``ani controller`` (which serve until stopped) run in the background for the lines after
them. Lines listed in :data:`NOT_RUN` are left out, each for the reason given there.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANI = str(Path(sys.executable).with_name("ani"))

NOT_RUN = {
    "make ": "the make targets are what runs this test (make test) or the main job (make run)",
    "vllm serve": "needs a GPU machine with vLLM",
    "--engine vllm": "tests/test_vllm.py runs the README's vLLM lines (one vLLM server start, ~30 s, 3 GB)",
    "127.0.0.1:8000": "uses the README's vLLM server: tests/test_vllm.py runs it",
    "GPU-HOST": "needs a vLLM server on a GPU machine",
    "abilene_paper.yaml": "the paper's full comparison takes about an hour on 2 cores",
    "campaigns/abilene-paper": "reads the paper campaign's directory",
    "vagrant ": "needs a VM provider (VirtualBox or libvirt)",
    "--vagrant": "needs a running Vagrant VM",
    "ani vm ": "boots the VM: tests/vm runs these commands on the one VM it boots per session",
    "--vm": "needs the VM `ani vm up` starts (tests/vm/test_vm.py runs a remote campaign in it)",
    "lab1": "needs lab hosts",
    "10.0.0.5": "needs a lab host",
    "dask ": "starts long-running Dask daemons on lab hosts",
    "--scheduler": "needs a Dask scheduler on lab hosts",
}
BACKGROUND = ("ani llm serve", "ani controller")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_readme_has_commands():
    cmds = readme_commands()
    assert any(c.startswith("make run") for c in cmds) and any(c.startswith("make test") for c in cmds)
    assert sum(c.startswith("ani ") for c in cmds) >= 30


@pytest.mark.model
@pytest.mark.root
def test_readme_commands_work_as_written(tmp_path):
    for name in ("scenarios", "topologies"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(ANI).parent}:{os.environ['PATH']}"}
    background: list[subprocess.Popen] = []
    ran = 0
    try:
        for line in readme_commands():
            if any(k in line for k in NOT_RUN):
                continue
            argv = shlex.split(line)
            if argv[0] != "ani":
                continue
            if line.startswith(BACKGROUND):
                proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                background.append(proc)
                _wait_for_output(proc, ("serving", "API listening"), line)
                continue
            # Globs in README lines are the shell's job: expand them like sh would.
            argv = [a for x in argv for a in (sorted(str(p) for p in tmp_path.glob(x)) or [x] if "*" in x else [x])]
            result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, f"{line}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            assert "Traceback" not in result.stderr, line
            ran += 1
    finally:
        for proc in background:
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:  # `ani cleanup` already stopped it
                continue
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert ran >= 25


def _wait_for_output(proc: subprocess.Popen, needles, line: str, timeout: float = 60.0) -> None:
    import select

    fd = proc.stdout.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536).decode(errors="replace")
            seen += chunk
            if any(n in seen for n in needles):
                return
            if not chunk and proc.poll() is not None:
                raise AssertionError(f"{line} exited early:\n{seen}")
    raise AssertionError(f"{line} did not start within {timeout} s:\n{seen}")
