"""The checked SSH connection (paramiko) to another machine: where to connect, host keys,
commands and files. :mod:`harness.remote.detached` runs campaigns on top of it.

Connection (:class:`RemoteHost`)
    The server's host key is checked against ``known_hosts`` (``~/.ssh/known_hosts`` unless
    told otherwise). An unknown key is refused unless ``accept_new_host_key`` is set, which
    then appends it to that file (trust on first use, like ``StrictHostKeyChecking
    accept-new``); a key that differs from the recorded one is always refused. Every failure
    (unknown/changed key, refused authentication, host down, ani missing) is a
    :class:`~harness.errors.RemoteError` that says what to do.

Commands
    Every command line sent is assembled from validated values with :func:`shlex.quote`
    and run as ``sh -c '<script>'``, whatever the remote login shell is. Nothing from a spec
    or a model reaches a remote shell unquoted.

Finding ani on the remote
    ``remote_ani`` (``--remote-ani``) defaults to ``ani``: the first of ``ani`` on the remote
    ``PATH``, ``~/ani/.venv/bin/ani`` (a checkout in the home directory after ``make setup``)
    ``/vagrant/.venv/bin/ani`` (the Vagrant VM) and ``/opt/ani/.venv/bin/ani`` (the image
    ``ani vm build`` makes) that runs. Any other value is used as
    given (``~/`` is expanded to the remote home). The remote command's working directory is
    the checkout that holds its ``.venv`` (or the home directory), so relative paths in a spec
    (``topologies/…``, ``incidents:``) mean the same files as in a local checkout.
"""

from __future__ import annotations

import getpass
import json
import os
import posixpath
import re
import shlex
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.errors import RemoteError

_HOST = re.compile(r"^(?!-)[A-Za-z0-9._:%\[\]-]{1,253}$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
DEFAULT_ANI = "ani"
FALLBACK_ANIS = ("~/ani/.venv/bin/ani", "/vagrant/.venv/bin/ani", "/opt/ani/.venv/bin/ani")


# ---------------------------------------------------------------------------------- validation
def check_host(host: str) -> str:
    if not isinstance(host, str) or not _HOST.match(host):
        raise RemoteError(f"invalid host name {host!r}: use a host name, an IPv4 or an IPv6 address")
    return host


def check_port(port: int) -> int:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise RemoteError(f"invalid SSH port {port!r}: use 1-65535")
    return port


def check_user(user: str) -> str:
    if not isinstance(user, str) or not _USER.match(user):
        raise RemoteError(f"invalid user name {user!r}")
    return user


def _check_path(path: str, what: str) -> str:
    if not isinstance(path, str) or not path or "\0" in path or "\n" in path:
        raise RemoteError(f"invalid {what} {path!r}")
    return path


def quote(argv: list[str]) -> str:
    """One shell command line from an argument list, every argument quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


# ---------------------------------------------------------------------------------- vagrant
@dataclass(frozen=True)
class SSHTarget:
    """Where to connect: what ``--host/--port/--user/--key`` or ``vagrant ssh-config`` say."""

    host: str
    port: int = 22
    user: str | None = None
    key: str | None = None


def parse_ssh_config(text: str, machine: str | None = None) -> SSHTarget:
    """Parse the output of ``vagrant ssh-config`` (an OpenSSH client config).

    Reads ``HostName``, ``Port``, ``User`` and the first ``IdentityFile`` of the block for
    ``machine`` (default: the first ``Host`` block). Values may be double-quoted.

    Raises
    ------
    RemoteError
        no such Host block, or it lacks HostName.
    """
    blocks: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        key = parts[0].lower()
        value = parts[1].strip() if len(parts) > 1 else ""
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key == "host":
            blocks.append((value, {}))
        elif blocks and key not in blocks[-1][1]:
            blocks[-1][1][key] = value
    if not blocks:
        raise RemoteError("`vagrant ssh-config` printed no Host block; is the VM created (`vagrant up`)?")
    chosen = blocks[0] if machine is None else next((b for b in blocks if b[0] == machine), None)
    if chosen is None:
        raise RemoteError(f"no Vagrant machine {machine!r} in `vagrant ssh-config` "
                          f"(machines: {', '.join(b[0] for b in blocks)})")
    name, opts = chosen
    if "hostname" not in opts:
        raise RemoteError(f"`vagrant ssh-config` gives no HostName for {name!r}")
    try:
        port = int(opts.get("port", "22"))
    except ValueError:
        raise RemoteError(f"`vagrant ssh-config` gives a bad Port {opts['port']!r}") from None
    return SSHTarget(host=check_host(opts["hostname"]), port=check_port(port),
                     user=check_user(opts["user"]) if "user" in opts else None, key=opts.get("identityfile"))


def vagrant_target(machine: str | None = None, cwd: str | Path | None = None) -> SSHTarget:
    """Run ``vagrant ssh-config`` (in ``cwd``, the directory with the Vagrantfile) and parse it."""
    argv = ["vagrant", "ssh-config"] + ([machine] if machine else [])
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise RemoteError("--vagrant needs the `vagrant` command, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise RemoteError("`vagrant ssh-config` did not answer within 120 s") from None
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split())[-400:]
        raise RemoteError(f"`vagrant ssh-config` failed ({detail}); is the VM running (`vagrant up`)?")
    return parse_ssh_config(proc.stdout, machine)


# ---------------------------------------------------------------------------------- host keys
class _KnownHostsPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown host keys, or record them in ``path`` when told to accept new keys."""

    def __init__(self, path: Path, accept_new: bool):
        self.path, self.accept_new = path, accept_new

    def missing_host_key(self, client, hostname, key):
        fingerprint = f"{key.get_name()} {key.fingerprint}"
        if not self.accept_new:
            raise RemoteError(f"the host key of {hostname} ({fingerprint}) is not in {self.path}: "
                              "refusing to connect to an unknown host. If that fingerprint is right, rerun with "
                              "--accept-new-host-key to record it")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = paramiko.hostkeys.HostKeyEntry([hostname], key).to_line()
        with open(self.path, "a") as fh:
            fh.write(line)
        os.chmod(self.path, 0o600)
        client.get_host_keys().add(hostname, key.get_name(), key)


# ---------------------------------------------------------------------------------- the host
@dataclass
class Completed:
    rc: int
    stdout: str
    stderr: str


class RemoteHost:
    """An SSH connection to one host, with its host key checked; a context manager.

    Parameters
    ----------
    host, port, user, key
        Where and as whom; ``user`` defaults to the local user name, ``key`` to the SSH
        agent and the default keys in ``~/.ssh``.
    accept_new_host_key
        Record an unknown host key in ``known_hosts`` instead of refusing it.
    known_hosts
        The known-hosts file (default ``~/.ssh/known_hosts``).

    Raises
    ------
    RemoteError
        on connection: unknown or changed host key, failed authentication, unreachable host.
    """

    def __init__(self, host: str, port: int = 22, user: str | None = None, key: str | Path | None = None,
                 accept_new_host_key: bool = False, known_hosts: str | Path | None = None, timeout: float = 10.0):
        self.host = check_host(host)
        self.port = check_port(port)
        self.user = check_user(user) if user is not None else getpass.getuser()
        self.key = str(Path(key).expanduser()) if key is not None else None
        self.accept_new_host_key = accept_new_host_key
        self.known_hosts = Path(known_hosts).expanduser() if known_hosts else Path("~/.ssh/known_hosts").expanduser()
        self.timeout = timeout
        self.client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._home: str | None = None

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    # ------------------------------------------------------------------ connection
    def connect(self) -> "RemoteHost":
        if self.key is not None and not Path(self.key).is_file():
            raise RemoteError(f"SSH key file not found: {self.key}")
        client = paramiko.SSHClient()
        if self.known_hosts.is_file():
            try:
                client.load_system_host_keys(str(self.known_hosts))
            except (OSError, paramiko.SSHException) as exc:
                raise RemoteError(f"cannot read known hosts file {self.known_hosts}: {exc}") from None
        client.set_missing_host_key_policy(_KnownHostsPolicy(self.known_hosts, self.accept_new_host_key))
        try:
            client.connect(self.host, self.port, username=self.user, key_filename=self.key,
                           look_for_keys=self.key is None, allow_agent=self.key is None, timeout=self.timeout,
                           banner_timeout=self.timeout, auth_timeout=self.timeout)
        except RemoteError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            raise RemoteError(
                f"the host key of {name} has CHANGED (now {exc.key.get_name()} {exc.key.fingerprint}, "
                f"{self.known_hosts} has {exc.expected_key.fingerprint}): refusing to connect; someone may be "
                f"intercepting the connection. If the host was reinstalled, remove the old key with "
                f"`ssh-keygen -R '{name}' -f {self.known_hosts}` and connect again with --accept-new-host-key") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            how = f"the key {self.key}" if self.key else "the SSH agent and the default keys in ~/.ssh"
            raise RemoteError(f"authentication as {self.user} on {self.host}:{self.port} failed with {how} "
                              f"({exc}); check --user and --key") from None
        except (socket.timeout, TimeoutError):
            client.close()
            raise RemoteError(f"connecting to {self.host}:{self.port} timed out after {self.timeout:g} s: "
                              "is the host up and the port right?") from None
        except socket.gaierror as exc:
            client.close()
            raise RemoteError(f"unknown host {self.host!r} ({exc.strerror})") from None
        except paramiko.ssh_exception.NoValidConnectionsError:
            client.close()
            raise RemoteError(f"cannot connect to {self.host}:{self.port}: connection refused "
                              "(is the host up and sshd listening on that port?)") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise RemoteError(f"SSH connection to {self.host}:{self.port} failed: {exc or type(exc).__name__}") from None
        self.client = client
        return self

    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001 - closing a dead channel may fail; nothing to do
                pass
            self._sftp = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def reconnect(self) -> None:
        self.close()
        self.connect()

    def __enter__(self) -> "RemoteHost":
        return self.connect() if self.client is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def _live(self) -> paramiko.SSHClient:
        if self.client is None:
            raise RemoteError(f"not connected to {self.where}")
        return self.client

    # ------------------------------------------------------------------ commands and files
    def sh(self, script: str, timeout: float | None = 120.0) -> Completed:
        """Run ``script`` (built from quoted parts only) under ``sh -c``; the transport's errors pass through."""
        _, out, err = self._live().exec_command("sh -c " + shlex.quote(script), timeout=timeout)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        return Completed(out.channel.recv_exit_status(), stdout, stderr)

    def run(self, argv: list[str], timeout: float | None = 120.0) -> Completed:
        """Run one command given as an argument list (each argument quoted)."""
        return self.sh(quote(argv), timeout=timeout)

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._live().open_sftp()
        return self._sftp

    def home(self) -> str:
        if self._home is None:
            self._home = self.sftp.normalize(".")
        return self._home

    def expand(self, path: str) -> str:
        """``~`` and ``~/…`` to the remote home; relative paths are relative to it too."""
        _check_path(path, "remote path")
        if path == "~" or path.startswith("~/"):
            path = self.home() + path[1:]
        elif not path.startswith("/"):
            path = posixpath.join(self.home(), path)
        return posixpath.normpath(path)

    def is_root(self) -> bool:
        return self.run(["id", "-u"]).stdout.strip() == "0"

    def exists(self, path: str) -> bool:
        try:
            self.sftp.stat(path)
            return True
        except FileNotFoundError:
            return False

    def read_text(self, path: str) -> str:
        with self.sftp.open(path, "r") as fh:
            return fh.read().decode(errors="replace")

    def write_text(self, path: str, text: str) -> None:
        tmp = f"{path}.tmp"
        with self.sftp.open(tmp, "w") as fh:
            fh.write(text.encode())
        self.sftp.posix_rename(tmp, path)

    def find_ani(self, remote_ani: str = DEFAULT_ANI) -> str:
        """The remote ani executable (see the module docstring); RemoteError when none runs."""
        _check_path(remote_ani, "--remote-ani")
        candidates = [remote_ani] + (list(FALLBACK_ANIS) if remote_ani == DEFAULT_ANI else [])
        tried = []
        for cand in candidates:
            path = cand if cand == DEFAULT_ANI else self.expand(cand)
            tried.append(path)
            found = self.sh(f"command -v {shlex.quote(path)}")
            if found.rc != 0 or not found.stdout.strip():
                continue
            path = found.stdout.strip().splitlines()[0]
            probe = self.run([path, "--help"])
            if probe.rc == 0 and "campaign" in probe.stdout:
                return path
            tried[-1] += f" (does not run: {' '.join((probe.stderr or probe.stdout).split())[-200:]})"
        raise RemoteError(f"ani was not found on {self.host} (tried {', '.join(tried)}): install it there "
                          "(`make setup` in a checkout) or point --remote-ani at its .venv/bin/ani")

    def get_tree(self, remote: str, local: Path) -> int:
        """Make ``local`` a copy of the remote directory ``remote`` (regular files only):
        files are downloaded, and local files and folders the remote no longer has are
        removed. Returns the number of files copied."""
        count = 0
        local.mkdir(parents=True, exist_ok=True)
        entries = [e for e in self.sftp.listdir_attr(remote)
                   if e.filename not in (".", "..") and "/" not in e.filename and not e.filename.endswith(".tmp")]
        names = {e.filename for e in entries if stat.S_ISDIR(e.st_mode) or stat.S_ISREG(e.st_mode)}
        for stale in local.iterdir():
            if stale.name not in names:
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
        for entry in entries:
            name = entry.filename
            src, dst = f"{remote}/{name}", local / name
            if stat.S_ISDIR(entry.st_mode):
                count += self.get_tree(src, dst)
            elif stat.S_ISREG(entry.st_mode):
                tmp = dst.with_name(f".{name}.{os.getpid()}.download.tmp")
                self.sftp.get(src, str(tmp))
                os.replace(tmp, dst)
                count += 1
        return count


# ---------------------------------------------------------------------------------- doctor
def remote_doctor(host: RemoteHost, remote_ani: str = DEFAULT_ANI, sudo: bool = False,
                  as_json: bool = False) -> tuple[int, str]:
    """Run ``ani doctor`` on ``host``; returns its exit code and a report: connection facts and
    its output, or with ``as_json`` one JSON document (the facts and the remote ``ani doctor
    --json``'s checks)."""
    if host.client is None:
        host.connect()
    ani = host.find_ani(remote_ani)
    root = host.is_root()
    can_sudo = root or host.run(["sudo", "-n", "true"]).rc == 0
    argv = (["sudo", "-n"] if sudo and not root else []) + [ani, "doctor"] + (["--json"] if as_json else [])
    done = host.run(argv, timeout=300)
    if as_json:
        try:
            checks = json.loads(done.stdout)
        except ValueError:
            raise RemoteError(f"`{' '.join(argv)}` on {host.where} did not print JSON (exit {done.rc}): "
                              f"{(done.stdout + done.stderr).strip()[-300:]}") from None
        return done.rc, json.dumps({"remote": host.where, "remote_ani": ani, "root": root,
                                    "passwordless_sudo": can_sudo, **checks}, indent=2)
    head = (f"remote: {host.where}\nremote ani: {ani}\nroot: {'yes' if root else 'no'}; "
            f"passwordless sudo: {'yes' if can_sudo else 'no (campaigns with twins.emulation will fail)'}\n")
    return done.rc, head + done.stdout + done.stderr
