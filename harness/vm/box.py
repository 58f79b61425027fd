"""A Vagrant box (vagrant-libvirt) made from the same image :mod:`harness.vm.image` builds.

The box holds ``box.img`` (the qcow2 disk), ``metadata.json`` (``provider: libvirt``), the
kernel and initrd (the image has no boot loader: libvirt boots them directly), the image's SSH
key, and a box ``Vagrantfile`` with what vagrant-libvirt needs on a host like this one
(measured, docs/vm.md): the ``qemu`` driver (no usable KVM), no management network
(``mgmt_attach = false``) but a user-mode NIC with a loopback-forwarded SSH port passed as
``qemuargs`` (it must sit at ``bus=pci.0,addr=0x1e``: "PCI slot 2 in use" otherwise), and a
UDP-tunnel private network carrying the same MAC (without it vagrant-libvirt crashes on
``domain.mac.downcase`` for nil), ``config.ssh.host/port`` at the forwarded port, root with the
image's key, no synced folder (ani is in ``/opt/ani``).

``vagrant box add --name ani-local BOX`` then ``ANI_VM_BOX=ani-local vagrant up`` with the
project's ``Vagrantfile``, which leaves provisioning to the box when the box is ani's.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from harness.errors import VMError
from harness.vm import image as images

BOX_NAME = "ani-local"
#: The forwarded SSH port's default (``ANI_VM_SSH_PORT`` overrides it at ``vagrant up``).
DEFAULT_SSH_PORT = 2522
#: The MAC shared by the user-mode NIC and the UDP-tunnel network (locally administered).
MAC = "52:54:00:a1:4e:01"

BOX_VAGRANTFILE = """\
# -*- mode: ruby -*-
# ani's local box (`ani vm box`): Debian {suite} built from Debian packages, ani in /opt/ani.
# For vagrant-libvirt on a host without usable KVM (qemu driver); see harness/vm/box.py.
require "fileutils"
box_dir = File.expand_path(__dir__)
# libvirt's system daemon runs qemu as its own user, which cannot read a box under root's
# home: the kernel and initrd are copied to libvirt's boot directory when it is writable.
boot_dir = ENV.fetch("ANI_VM_BOOT_DIR", "/var/lib/libvirt/boot")
boot = %w[vmlinuz initrd.img].to_h do |f|
  src = File.join(box_dir, f)
  dst = File.join(boot_dir, "ani-{key}-#{{f}}")
  if File.directory?(boot_dir) && File.writable?(boot_dir)
    FileUtils.cp(src, dst) unless File.exist?(dst) && File.size(dst) == File.size(src)
    File.chmod(0644, dst)
    [f, dst]
  else
    [f, src]
  end
end
ssh_port = Integer(ENV.fetch("ANI_VM_SSH_PORT", "{port}"))
mac = "{mac}"

Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.host = "127.0.0.1"
  config.ssh.port = ssh_port
  config.ssh.username = "root"
  config.ssh.private_key_path = [File.join(box_dir, "id_ed25519")]
  config.ssh.insert_key = false
  config.vm.network :private_network, auto_config: false, libvirt__mac: mac,
    libvirt__tunnel_type: "udp", libvirt__tunnel_local_ip: "127.0.0.1", libvirt__tunnel_local_port: ssh_port + 1,
    libvirt__tunnel_ip: "127.0.0.1", libvirt__tunnel_port: ssh_port + 2
  config.vm.provider :libvirt do |lv|
    lv.driver = ENV.fetch("ANI_VM_LIBVIRT_DRIVER", "qemu")
    lv.mgmt_attach = false
    lv.qemu_use_agent = true
    lv.kernel = boot["vmlinuz"]
    lv.initrd = boot["initrd.img"]
    lv.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"
    lv.qemuargs :value => "-netdev"
    lv.qemuargs :value => "user,id=ani0,hostfwd=tcp:127.0.0.1:#{{ssh_port}}-:22"
    lv.qemuargs :value => "-device"
    lv.qemuargs :value => "virtio-net-pci,netdev=ani0,mac=#{{mac}},bus=pci.0,addr=0x1e"
  end
end
"""


def boxes_dir() -> Path:
    return images.cache_dir() / "vm" / "boxes"


def make_box(img: images.Image, emit=lambda s: None) -> Path:
    """The box file for ``img`` (made once per image; a plain tar, which Vagrant accepts)."""
    out = boxes_dir() / f"{BOX_NAME}-{img.dir.name}.box"
    if out.is_file():
        emit(f"box {out} exists")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".box.tmp")
    meta = {"provider": "libvirt", "format": "qcow2", "virtual_size": int(images.DISK_SIZE.rstrip("G"))}
    vagrantfile = BOX_VAGRANTFILE.format(suite=img.manifest.get("suite", images.SUITE), port=DEFAULT_SSH_PORT,
                                         mac=MAC, key=img.dir.name)
    emit(f"writing {out} …")
    try:
        staging = tmp.with_suffix(".d")
        staging.mkdir(exist_ok=True)
        (staging / "metadata.json").write_text(json.dumps(meta) + "\n")
        (staging / "Vagrantfile").write_text(vagrantfile)
        with tarfile.open(tmp, "w") as tar:
            tar.add(staging / "metadata.json", "metadata.json")
            tar.add(staging / "Vagrantfile", "Vagrantfile")
            for src, name in ((img.kernel, "vmlinuz"), (img.initrd, "initrd.img"), (img.key_file, "id_ed25519"),
                              (img.disk, "box.img")):
                tar.add(src, name)
        tmp.replace(out)
    except OSError as exc:
        raise VMError(f"could not write the box {out}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        for p in (staging / "metadata.json", staging / "Vagrantfile"):
            p.unlink(missing_ok=True)
        if staging.exists():
            staging.rmdir()
    emit(f"box written: {out}")
    return out


def add_box(box: Path, name: str = BOX_NAME, env: dict | None = None) -> None:
    """``vagrant box add --force --name NAME BOX`` (replacing an older box of that name)."""
    import subprocess

    try:
        r = subprocess.run(["vagrant", "box", "add", "--force", "--name", name, str(box)],
                           capture_output=True, text=True, env=env, timeout=900)
    except FileNotFoundError:
        raise VMError("`vagrant` is not installed: run `make setup-vm`") from None
    if r.returncode != 0:
        raise VMError(f"`vagrant box add` failed: {(r.stderr or r.stdout).strip()[-400:]}")
