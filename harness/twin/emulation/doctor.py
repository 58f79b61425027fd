"""Environment checks for the emulation twin: what is present and what a missing piece means."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass

from harness.extras import hint
from harness.twin.emulation import profile


@dataclass
class Check:
    """One check: ``ok`` is True/False; ``detail`` says what was found; ``impact`` what a miss means."""

    name: str
    ok: bool
    detail: str
    impact: str
    required: bool = True


def _cmd_ok(argv: list[str]) -> tuple[bool, str]:
    if not shutil.which(argv[0]):
        return False, f"{argv[0]} not installed"
    r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    text = (r.stdout or r.stderr).strip().splitlines()
    return r.returncode == 0, text[0] if text else f"exit {r.returncode}"


def doctor() -> list[Check]:
    """Run every check (never raises)."""
    from harness.twin.emulation.network import capabilities

    checks = []
    root = os.geteuid() == 0
    checks.append(Check("root", root, "running as root" if root else f"uid {os.geteuid()}",
                        "namespaces, veths and OVS need root: the emulation twin cannot run"))
    ok, detail = _cmd_ok(["ovs-vsctl", "--timeout=3", "show"])
    checks.append(Check("Open vSwitch running", ok, "ovsdb/vswitchd answer" if ok else detail,
                        "no switches: start it with /usr/share/openvswitch/scripts/ovs-ctl start"))
    checks.append(Check("mnexec (Mininet)", shutil.which("mnexec") is not None,
                        shutil.which("mnexec") or "not installed",
                        "only the stock-Mininet benchmark needs it (Debian package mininet)", required=False))
    ok, detail = _cmd_ok(["ip", "-V"])
    checks.append(Check("iproute2", ok, detail, "cannot create namespaces or veths"))
    caps = capabilities() if root else {}
    kd = bool(caps.get("kernel_datapath"))
    checks.append(Check("openvswitch kernel module", kd, "present" if kd else "absent: userspace datapath used",
                        "switching runs in userspace (netdev): ~50 kpps ceiling, TX offload turned off",
                        required=False))
    checks.append(Check("HTB qdisc", bool(caps.get("htb")), "works" if caps.get("htb") else "missing or not checked",
                        "links cannot be shaped to their capacity"))
    netem = bool(caps.get("netem"))
    checks.append(Check("netem qdisc", netem, "works" if netem else "missing (sch_netem)",
                        "no propagation delay on links (reported in fidelity); loss via nftables instead",
                        required=False))
    prof, virt = profile.detect(), profile.virtualisation()
    soft = prof is profile.SOFTWARE_EMULATED
    checks.append(Check("CPU", not soft, f"virtualisation: {virt}" + (" (software emulation)" if soft else ""),
                        f"lighter probing: {prof.max_pairs} pairs at {1 / prof.probe_interval_s:g} Hz, "
                        f"{prof.max_fast_pairs} fast pairs"
                        + (f", background at most {prof.background_max_pps:g} pps" if prof.background_max_pps else ""),
                        required=False))
    ok, detail = _cmd_ok(["nft", "--version"])
    checks.append(Check("nftables", ok, detail, "no loss injection without netem", required=not netem))
    ok, detail = _cmd_ok(["iptables", "--version"])
    checks.append(Check("iptables", ok, detail, "not used by the emulation itself", required=False))
    ok, detail = _cmd_ok(["iperf3", "--version"])
    checks.append(Check("iperf3", ok, detail, "no background traffic or throughput measurement"))
    ok, detail = _cmd_ok(["ping", "-V"])
    checks.append(Check("ping (iputils)", ok, detail, "no probes: reachability, RTT and reroute time unmeasured"))
    ok, detail = _cmd_ok(["ethtool", "--version"])
    checks.append(Check("ethtool", ok, detail, "fallback for turning TX offload off (an ioctl is used first)",
                        required=False))
    for mod, impact, req in (("os_ken", "no SDN controller: no routing, failover or mitigation", True),
                             ("scapy", "no crafted-packet traffic generators", False),
                             ("mininet", "only the stock-Mininet benchmark needs it", False)):
        found = importlib.util.find_spec(mod) is not None
        checks.append(Check(f"python: {mod}", found, "importable" if found else f"not installed: {hint(mod)}", impact,
                            required=req))
    return checks
