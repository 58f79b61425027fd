"""The Vagrantfile: `vagrant validate` accepts it (no provider needed) and rejects broken copies.

Each run works on a copy in a temporary directory, so no ``.vagrant/`` appears in the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANTFILE = Path(__file__).resolve().parent.parent / "Vagrantfile"


def validate(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "Vagrantfile").write_text(text)
    environ = {**os.environ, "VAGRANT_HOME": str(tmp_path / ".vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1", **env}
    return subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_vagrant_is_installed():
    assert shutil.which("vagrant"), "vagrant is missing: `make setup-vm` installs it (VM_PACKAGES)"


def test_vagrantfile_validates(tmp_path):
    proc = validate(tmp_path, VAGRANTFILE.read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def test_vagrantfile_provisions_with_make_setup_and_reads_sizes_from_env():
    text = VAGRANTFILE.read_text()
    assert "cd /vagrant && make setup" in text
    for var in ("ANI_VM_BOX", "ANI_VM_CPUS", "ANI_VM_MEMORY"):
        assert var in text
    assert "ubuntu-24.04" in text


@pytest.mark.parametrize("break_it, words", [
    (lambda t: t.replace("  config.vm.box = box\n", ""), "A box must be specified"),
    (lambda t: t.replace("Vagrant.configure(\"2\") do |config|", "Vagrant.configure(\"2\") do |config| {"),
     "syntax error"),
])
def test_broken_vagrantfile_fails_validation(tmp_path, break_it, words):
    broken = break_it(VAGRANTFILE.read_text())
    assert broken != VAGRANTFILE.read_text()
    proc = validate(tmp_path, broken)
    assert proc.returncode != 0
    assert words in proc.stdout + proc.stderr


def test_bad_size_in_environment_fails_validation(tmp_path):
    proc = validate(tmp_path, VAGRANTFILE.read_text(), ANI_VM_CPUS="lots")
    assert proc.returncode != 0
    assert "lots" in proc.stdout + proc.stderr
