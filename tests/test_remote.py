"""Remote campaigns over a real OpenSSH server started for the tests (loopback, a free port).

The "remote" is this machine reached through sshd; its ani is the one next to the running
interpreter. Covered: a campaign run remotely equals a local run with the same seed; unknown
host keys are refused (and recorded with accept_new_host_key); changed keys, wrong keys, a
closed port and a missing remote ani give clear errors; a dropped connection mid-run
re-attaches, and a run that died on the remote is resumed, with the same results.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.campaign import CampaignStore, parse_spec, run_campaign
from harness.errors import RemoteError
from harness.remote import RemoteHost, parse_ssh_config, remote_doctor, run_remote_campaign
from harness.remote.connection import quote

ANI = str(Path(sys.executable).parent / "ani")
SPEC = {
    "name": "remote-small",
    "topology": "topozoo/Abilene",
    "generators": [{"generator": "rule"}, {"generator": "random"}],
    "budget": {"iterations": 2, "per_iteration": 3},
    "mitigation": ["auto"],
    "seed": 7,
}


def kpis(root: Path) -> dict:
    return {f"{m['label']}/{r.scenario_id}/{r.twin}/{m['mitigation']}": {p: row.model_dump() for p, row in r.rows.items()}
            for m, r in CampaignStore(root).results()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


class Sshd:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.host_key = keygen(root / "host_ed25519")
        self.user_key = keygen(root / "user_ed25519")
        self.other_key = keygen(root / "other_ed25519")
        (root / "authorized_keys").write_text((root / "user_ed25519.pub").read_text())
        self.known_hosts = root / "known_hosts"
        pub = (root / "host_ed25519.pub").read_text().split()
        self.known_line = f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n"
        config = root / "sshd_config"
        config.write_text(f"""\
ListenAddress 127.0.0.1
Port {self.port}
HostKey {self.host_key}
PidFile {root / 'sshd.pid'}
AuthorizedKeysFile {root / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
""")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.log = open(root / "sshd.log", "w")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()}")
                time.sleep(0.05)

    def host(self, **kw) -> RemoteHost:
        options = dict(port=self.port, user="root", key=self.user_key, known_hosts=self.known_hosts)
        return RemoteHost("127.0.0.1", **{**options, **kw})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.known_hosts.write_text(server.known_line)
    try:
        yield server
    finally:
        server.stop()
    assert server.proc.poll() is not None


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "small.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("local") / "c"
    run_campaign(root, parse_spec(SPEC))
    return kpis(root)


def test_remote_campaign_equals_local_run(sshd, spec_file, local_reference, tmp_path):
    lines = []
    with sshd.host() as host:
        done = run_remote_campaign(spec_file, host, remote_dir=str(tmp_path / "remote"), output=tmp_path / "out",
                                   remote_ani=ANI, on_line=lines.append, poll_s=0.2)
    assert done.ani == ANI and done.files > 0 and done.resumes == 0
    assert any(l.startswith("ani-remote: started:") for l in lines)
    assert any("campaign in" in l and "accepted" in l for l in lines)
    assert kpis(tmp_path / "out") == local_reference
    CampaignStore(tmp_path / "out").results_frame()
    # A local file the remote does not have, and a damaged local copy of a unit
    stale = tmp_path / "out" / "results" / "stale__flow__auto.json"
    stale.write_text("{}")
    (tmp_path / "out" / "leftover").mkdir()
    victim = sorted((tmp_path / "out" / "results").glob("*__flow__*.json"))[0]
    victim.write_text(victim.read_text().replace('"loss_pct"', '"loss_pct_"', 1))
    # Running it again resumes the finished remote campaign (adds nothing) instead of starting over,
    # and the copy becomes the remote's again: the stale files go, the damaged unit is replaced.
    with sshd.host() as host:
        again = run_remote_campaign(spec_file, host, remote_dir=str(tmp_path / "remote"), output=tmp_path / "out",
                                    remote_ani=ANI, poll_s=0.2)
    assert again.resumes == 1
    assert any("runs: nothing new" in l for l in again.lines)
    assert not stale.exists() and not (tmp_path / "out" / "leftover").exists()
    assert kpis(tmp_path / "out") == local_reference
    assert CampaignStore(tmp_path / "out").verify() > 1


def test_dropped_connection_reattaches(sshd, spec_file, local_reference, tmp_path):
    host = sshd.host()
    dropped = []

    def on_line(line):
        if not dropped and line.startswith("ani-remote: started"):
            dropped.append(line)
            host.client.get_transport().close()   # the link goes down mid-run

    with host:
        done = run_remote_campaign(spec_file, host, remote_dir=str(tmp_path / "remote"), output=tmp_path / "out",
                                   remote_ani=ANI, on_line=on_line, poll_s=0.2, reconnect_delay_s=0.2)
    assert dropped and done.reconnects == 1 and done.resumes == 0
    assert kpis(tmp_path / "out") == local_reference


def test_run_killed_on_the_remote_while_disconnected_is_resumed(sshd, spec_file, local_reference, tmp_path):
    remote = tmp_path / "remote"
    host = sshd.host()
    killed = []

    def on_line(line):
        if killed or not line.startswith("ani-remote: started"):
            return
        deadline = time.monotonic() + 20
        while not (remote / "campaign" / "spec.yaml").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = int((remote / "run.pid").read_text())
        os.killpg(pid, signal.SIGKILL)            # the remote run dies (reboot, OOM killer, …)
        killed.append(pid)
        host.client.get_transport().close()       # … and the link goes down with it

    with host:
        done = run_remote_campaign(spec_file, host, remote_dir=str(remote), output=tmp_path / "out",
                                   remote_ani=ANI, on_line=on_line, poll_s=0.2, reconnect_delay_s=0.2)
    assert killed and done.reconnects == 1 and done.resumes == 1
    assert any("--resume" in l for l in done.lines if l.startswith("ani-remote: started"))
    assert kpis(tmp_path / "out") == local_reference


def test_unknown_host_key_is_refused_then_recorded_on_request(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    with pytest.raises(RemoteError, match="not in .*known_hosts.*--accept-new-host-key"):
        sshd.host(known_hosts=known).connect()
    assert not known.exists()
    with sshd.host(known_hosts=known, accept_new_host_key=True) as host:
        assert host.run(["echo", "hello world"]).stdout == "hello world\n"
    assert known.read_text().split()[:3] == sshd.known_line.split()
    with sshd.host(known_hosts=known) as host:       # now known: no flag needed
        assert host.is_root()


def test_changed_host_key_is_refused_even_with_accept_new(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    other = (sshd.root / "other_ed25519.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    with pytest.raises(RemoteError, match="CHANGED.*ssh-keygen -R"):
        sshd.host(known_hosts=known, accept_new_host_key=True).connect()


def test_wrong_key_is_a_clear_error(sshd):
    with pytest.raises(RemoteError, match="authentication as root on 127.0.0.1.*failed.*--key"):
        sshd.host(key=sshd.other_key).connect()
    with pytest.raises(RemoteError, match="key file not found"):
        sshd.host(key=sshd.root / "missing").connect()


def test_host_down_is_a_clear_error(sshd):
    with pytest.raises(RemoteError, match=r"cannot connect to 127.0.0.1:\d+: connection refused"):
        RemoteHost("127.0.0.1", port=free_port(), user="root", key=sshd.user_key,
                   known_hosts=sshd.known_hosts).connect()


def test_missing_remote_ani_is_a_clear_error(sshd, spec_file, tmp_path):
    with sshd.host() as host:
        with pytest.raises(RemoteError, match="ani was not found on 127.0.0.1 .*/nonexistent/ani.*--remote-ani"):
            run_remote_campaign(spec_file, host, remote_dir=str(tmp_path / "r"), output=tmp_path / "o",
                                remote_ani="/nonexistent/ani")
    assert not (tmp_path / "o").exists()


def test_remote_doctor_runs_ani_doctor(sshd):
    with sshd.host() as host:
        rc, text = remote_doctor(host, remote_ani=ANI)
    assert f"remote ani: {ANI}" in text and "root: yes" in text
    proc = subprocess.run([ANI, "doctor"], capture_output=True, text=True)
    assert rc == proc.returncode
    assert (proc.stdout + proc.stderr).strip().splitlines()[0] in text


def test_remote_dir_with_another_campaign_is_refused(sshd, spec_file, tmp_path):
    other = tmp_path / "remote" / "campaign"
    run_campaign(other, parse_spec({**SPEC, "seed": 8, "budget": {"iterations": 1, "per_iteration": 1}}))
    with sshd.host() as host:
        with pytest.raises(RemoteError, match="different spec"):
            run_remote_campaign(spec_file, host, remote_dir=str(tmp_path / "remote"), output=tmp_path / "o",
                                remote_ani=ANI)


def test_commands_are_quoted():
    assert quote(["echo", "a b", "$(reboot)", "x;y"]) == "echo 'a b' '$(reboot)' 'x;y'"
    with pytest.raises(RemoteError, match="invalid host"):
        RemoteHost("-oProxyCommand=reboot")
    with pytest.raises(RemoteError, match="invalid user"):
        RemoteHost("example.org", user="root;reboot")


VAGRANT_SSH_CONFIG = """\
Host default
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/home/me/my project/.vagrant/machines/default/virtualbox/private_key"
  IdentityFile /home/me/.vagrant.d/insecure_private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host db
  HostName 192.168.56.11
  User vagrant
  Port 22
  IdentityFile /x/db/private_key
"""


def test_parse_vagrant_ssh_config():
    t = parse_ssh_config(VAGRANT_SSH_CONFIG)
    assert (t.host, t.port, t.user) == ("127.0.0.1", 2222, "vagrant")
    assert t.key == "/home/me/my project/.vagrant/machines/default/virtualbox/private_key"
    db = parse_ssh_config(VAGRANT_SSH_CONFIG, "db")
    assert (db.host, db.port, db.key) == ("192.168.56.11", 22, "/x/db/private_key")
    with pytest.raises(RemoteError, match="no Vagrant machine 'web'.*default, db"):
        parse_ssh_config(VAGRANT_SSH_CONFIG, "web")
    with pytest.raises(RemoteError, match="no Host block"):
        parse_ssh_config("")
    with pytest.raises(RemoteError, match="bad Port"):
        parse_ssh_config("Host x\n  HostName h\n  Port twenty\n")


def test_cli_remote_run_and_errors(sshd, spec_file, local_reference, tmp_path):
    from click.testing import CliRunner

    from harness.cli.main import cli
    from harness.cli.remote import remote

    cli.add_command(remote)
    common = ["--host", "127.0.0.1", "--port", str(sshd.port), "--user", "root", "--key", str(sshd.user_key),
              "--remote-ani", ANI]
    res = CliRunner().invoke(cli, ["remote", "run", str(spec_file), *common, "--known-hosts", str(sshd.known_hosts),
                                   "--remote-dir", str(tmp_path / "r"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "campaign in" in res.output and f"to {tmp_path / 'o'}" in res.output
    assert kpis(tmp_path / "o") == local_reference
    # --json: the copy's record on stdout, the remote's streamed output on stderr
    res = CliRunner().invoke(cli, ["remote", "run", str(spec_file), *common, "--known-hosts", str(sshd.known_hosts),
                                   "--remote-dir", str(tmp_path / "r2"), "-o", str(tmp_path / "o2"), "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["local_dir"] == str(tmp_path / "o2") and doc["files"] > 0, res.output
    assert "campaign in" in res.stderr
    res = CliRunner().invoke(cli, ["remote", "doctor", *common, "--known-hosts", str(sshd.known_hosts), "--json"])
    doc = json.loads(res.stdout)
    assert doc["root"] is True and doc["remote_ani"] == ANI and {c["name"] for c in doc["checks"]} >= {"root"}
    assert res.exit_code == (1 if doc["missing"] else 0)
    res = CliRunner().invoke(cli, ["remote", "doctor", *common, "--known-hosts", str(tmp_path / "none")])
    assert res.exit_code == 1
    assert "error: " in res.output and "--accept-new-host-key" in res.output
    res = CliRunner().invoke(cli, ["remote", "run", str(spec_file)])
    assert res.exit_code == 1 and "--host HOST (or --vagrant, or --vm)" in res.output


def test_failing_remote_campaign_reports_its_log(sshd, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "name": "bad-topology", "topology": "topologies/no-such-file.graphml"}))
    with sshd.host() as host:
        with pytest.raises(RemoteError, match=r"(?s)remote campaign failed on 127.0.0.1 \(exit 1\).*"
                                              r"no-such-file.*run the same command again"):
            run_remote_campaign(spec, host, remote_dir=str(tmp_path / "r"), output=tmp_path / "o", remote_ani=ANI,
                                poll_s=0.2)
    assert not (tmp_path / "o").exists()
