"""``vagrant up`` really boots ani's box (made from the cached image) with vagrant-libvirt on this
host (qemu driver: its KVM is PVM-only), ``vagrant ssh`` reaches it, ``vagrant destroy`` leaves no
domain or qemu behind. libvirtd/virtlogd are started for the test when they are not running (PID
1 here is not systemd) and stopped afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.vm import box, image

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="libvirt's system daemon and the image build need root")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _virsh(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, timeout=60,
                          check=check)


@pytest.fixture(scope="module")
def libvirt():
    """libvirt's daemons (started here if they are not running) and a ``default`` dir pool."""
    started = []
    if _virsh("version").returncode != 0:
        for daemon in ("virtlogd", "libvirtd"):
            p = subprocess.Popen([daemon], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            started.append(p)
        deadline = time.monotonic() + 30
        while _virsh("version").returncode != 0:
            assert time.monotonic() < deadline, "libvirtd did not answer within 30 s"
            time.sleep(0.5)
    if _virsh("pool-info", "default").returncode != 0:
        Path("/var/lib/libvirt/images").mkdir(parents=True, exist_ok=True)
        _virsh("pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images", check=True)
    if "running" not in _virsh("pool-info", "default").stdout:
        _virsh("pool-start", "default", check=True)
    try:
        yield
    finally:
        for p in reversed(started):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def test_vagrant_up_boots_anis_box_and_destroy_leaves_nothing(libvirt, tmp_path):
    img = image.build()
    path = box.make_box(img)
    home = image.cache_dir() / "vm" / "vagrant.d"          # the box is cached there across runs
    env = {**os.environ, "VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1",
           "VAGRANT_DEFAULT_PROVIDER": "libvirt", "ANI_VM_BOX": box.BOX_NAME, "ANI_VM_CPUS": "2",
           "ANI_VM_MEMORY": "2048", "ANI_VM_SSH_PORT": str(_free_port())}
    stamp = home / f"{box.BOX_NAME}.image"
    if not (stamp.is_file() and stamp.read_text() == img.dir.name):
        box.add_box(path, env=env)
        stamp.write_text(img.dir.name)
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(REPO / "Vagrantfile", work / "Vagrantfile")

    def vagrant(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(["vagrant", *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)

    domains_before = set(_virsh("list", "--all", "--name").stdout.split())
    try:
        t0 = time.monotonic()
        up = vagrant("up", "--provider", "libvirt")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        print(f"vagrant up: {time.monotonic() - t0:.1f} s")
        r = vagrant("ssh", "-c", "cat /etc/hostname; test -x /opt/ani/.venv/bin/ani && echo ani-ok", timeout=120)
        assert r.returncode == 0 and "ani-vm" in r.stdout and "ani-ok" in r.stdout, r.stdout + r.stderr
        assert len(set(_virsh("list", "--name").stdout.split()) - domains_before) == 1
    finally:
        down = vagrant("destroy", "-f", timeout=300)
        # the box's volume vagrant-libvirt uploaded to the pool (2 GiB; re-uploaded next time)
        for line in _virsh("vol-list", "default").stdout.splitlines()[2:]:
            if line.split() and line.split()[0].startswith(f"{box.BOX_NAME}_vagrant_box_image_"):
                _virsh("vol-delete", "--pool", "default", line.split()[0])
    assert down.returncode == 0, down.stdout + down.stderr
    assert set(_virsh("list", "--all", "--name").stdout.split()) <= domains_before
    qemus = subprocess.run(["pgrep", "-f", "qemu-system-x86_64.*project"], capture_output=True, text=True).stdout
    assert not qemus.strip()
