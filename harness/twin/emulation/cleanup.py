"""Remove everything ani's emulation left behind, and only that.

Scope: names matching ``ani`` + 3 chars of ``[0-9a-z]`` + a role letter (see
:mod:`harness.twin.emulation.network`): OVS bridges, veth/links, network namespaces
(processes inside them are killed first), nftables ``netdev`` tables named by a run
prefix, and controller processes carrying the ``ani-controller`` tag.  Qdiscs go with
their interfaces.  Idempotent: a second call finds nothing and returns ``[]``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from harness.twin.emulation.controller import PROCESS_TAG
from harness.twin.emulation.plan import NAME_RE as _NAME
from harness.twin.emulation.plan import PREFIX_RE as _PREFIX



def _out(argv: list[str]) -> str:
    if not shutil.which(argv[0]):
        return ""
    r = subprocess.run(argv, capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def leftovers() -> dict[str, list]:
    """What ani's emulation has left on this machine right now (nothing is removed)."""
    bridges = [b for b in _out(["ovs-vsctl", "--timeout=10", "list-br"]).split() if _NAME.match(b)]
    netns = [line.split()[0] for line in _out(["ip", "netns", "list"]).splitlines()
             if line.split() and _NAME.match(line.split()[0])]
    links = []
    try:
        for item in json.loads(_out(["ip", "-j", "link", "show"]) or "[]"):
            if _NAME.match(item.get("ifname", "")):
                links.append(item["ifname"])
    except ValueError:
        pass
    tables = []
    try:
        for item in json.loads(_out(["nft", "-j", "list", "tables"]) or "{}").get("nftables", []):
            t = item.get("table")
            if t and _PREFIX.match(t.get("name", "")):
                tables.append((t["family"], t["name"]))
    except ValueError:
        pass
    procs = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"controllers.run" in cmd and PROCESS_TAG.encode() in cmd:
            procs.append(int(d.name))
    return {"bridges": bridges, "netns": netns, "links": links, "nft_tables": tables, "processes": procs}


def cleanup() -> list[str]:
    """Remove ani's leftovers; returns one line per thing removed (``[]`` if none)."""
    found = leftovers()
    done: list[str] = []
    for pid in found["processes"]:
        try:
            os.kill(pid, signal.SIGKILL)
            done.append(f"killed controller process {pid}")
        except ProcessLookupError:
            pass
    for ns in found["netns"]:
        pids = [int(p) for p in _out(["ip", "netns", "pids", ns]).split() if p.isdigit()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                done.append(f"killed process {pid} in namespace {ns}")
            except ProcessLookupError:
                pass
    if found["bridges"]:
        args = []
        for b in found["bridges"]:
            args += ["--", "--if-exists", "del-br", b]
        subprocess.run(["ovs-vsctl", "--timeout=60", *args], capture_output=True)
        done += [f"deleted OVS bridge {b}" for b in found["bridges"]]
    if found["netns"]:
        time.sleep(0.05)  # let killed processes leave their namespaces
        subprocess.run(["ip", "-force", "-batch", "-"], capture_output=True, text=True,
                       input="".join(f"netns del {ns}\n" for ns in found["netns"]))
        done += [f"deleted network namespace {ns}" for ns in found["netns"]]
    still = set(leftovers()["links"]) if found["links"] else set()
    if still:
        subprocess.run(["ip", "-force", "-batch", "-"], capture_output=True, text=True,
                       input="".join(f"link del {l}\n" for l in sorted(still)))
    done += [f"deleted interface {l}" for l in found["links"] if l in still]
    for family, name in found["nft_tables"]:
        subprocess.run(["nft", "delete", "table", family, name], capture_output=True)
        done.append(f"deleted nftables table {family} {name}")
    return done
