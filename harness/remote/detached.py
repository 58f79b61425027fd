"""Campaigns run detached on a remote host (:func:`run_remote_campaign`), over a
:class:`~harness.remote.connection.RemoteHost`, that survive a dropped link.

Remote campaigns
    The remote directory (``--remote-dir``, default ``~/ani-remote/<spec name>``) holds::

        input.yaml   the validated spec, uploaded over SFTP (canonical dump)
        campaign/    the campaign directory (the unit of truth, resumable)
        run.log      everything the remote ani printed, appended run after run
        run.pid      pid of the detached wrapper shell (its session and process group)
        run.rc       its exit code, written atomically when it ends

    The campaign runs detached (``nohup setsid sh -c …``, output to ``run.log``), so it
    does not depend on the SSH session. The client follows ``run.log`` over SFTP from a
    byte offset and hands each new line to a callback; it is done when ``run.rc`` appears.
    If the connection drops, it reconnects (a few attempts, growing delays) and carries on
    from the same offset: if the wrapper is still alive it simply re-attaches; if it died
    without writing ``run.rc`` (the host rebooted, the process was killed) it starts
    ``ani campaign run campaign --resume``, which keeps every unit already written. Running
    the same command again later does the same: an existing remote campaign with the same
    spec is resumed, never started over; one with a different spec is refused. When the
    run succeeds, ``campaign/`` is copied back over SFTP (file by file, atomically) and its
    manifest is checked locally. Campaigns whose spec asks for the emulation twin run under
    ``sudo -n`` when the remote user is not root.
"""

from __future__ import annotations

import shlex
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import paramiko
import yaml

from harness.errors import AniError, RemoteError
from harness.remote.connection import DEFAULT_ANI, RemoteHost, quote

_DROPPED = (paramiko.SSHException, EOFError, OSError, socket.timeout)

LineCallback = Callable[[str], None]


# ---------------------------------------------------------------------------------- campaigns
@dataclass
class RemoteRun:
    """What :func:`run_remote_campaign` did."""

    local_dir: Path
    remote_dir: str
    ani: str
    files: int = 0
    reconnects: int = 0
    resumes: int = 0
    lines: list[str] = field(default_factory=list)


class _Paths:
    def __init__(self, root: str):
        self.root = root
        self.spec = f"{root}/input.yaml"
        self.campaign = f"{root}/campaign"
        self.log = f"{root}/run.log"
        self.pid = f"{root}/run.pid"
        self.rc = f"{root}/run.rc"
        self.marker = f"ani-remote-run:{root}"


def _workdir(ani: str, host: RemoteHost) -> str:
    if ani.endswith("/.venv/bin/ani"):
        return ani[: -len("/.venv/bin/ani")] or "/"
    return host.home()


def _alive(host: RemoteHost, paths: _Paths) -> bool:
    """Is the wrapper recorded in run.pid still running (and really ours, not a reused pid)?"""
    if not host.exists(paths.pid):
        return False
    pid = host.read_text(paths.pid).strip()
    if not pid.isdigit():
        return False
    out = host.sh(f"tr '\\0' ' ' < /proc/{pid}/cmdline 2>/dev/null")
    return paths.marker in out.stdout


def _launch(host: RemoteHost, paths: _Paths, ani: str, sudo: bool, resume: bool) -> None:
    argv = (["sudo", "-n"] if sudo else []) + [ani, "campaign", "run"]
    argv += [paths.campaign, "--resume"] if resume else [paths.spec, "-o", paths.campaign]
    pid_tmp = shlex.quote(paths.pid + ".tmp")
    inner = (f"echo $$ > {pid_tmp} && mv {pid_tmp} {shlex.quote(paths.pid)}; "
             f"echo {shlex.quote('ani-remote: started: ' + quote(argv))}; {quote(argv)}; rc=$?; "
             f"echo \"ani-remote: exit $rc\"; echo $rc > {shlex.quote(paths.rc + '.tmp')} && "
             f"mv {shlex.quote(paths.rc + '.tmp')} {shlex.quote(paths.rc)}")
    # The wrapper records its own pid ($$): it leads its own session (setsid), so `kill -- -PID`
    # stops the whole run, and /proc/PID/cmdline carries the marker that tells it from a reused pid.
    script = (f"cd {shlex.quote(_workdir(ani, host))} && rm -f {shlex.quote(paths.rc)} {shlex.quote(paths.pid)} && "
              f"(nohup setsid sh -c {shlex.quote(inner)} {shlex.quote(paths.marker)} "
              f">> {shlex.quote(paths.log)} 2>&1 < /dev/null &)")
    done = host.sh(script)
    if done.rc != 0:
        raise RemoteError(f"could not start the campaign on {host.host}: {done.stderr.strip() or done.stdout.strip()}")
    deadline = time.monotonic() + 30
    while not host.exists(paths.pid):
        if time.monotonic() > deadline:
            raise RemoteError(f"the campaign did not start on {host.host} within 30 s; see {paths.log} there")
        time.sleep(0.1)


def _start_or_resume(host: RemoteHost, paths: _Paths, ani: str, sudo: bool) -> bool:
    """Start the campaign, or resume it when the remote directory already holds it; True if resumed."""
    resume = host.exists(f"{paths.campaign}/spec.yaml")
    _launch(host, paths, ani, sudo, resume)
    return resume


def run_remote_campaign(spec_path: str | Path, host: RemoteHost, *, remote_dir: str | None = None,
                        output: str | Path | None = None, remote_ani: str = DEFAULT_ANI,
                        on_line: LineCallback | None = None, poll_s: float = 0.5, reconnect_attempts: int = 5,
                        reconnect_delay_s: float = 2.0, max_restarts: int = 3) -> RemoteRun:
    """Run the campaign ``spec_path`` on ``host`` and copy its directory back to ``output``.

    See the module docstring for the remote layout and what happens when the connection
    drops. ``on_line`` receives each line the remote ani prints (and ``ani-remote: …``
    notes about reconnecting and resuming). ``output`` defaults to ``campaigns/<name>``.

    Raises
    ------
    CampaignError
        the spec is invalid, or the downloaded directory fails its integrity check.
    RemoteError
        connection problems that reconnecting did not fix, ani missing on the remote, a
        remote directory holding another campaign, or the remote campaign failing.
    """
    from harness.campaign import CampaignStore, load_spec, parse_spec

    spec = load_spec(spec_path)
    emit = on_line or (lambda line: None)
    local = Path(output) if output else Path("campaigns") / spec.name
    if local.exists() and any(local.iterdir()):
        if not (local / "spec.yaml").is_file() or load_spec(local / "spec.yaml") != spec:
            raise RemoteError(f"{local} already holds something else; choose another -o directory")
    if host.client is None:
        host.connect()
    try:
        ani = host.find_ani(remote_ani)
        paths = _Paths(host.expand(remote_dir or f"~/ani-remote/{spec.name}"))
        result = RemoteRun(local_dir=local, remote_dir=paths.root, ani=ani)
        sudo = spec.twins.emulation is not None and not host.is_root()

        stored = f"{paths.campaign}/spec.yaml"
        if host.exists(stored):
            try:
                same = parse_spec(yaml.safe_load(host.read_text(stored))) == spec
            except AniError:
                same = False
            if not same:
                raise RemoteError(f"{host.host}:{paths.root} holds a campaign with a different spec; "
                                  "choose another --remote-dir")
        if host.exists(paths.spec) and _alive(host, paths):
            try:
                same = parse_spec(yaml.safe_load(host.read_text(paths.spec))) == spec
            except AniError:
                same = False
            if not same:
                raise RemoteError(f"{host.host}:{paths.root} is running a campaign with a different spec; "
                                  "choose another --remote-dir")
        mk = host.run(["mkdir", "-p", paths.root])
        if mk.rc != 0:
            raise RemoteError(f"cannot create {paths.root} on {host.host}: {mk.stderr.strip()}")
        host.write_text(paths.spec, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
        offset = host.sftp.stat(paths.log).st_size if host.exists(paths.log) else 0
        if _alive(host, paths):
            emit(f"ani-remote: attaching to the campaign already running in {paths.root}")
        elif _start_or_resume(host, paths, ani, sudo):
            result.resumes += 1
            emit(f"ani-remote: resuming the campaign in {paths.root}")
    except (FileNotFoundError, PermissionError) as exc:
        raise RemoteError(f"cannot use {exc.filename or 'the remote directory'} on {host.host}: "
                          f"{exc.strerror or exc}") from None
    except _DROPPED as exc:
        raise RemoteError(f"lost the connection to {host.host} while preparing the campaign "
                          f"({type(exc).__name__}: {exc}); run the same command again") from None

    try:
        rc_text = _follow(host, paths, ani, sudo, offset, result, emit, poll_s, reconnect_attempts,
                          reconnect_delay_s, max_restarts)
    except KeyboardInterrupt:
        emit(f"ani-remote: interrupted; the campaign goes on in {paths.root} on {host.host}: run the same "
             f"command again to re-attach, or stop it there with `kill -- -$(cat {paths.root}/run.pid)`")
        raise
    rc = int(rc_text) if rc_text.lstrip("-").isdigit() else -1
    if rc != 0:
        tail = "\n".join(result.lines[-15:])
        raise RemoteError(f"the remote campaign failed on {host.host} (exit {rc}); last lines of {paths.log}:\n{tail}\n"
                          "fix the cause and run the same command again to resume it")
    try:
        result.files = host.get_tree(paths.campaign, local)
    except _DROPPED as exc:
        _reconnect(host, exc, result, emit, reconnect_attempts, reconnect_delay_s)
        result.files = host.get_tree(paths.campaign, local)
    CampaignStore(local).verify()   # every unit's checksum, and the copy matches its manifest
    return result


def _follow(host: RemoteHost, paths: _Paths, ani: str, sudo: bool, offset: int, result: RemoteRun,
            emit: LineCallback, poll_s: float, reconnect_attempts: int, reconnect_delay_s: float,
            max_restarts: int) -> str:
    """Stream run.log from ``offset`` until run.rc appears (reconnecting, resuming); returns run.rc's text."""
    stored = f"{paths.campaign}/spec.yaml"
    partial, restarts = b"", 0
    while True:
        try:
            with host.sftp.open(paths.log, "r") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            partial += chunk
            *lines, partial = partial.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").rstrip("\r")
                result.lines.append(line)
                emit(line)
            if host.exists(paths.rc):
                if chunk:
                    continue   # drain the log before finishing
                rc_text = host.read_text(paths.rc).strip()
                break
            if not _alive(host, paths) and not host.exists(paths.rc):
                restarts += 1
                if restarts > max_restarts:
                    raise RemoteError(f"the remote campaign in {paths.root} on {host.host} stopped {restarts} times "
                                      f"without finishing; see {paths.log} there")
                _launch(host, paths, ani, sudo, resume=host.exists(stored))
                result.resumes += 1
                emit(f"ani-remote: the remote run died; resuming the campaign in {paths.root}")
            time.sleep(poll_s)
        except (FileNotFoundError, PermissionError) as exc:
            raise RemoteError(f"cannot read {exc.filename or paths.root} on {host.host}: {exc.strerror or exc}") from None
        except _DROPPED as exc:
            _reconnect(host, exc, result, emit, reconnect_attempts, reconnect_delay_s)
    if partial:
        result.lines.append(partial.decode(errors="replace"))
        emit(result.lines[-1])
    return rc_text


def _reconnect(host: RemoteHost, exc: BaseException, result: RemoteRun, emit: LineCallback, attempts: int,
               delay_s: float) -> None:
    emit(f"ani-remote: connection to {host.host} lost ({type(exc).__name__}: {exc}); reconnecting")
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            host.reconnect()
            result.reconnects += 1
            emit(f"ani-remote: reconnected (attempt {attempt})")
            return
        except RemoteError as err:
            last = err
            time.sleep(min(delay_s * 2 ** (attempt - 1), 30.0))
    raise RemoteError(f"lost the connection to {host.host} and could not reconnect in {attempts} attempts ({last}); "
                      "the campaign keeps running there: run the same command again to re-attach or resume") from None
