"""Booting the image: qemu with a copy-on-write overlay per VM, SSH on a loopback-forwarded port.

A machine lives in ``<cache>/vm/machines/<name>/``: ``vm.json`` (its record), the overlay disk
``disk.qcow2`` (the base image stays clean), ``known_hosts`` (the image's host key, recorded when
the image was built, so the existing host-key checking of :class:`~harness.remote.RemoteHost`
applies), ``console.log`` (the serial console) and qemu's pid file. :func:`down` kills qemu and
removes the directory; :func:`cleanup_vms` (``ani cleanup``) does it for stopped machines (all of
them with ``--vms``) and kills any qemu process carrying the ``ani-vm-`` tag that no record owns.

Acceleration (:func:`choose_accel`): KVM when ``/dev/kvm`` is usable with ``kvm_intel`` or
``kvm_amd``; this host kind's KVM is PVM-only (``kvm_pvm``) and hangs a stock kernel after
"Probing EDD", so it gets software emulation (TCG), which is slower (boot to SSH 25–27 s idle
here instead of a few seconds; every process start in the guest ~20–26 ms instead of 0.8 ms,
docs/vm.md). With ``auto``, a KVM boot that does not reach SSH within :data:`KVM_PROBE_S` is
retried under TCG, and the record says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from harness.errors import RemoteError, VMError
from harness.ports import free_port
from harness.vm import image as images

TAG = "ani-vm-"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
DEFAULT_NAME = "default"
#: Seconds to wait for SSH. Under TCG on a busy 2-core host boot took up to 58 s (docs/vm.md).
BOOT_TIMEOUT_S = 300.0
#: A KVM boot that is not answering SSH by then is taken as KVM unable to run the guest.
KVM_PROBE_S = 60.0
Emit = Callable[[str], None]


def machines_dir() -> Path:
    return images.cache_dir() / "vm" / "machines"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise VMError(f"invalid VM name {name!r}: use 1-31 lower-case letters, digits and '-'")
    return name


@dataclass
class VM:
    """The record of one running VM (``vm.json``)."""
    name: str
    pid: int
    port: int
    accel: str
    accel_note: str
    image: str
    cpus: int
    memory_mib: int
    started: float
    boot_s: float = 0.0

    @property
    def dir(self) -> Path:
        return machines_dir() / self.name

    @property
    def key_file(self) -> Path:
        return images.images_dir() / self.image / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def alive(self) -> bool:
        return _is_ours(self.pid, self.name)

    def host(self, timeout: float = 10.0):
        """An (unconnected) :class:`~harness.remote.RemoteHost` for root on the VM."""
        from harness.remote import RemoteHost

        return RemoteHost("127.0.0.1", self.port, user="root", key=self.key_file, known_hosts=self.known_hosts,
                          timeout=timeout)

    def ssh_argv(self, command: list[str] | None = None) -> list[str]:
        """An OpenSSH command line to the VM (host key checked against the recorded one)."""
        return ["ssh", "-i", str(self.key_file), "-p", str(self.port), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "LogLevel=ERROR", "root@127.0.0.1"] + (["--"] + list(command) if command else [])


def _is_ours(pid: int, name: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{TAG}{name}".encode() in b" ".join(cmdline)


def load(name: str = DEFAULT_NAME) -> VM | None:
    path = machines_dir() / check_name(name) / "vm.json"
    try:
        return VM(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise VMError(f"unreadable VM record {path} ({exc}): remove it with `ani vm down -n {name}`") from None


def running(name: str = DEFAULT_NAME) -> VM:
    vm = load(name)
    if vm is None:
        raise VMError(f"no VM {name!r}: start it with `ani vm up{'' if name == DEFAULT_NAME else ' -n ' + name}`")
    if not vm.alive():
        raise VMError(f"VM {name!r} is not running (its qemu, pid {vm.pid}, is gone; see {vm.dir / 'console.log'}): "
                      f"`ani vm down -n {name}` then `ani vm up -n {name}`")
    return vm


def all_machines() -> list[VM]:
    out = []
    for path in sorted(machines_dir().glob("*/vm.json")) if machines_dir().is_dir() else []:
        with contextlib.suppress(VMError):
            vm = load(path.parent.name)
            if vm is not None:
                out.append(vm)
    return out


# ------------------------------------------------------------------------------ acceleration
def kvm_usable() -> tuple[bool, str]:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    mods = [m for m in ("kvm_intel", "kvm_amd") if Path("/sys/module", m).exists()]
    if mods:
        return True, f"KVM ({mods[0]})"
    if Path("/sys/module/kvm_pvm").exists():
        return False, "this host's KVM is PVM-only (kvm_pvm), which cannot boot a stock kernel"
    return False, "/dev/kvm has neither kvm_intel nor kvm_amd behind it"


def choose_accel(requested: str = "auto") -> tuple[str, str]:
    if requested not in ("auto", "kvm", "tcg"):
        raise VMError(f"--accel must be auto, kvm or tcg, not {requested!r}")
    ok, why = kvm_usable()
    if requested == "tcg":
        return "tcg", "software emulation (TCG), as asked: slower than KVM"
    if requested == "kvm" and not ok:
        raise VMError(f"--accel kvm: {why}")
    if ok:
        return "kvm", why
    return "tcg", f"{why}: software emulation (TCG), several times slower than KVM"


def qemu_argv(name: str, img: images.Image, overlay: Path, port: int, accel: str, cpus: int, memory_mib: int,
              run_dir: Path) -> list[str]:
    # TCG's default CPU (qemu64) lacks SSE4.2/POPCNT, which numpy 2's wheels require (SIGILL on
    # import); ``max`` is every feature TCG emulates (AVX2 since qemu 7.2).
    accel_args = (["-accel", "kvm", "-cpu", "host"] if accel == "kvm"
                  else ["-accel", "tcg,thread=multi", "-cpu", "max"])
    return (["qemu-system-x86_64", "-name", f"{TAG}{name},process={TAG}{name}"] + accel_args +
            ["-smp", str(cpus), "-m", str(memory_mib), "-display", "none", "-monitor", "none",
             "-serial", f"file:{run_dir / 'console.log'}",
             "-kernel", str(img.kernel), "-initrd", str(img.initrd),
             "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet",
             "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22", "-device", "virtio-net-pci,netdev=n0",
             "-drive", f"file={overlay},if=virtio,cache=unsafe,format=qcow2",
             "-pidfile", str(run_dir / "qemu.pid"), "-daemonize"])


# ------------------------------------------------------------------------------ lifecycle
def up(name: str = DEFAULT_NAME, *, accel: str = "auto", cpus: int = 2, memory_mib: int = 4096,
       img: images.Image | None = None, sync: bool = True, emit: Emit = lambda s: None) -> VM:
    """Boot VM ``name`` from the current image (built first if missing) and wait for SSH.

    Returns the running VM (one already running is returned as it is). ``sync`` copies this
    checkout's files into the guest's ``/opt/ani`` either way.
    """
    check_name(name)
    existing = load(name)
    if existing is not None and existing.alive():
        emit(f"VM {name!r} is already running (127.0.0.1:{existing.port}, {existing.accel})")
        if sync:
            sync_source(existing, emit=emit)
        return existing
    if existing is not None:
        down(name)
    if not 1 <= cpus <= 64 or not 512 <= memory_mib <= 262144:
        raise VMError(f"VM size out of range: cpus {cpus} (1-64), memory {memory_mib} MiB (512-262144)")
    for tool in ("qemu-system-x86_64", "qemu-img"):
        if not shutil.which(tool):
            raise VMError(f"`{tool}` is not installed: run `make setup-vm`")
    img = img or images.find() or images.build(emit=emit)
    chosen, note = choose_accel(accel)
    emit(f"accelerator: {chosen} — {note}")
    try:
        vm = _boot(name, img, chosen, note, cpus, memory_mib, emit,
                   timeout=KVM_PROBE_S if (chosen == "kvm" and accel == "auto") else BOOT_TIMEOUT_S)
    except VMError as exc:
        if not (chosen == "kvm" and accel == "auto"):
            raise
        emit(f"KVM did not boot the guest ({exc}); retrying with software emulation")
        vm = _boot(name, img, "tcg", f"KVM could not boot the guest within {KVM_PROBE_S:.0f} s: software "
                   "emulation (TCG)", cpus, memory_mib, emit, timeout=BOOT_TIMEOUT_S)
    if sync:
        sync_source(vm, emit=emit)
    return vm


def _boot(name, img, accel, note, cpus, memory_mib, emit, timeout) -> VM:
    run_dir = machines_dir() / name
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        overlay = run_dir / "disk.qcow2"
        r = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(img.disk), "-F", "qcow2",
                            str(overlay)], capture_output=True, text=True)
        if r.returncode != 0:
            raise VMError(f"qemu-img could not create the overlay on {img.disk}: {r.stderr.strip()[-300:]}")
        port = free_port()
        (run_dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {img.host_key}\n")
        t0 = time.monotonic()
        r = subprocess.run(qemu_argv(name, img, overlay, port, accel, cpus, memory_mib, run_dir),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise VMError(f"qemu failed to start: {r.stderr.strip()[-400:]}")
        pid = int((run_dir / "qemu.pid").read_text().strip())
        vm = VM(name=name, pid=pid, port=port, accel=accel, accel_note=note, image=img.dir.name, cpus=cpus,
                memory_mib=memory_mib, started=time.time())
        _write(vm)
        emit(f"VM {name!r} booting (qemu pid {pid}, SSH on 127.0.0.1:{port}) …")
        _wait_ssh(vm, timeout)
        vm.boot_s = round(time.monotonic() - t0, 1)
        _write(vm)
        emit(f"VM {name!r} answers SSH after {vm.boot_s:.1f} s")
        return vm
    except BaseException:
        down(name)
        raise


def _write(vm: VM) -> None:
    tmp = vm.dir / "vm.json.tmp"
    tmp.write_text(json.dumps(asdict(vm), indent=2) + "\n")
    tmp.replace(vm.dir / "vm.json")


def console_tail(vm: VM, lines: int = 6) -> str:
    try:
        text = (vm.dir / "console.log").read_text(errors="replace")
    except OSError:
        return "(no console output)"
    return "\n  ".join(line for line in text.strip().splitlines()[-lines:]) or "(no console output)"


def _wait_ssh(vm: VM, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    # paramiko logs a traceback for every connection the booting guest drops; they are expected.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    while time.monotonic() < deadline:
        if not vm.alive():
            raise VMError(f"qemu exited while booting; the console said:\n  {console_tail(vm)}")
        try:
            with vm.host(timeout=5.0) as h:
                if h.run(["true"], timeout=20).rc == 0:
                    return
        except RemoteError as exc:
            last = str(exc)
        time.sleep(1.0)
    raise VMError(f"VM {vm.name!r} did not answer SSH within {timeout:.0f} s ({last}); the console said:\n  "
                  f"{console_tail(vm)}")


def sync_source(vm: VM, emit: Emit = lambda s: None) -> int:
    """Replace the guest's copy of the checkout (not its venv) with the host's files."""
    root = images.project_root()
    buf = io.BytesIO()
    n = 0
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in images.project_files(root):
            tar.add(root / rel, arcname=str(rel), recursive=False)
            n += 1
    keep = " ".join(f"! -name {shlex.quote(x)}" for x in sorted(images.EXCLUDE | {"*.egg-info"}))
    with vm.host() as h:
        h.sftp.putfo(io.BytesIO(buf.getvalue()), "/tmp/ani-source.tar.gz")
        r = h.sh(f"cd {images.GUEST_ROOT} && find . -mindepth 1 -maxdepth 1 {keep} -exec rm -rf {{}} + && "
                 f"tar -xzf /tmp/ani-source.tar.gz -C {images.GUEST_ROOT} && rm -f /tmp/ani-source.tar.gz")
    if r.rc != 0:
        raise VMError(f"copying the checkout into the VM failed: {r.stderr.strip()[-300:]}")
    emit(f"synced {n} files of {root} to the VM's {images.GUEST_ROOT}")
    return n


def down(name: str = DEFAULT_NAME) -> bool:
    """Stop VM ``name`` and remove its overlay and record. True if there was anything to remove."""
    run_dir = machines_dir() / check_name(name)
    if not run_dir.exists():
        return False
    pids = set()
    with contextlib.suppress(VMError):
        vm = load(name)
        if vm is not None:
            pids.add(vm.pid)
    with contextlib.suppress(OSError, ValueError):
        pids.add(int((run_dir / "qemu.pid").read_text().strip()))
    for pid in pids:
        _kill(pid, name)
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def _kill(pid: int, name: str) -> None:
    if not _is_ours(pid, name):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _is_ours(pid, name) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _is_ours(pid, name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stray_qemus() -> list[tuple[int, str]]:
    """qemu processes with ani's tag whose overlay disk is under this cache's machines
    directory (another cache's VMs are not ours to touch): (pid, VM name)."""
    out = []
    root = str(machines_dir().resolve()).encode() + b"/"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not (cmd and cmd[0].endswith(b"qemu-system-x86_64")):
            continue
        names = [m.group(1) for a in cmd if (m := re.match(rb"^" + TAG.encode() + rb"([a-z0-9-]+),", a))]
        drives = [a for a in cmd if a.startswith(b"file=" + root)]
        if names and drives:
            out.append((int(proc.name), names[0].decode()))
    return out


def cleanup_vms(running: bool = False) -> list[str]:
    """Remove what stopped VMs left (records, overlays) and kill ani-tagged qemu processes no
    record owns; with ``running``, stop the running VMs too. Returns what was removed."""
    done = []
    if machines_dir().is_dir():
        for d in sorted(machines_dir().iterdir()):
            if not (d.is_dir() and NAME_RE.match(d.name)):
                continue
            try:
                vm = load(d.name)
            except VMError:
                vm = None
            if (running or vm is None or not vm.alive()) and down(d.name):
                done.append(f"vm {d.name}")
    owned = {(vm.pid, vm.name) for vm in all_machines()}
    for pid, name in stray_qemus():
        if (pid, name) not in owned:
            _kill(pid, name)
            done.append(f"qemu {pid} ({TAG}{name})")
    return done
