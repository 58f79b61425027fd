"""A live packet-level network built from a topology graph: OVS + network namespaces.

One Open vSwitch bridge per router and one host (a network namespace, no processes)
per router, with veth pairs between them.  Built directly with batched commands
(one ``ovs-vsctl`` transaction, ``ip -batch``, ``tc -batch``) instead of Mininet's
per-node shells, which makes bring-up several times faster (see ``benchmarks/bringup.py``).

Naming scheme: every name starts with the run prefix (``ani`` + 3 chars of ``[0-9a-z]``,
random per run, e.g. ``ani4kq``) so ``ani cleanup`` finds leftovers; bridges, namespaces,
ports and addresses are the :class:`~harness.twin.emulation.plan.NetworkPlan`'s (see there).
    nft table       ``netdev {prefix}``          (loss injection without netem)
    link group      ``1000 + int(prefix[3:], 36)``: every root-namespace interface of the run
                    (switch ports, bridge internal ports), so teardown is one ``ip link del group``

Bring-up order (what makes it fast)
    controller process started first (its imports overlap the rest) → one ``ip -batch``
    (namespaces, veths created with the host end directly inside its namespace, all up) →
    TX offload off by ioctl from a thread inside each namespace (no ethtool processes) →
    one ``ovs-vsctl`` transaction for all bridges and ports, in parallel with one
    ``ip -n NS -batch`` per host (address, static ARP) → one ``tc -batch`` (HTB, after OVS,
    which clears root qdiscs of new ports) → once the controller listens, one transaction
    pointing every bridge at it (a refused first connect costs OVS's 1 s backoff) → wait
    until every switch has confirmed its routes (barrier).

Fidelity (recorded in :attr:`EmulatedNetwork.fidelity`)
    * datapath: the kernel datapath if the ``openvswitch`` module is present, else
      userspace (``netdev``) with TX checksum offload off on host interfaces.
    * shaping: HTB on both ends of every router-router link at
      ``capacity_mbps × bw_scale`` clamped to [:data:`MIN_RATE_MBPS`, :data:`MAX_RATE_MBPS`].
      :data:`DEFAULT_BW_SCALE` = 1e-3 maps the usual 10 Gbit/s backbone link to 10 Mbit/s,
      which a 2-vCPU machine forwards in userspace (~470 Mbit/s total ceiling).  Each shaped
      port queues at most :data:`QUEUE_MS` of traffic (bfifo; netem's limit with netem).
    * delay: netem under HTB only where the kernel has ``sch_netem``; otherwise links have
      no propagation delay and ``fidelity["delay"]`` is False.
    * loss: netem ``loss`` if present, else nftables ``numgen random`` drops on the
      sending port's netdev egress hook (``fidelity["loss"]`` names which).
    * router forwarding capacity: with ``router_capacity_mbps`` (the KG's ``cpu`` resources),
      the controller meters everything each switch receives at ``capacity × bw_scale``
      (an OpenFlow drop meter, i.e. a policer: excess is dropped, not queued);
      ``fidelity["router_capacity"]`` says whether it is on.
    * ARP: static neighbour entries on every host; no ARP or broadcast traffic.
"""

from __future__ import annotations

import array
import fcntl
import functools
import json
import logging
import os
import random
import shutil
import signal
import socket
import string
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import networkx as nx

from harness.errors import AniError, EmulationError
from harness.topology import link_id
from harness.twin.emulation.plan import HOST_PORT, NAME_PREFIX, PREFIX_RE, NetworkPlan

log = logging.getLogger(__name__)

DEFAULT_BW_SCALE = 1e-3
MIN_RATE_MBPS = 0.1
MAX_RATE_MBPS = 1000.0
#: Queue of a shaped port: a byte FIFO holding QUEUE_MS of traffic at the link rate
#: (Linux' default 1000 packets would add a second of queueing at 10 Mbit/s).
QUEUE_MS = 50.0
QUEUE_MIN_BYTES = 15_000
#: Echo requests sent at once by :meth:`EmulatedNetwork.reachability`.
REACH_WAVE = 2000
_IFNAMSIZ = 15


def scaled_rate(capacity_mbps: float, bw_scale: float) -> float:
    """A KG capacity as an emulated rate: scaled by ``bw_scale``, clamped to what shaping does."""
    return round(min(MAX_RATE_MBPS, max(MIN_RATE_MBPS, capacity_mbps * bw_scale)), 6)


def new_prefix() -> str:
    """A fresh run prefix: ``ani`` + 3 random ``[0-9a-z]`` characters, not in use now."""
    alphabet = string.digits + string.ascii_lowercase
    existing = set(_ovs(["list-br"], check=False).split()) if shutil.which("ovs-vsctl") else set()
    for _ in range(100):
        p = NAME_PREFIX + "".join(random.choice(alphabet) for _ in range(3))
        if not any(b.startswith(p) for b in existing) and not Path(f"/var/run/netns/{p}h1").exists():
            return p
    raise EmulationError("could not find an unused run prefix (run `ani cleanup`)")


def _run(argv: list[str], *, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
    try:
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise EmulationError(f"{argv[0]} is not installed (run `ani doctor`)") from None
    except subprocess.TimeoutExpired:
        raise EmulationError(f"{argv[0]} did not finish within {timeout:.0f} s") from None
    if check and r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise EmulationError(f"{' '.join(argv[:3])} failed: {msg[-1] if msg else 'exit ' + str(r.returncode)}")
    return r.stdout


def _ovs(args: list[str], check: bool = True) -> str:
    return _run(["ovs-vsctl", "--timeout=60", *args], check=check)


def _tx_offload_off(ifname: str) -> None:
    """``ethtool -K IF tx off`` without a process: ioctl SIOCETHTOOL / ETHTOOL_STXCSUM."""
    buf = array.array("I", [0x17, 0])
    addr, _ = buf.buffer_info()
    ifr = struct.pack("16sP", ifname.encode(), addr) + b"\0" * 16
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s, 0x8946, ifr)
        except OSError:
            _run(["ethtool", "-K", ifname, "tx", "off"])


@functools.lru_cache(maxsize=None)
def capabilities() -> dict:
    """What this kernel/machine can emulate (cached): datapath, netem, htb, nft egress."""
    caps = {"kernel_datapath": Path("/sys/module/openvswitch").exists(),
            "netem": False, "htb": False, "nft": bool(shutil.which("nft")),
            "iptables": bool(shutil.which("iptables"))}
    if not caps["kernel_datapath"] and shutil.which("modprobe"):
        loaded = subprocess.run(["modprobe", "-q", "openvswitch"], capture_output=True).returncode == 0
        caps["kernel_datapath"] = loaded and Path("/sys/module/openvswitch").exists()
    a, b = f"{NAME_PREFIX}tqa{os.getpid() % 10000}", f"{NAME_PREFIX}tqb{os.getpid() % 10000}"
    if subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], capture_output=True).returncode == 0:
        try:
            caps["htb"] = subprocess.run(["tc", "qdisc", "add", "dev", a, "root", "handle", "1:", "htb"],
                                         capture_output=True).returncode == 0
            subprocess.run(["tc", "qdisc", "del", "dev", a, "root"], capture_output=True)
            caps["netem"] = subprocess.run(["tc", "qdisc", "add", "dev", a, "root", "netem", "delay", "1ms"],
                                           capture_output=True).returncode == 0
        finally:
            subprocess.run(["ip", "link", "del", a], capture_output=True)
    return caps


class EmulatedNetwork:
    """A running emulation of ``topology`` (a networkx graph in the topology contract).

    Use as a context manager; teardown always runs (success, error, Ctrl-C, SIGTERM)::

        with EmulatedNetwork(load_topology("topozoo/Abilene"), run_dir) as net:
            net.check_healthy()
            net.set_link("Denver", "KansasCity", up=False)

    Parameters
    ----------
    topology : networkx.Graph with ``delay_ms`` and ``capacity_mbps`` edge attributes.
    run_dir : directory for the controller topology file, logs and probe output.
    bw_scale : link rate = ``capacity_mbps * bw_scale`` (see module doc).
    datapath : ``"auto"`` (kernel if available), ``"kernel"`` or ``"user"``.
    prefix : run name prefix (``ani`` + 3 chars); random by default.
    controller : start the ani os-ken controller and wait until routes are installed.
    shape : shape router-router links with HTB.
    router_capacity_mbps : ``{router: Mbit/s}`` forwarding capacities (KG units, scaled by
        ``bw_scale`` like links); routers without one forward at line rate.
    """

    def __init__(self, topology: nx.Graph, run_dir: str | Path, *, bw_scale: float = DEFAULT_BW_SCALE,
                 datapath: str = "auto", prefix: str | None = None, controller: bool = True,
                 shape: bool = True, ready_timeout: float = 60.0,
                 router_capacity_mbps: dict[str, float] | None = None):
        if topology.number_of_nodes() == 0:
            raise EmulationError("the topology has no routers")
        if prefix is not None and not PREFIX_RE.match(prefix):
            raise EmulationError(f"prefix {prefix!r} must be 'ani' followed by 3 characters of [0-9a-z]")
        if datapath not in ("auto", "kernel", "user"):
            raise EmulationError(f"datapath must be auto, kernel or user, not {datapath!r}")
        self.topology = topology
        self.run_dir = Path(run_dir)
        self.bw_scale = float(bw_scale)
        self.datapath_req = datapath
        self.prefix_req = prefix
        self.want_controller = controller
        self.shape = shape
        self.ready_timeout = ready_timeout
        #: names, ports and addresses (the prefix is chosen at start)
        self.plan = NetworkPlan.of(topology, self._rate, router_capacity_mbps, prefix or "")
        self.routers = list(self.plan.routers)
        self.index = self.plan.index
        #: router -> emulated forwarding capacity (Mbit/s, scaled and clamped like link rates)
        self.router_capacity = self.plan.router_capacity
        self.fidelity: dict = {}
        self.controller = None          # ControllerProcess
        self.client = None              # ControllerClient
        self.timings: dict = {}
        self._links = self.plan.links
        self._ports = self.plan.ports          # router -> {neighbour: port}
        self._procs: list[subprocess.Popen] = []
        self._shaped: dict[str, float] = {}
        self._lossy: dict[str, float] = {}
        self._down_links: set[str] = set()
        self._down_routers: set[str] = set()
        self._nft = False
        self._up = False
        self._old_sigterm = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ names (the plan's)
    def _rate(self, capacity_mbps: float) -> float:
        return scaled_rate(capacity_mbps, self.bw_scale)

    @property
    def prefix(self) -> str:
        return self.plan.prefix

    def bridge(self, router: str) -> str:
        return self.plan.bridge(router)

    def netns(self, router: str) -> str:
        return self.plan.netns(router)

    def port_name(self, router: str, port: int) -> str:
        return self.plan.port_name(router, port)

    def host_ip(self, router: str) -> str:
        return self.plan.host_ip(router)

    def host_mac(self, router: str) -> str:
        return self.plan.host_mac(router)

    def link(self, u: str, v: str) -> dict:
        return self.plan.link(u, v)

    def _link_ifaces(self, u: str, v: str) -> tuple[str, str]:
        return self.plan.link_ifaces(u, v)

    def topology_record(self) -> dict:
        """The controller's topology file contents (:meth:`NetworkPlan.topology_record`)."""
        return self.plan.topology_record()

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> "EmulatedNetwork":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "EmulatedNetwork":
        """Build the network (and controller); on any failure or interrupt, tear down and raise."""
        if os.geteuid() != 0:
            raise EmulationError("the emulation needs root (network namespaces, OVS)")
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self._start()
        except BaseException as exc:
            try:
                self.stop()
            finally:
                if isinstance(exc, AniError) or isinstance(exc, KeyboardInterrupt):
                    raise
                raise EmulationError(f"bring-up failed: {type(exc).__name__}: {exc}") from exc
        return self

    def _start(self) -> None:
        t0 = time.perf_counter()
        caps = capabilities()
        kernel = {"auto": caps["kernel_datapath"], "kernel": True, "user": False}[self.datapath_req]
        if kernel and not caps["kernel_datapath"]:
            raise EmulationError("datapath='kernel' asked for, but the kernel has no openvswitch module")
        if self.shape and not caps["htb"]:
            raise EmulationError("the kernel has no HTB qdisc; shaping impossible (use shape=False)")
        self.plan = self.plan.with_prefix(self.prefix_req or new_prefix())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        delay = bool(caps["netem"]) and self.shape
        self.fidelity = {
            "datapath": "kernel" if kernel else "userspace",
            "shaping": "htb" if self.shape else None,
            "bw_scale": self.bw_scale,
            "rate_clamped_links": sorted(l["id"] for l in self._links.values()
                                         if l["rate_mbps"] != round(l["capacity_mbps"] * self.bw_scale, 6)),
            "delay": delay,
            "delay_note": ("netem delay per link" if delay
                           else "no netem in this kernel: links carry no propagation delay"),
            "loss": "netem" if caps["netem"] else ("nftables-numgen" if caps["nft"] else None),
            "tx_offload": "on" if kernel else "off on host interfaces",
            "arp": "static entries on hosts",
            "router_capacity": ("OpenFlow drop meter per switch at cpu capacity x bw_scale"
                                if self.router_capacity and self.want_controller else None),
            "routers": len(self.routers), "links": len(self._links),
            "controller": "os-ken ani_controller (OpenFlow 1.3)" if self.want_controller else None,
        }
        (self.run_dir / "fidelity.json").write_text(json.dumps(self.fidelity, indent=2))
        topo_file = self.run_dir / "topology.json"
        topo_file.write_text(json.dumps(self.topology_record(), indent=1))
        self._up = True  # from here on, stop() has something to remove
        ctl_target = None
        if self.want_controller:
            from harness.twin.emulation.controller import ControllerProcess
            self.controller = ControllerProcess(topo_file, self.run_dir)
            self.controller.start()
            self.client = self.controller.client
            ctl_target = f"tcp:127.0.0.1:{self.controller.ofp_port}"
        t1 = time.perf_counter()
        self._create_links()
        t2 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            hosts = pool.submit(self._configure_hosts)
            self._create_bridges(kernel)
            # After the ports are in OVS: vswitchd clears root qdiscs of ports without a
            # QoS record when it adds them (Mininet's TCReapply works around the same fight).
            if self.shape:
                self._shape_all(delay)
            hosts.result()
        t3 = time.perf_counter()
        if self.want_controller:
            # Point the switches at the controller only once it listens: a refused first
            # connection costs a whole second of OVS reconnect backoff.
            self.controller.wait_listening(self.ready_timeout)
            self._set_controller(ctl_target)
            self.controller.wait_ready(self.ready_timeout)
        t4 = time.perf_counter()
        self.timings = {"links_s": t2 - t1, "bridges_hosts_tc_s": t3 - t2, "controller_ready_s": t4 - t3,
                        "bringup_s": t4 - t0}
        log.info("network %s up: %d routers, %d links in %.2f s", self.prefix, len(self.routers),
                 len(self._links), t4 - t0)

    @property
    def link_group(self) -> int:
        """The interface group of this run's root-namespace veths (``ip link del group`` at teardown)."""
        return 1000 + int(self.prefix[3:], 36)

    def _create_links(self) -> None:
        g = self.link_group
        lines = []
        for r in self.routers:
            h = self.netns(r)
            lines.append(f"netns add {h}")
            # Peer created directly inside the namespace: moving a veth costs ~20 ms each.
            lines.append(f"link add {self.port_name(r, HOST_PORT)} group {g} type veth peer name {h} "
                         f"address {self.host_mac(r)} netns {h}")
        for l in self._links.values():
            a, b = self.port_name(l["u"], l["u_port"]), self.port_name(l["v"], l["v_port"])
            lines.append(f"link add {a} group {g} type veth peer name {b} group {g}")
        lines.append(f"link set group {g} up")
        _run(["ip", "-batch", "-"], input="\n".join(lines) + "\n")
        if self.fidelity["datapath"] != "kernel":
            in_netns_each([self.netns(r) for r in self.routers], lambda ns: _tx_offload_off(ns))

    def _configure_hosts(self) -> None:
        neigh = [(self.host_ip(o), self.host_mac(o)) for o in self.routers]

        def one(r: str) -> None:
            h = self.netns(r)
            lines = [f"link set {h} addrgenmode none", "link set lo up",
                     f"addr add {self.host_ip(r)}/8 dev {h}", f"link set {h} up"]
            lines += [f"neigh replace {ip} lladdr {mac} dev {h} nud permanent"
                      for ip, mac in neigh if ip != self.host_ip(r)]
            _run(["ip", "-n", h, "-batch", "-"], input="\n".join(lines) + "\n")

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(one, self.routers))

    def _set_controller(self, target: str) -> None:
        args: list[str] = []
        for r in self.routers:
            cid = f"@c{self.index[r]}"
            args += ["--", f"--id={cid}", "create", "controller", f"target=\"{target}\"",
                     "max_backoff=1000", "inactivity_probe=0", "--", "set", "bridge", self.bridge(r),
                     f"controller={cid}"]
        _ovs(args)

    def _create_bridges(self, kernel: bool) -> None:
        args: list[str] = []
        for r in self.routers:
            br = self.bridge(r)
            args += ["--", "add-br", br, "--", "set", "bridge", br,
                     f"datapath_type={'system' if kernel else 'netdev'}", "fail_mode=secure",
                     "protocols=OpenFlow13", f"other-config:datapath-id={self.index[r]:016x}",
                     "other-config:disable-in-band=true"]
            ports = [(HOST_PORT, self.port_name(r, HOST_PORT))]
            ports += [(p, self.port_name(r, p)) for p in sorted(self._ports[r].values())]
            for num, name in ports:
                args += ["--", "add-port", br, name, "--", "set", "interface", name, f"ofport_request={num}"]
        _ovs(args)

    def _shape_all(self, delay: bool) -> None:
        lines = []
        replace = True
        for l in self._links.values():
            for r, p in ((l["u"], l["u_port"]), (l["v"], l["v_port"])):
                lines += self._tc_lines(self.port_name(r, p), l["rate_mbps"], l["delay_ms"] if delay else None,
                                        replace=replace)
        _run(["tc", "-batch", "-"], input="\n".join(lines) + "\n")

    @staticmethod
    def _tc_lines(dev: str, rate_mbps: float, delay_ms: float | None = None, loss_pct: float | None = None,
                  replace: bool = False) -> list[str]:
        verb = "replace" if replace else "add"
        kbit = max(8, int(round(rate_mbps * 1000)))
        lines = [f"qdisc {verb} dev {dev} root handle 1: htb default 1",
                 f"class {verb} dev {dev} parent 1: classid 1:1 htb rate {kbit}kbit ceil {kbit}kbit"]
        limit_bytes = max(QUEUE_MIN_BYTES, int(rate_mbps * 1e6 / 8 * QUEUE_MS / 1000))
        if delay_ms or loss_pct:
            netem = f"qdisc {verb} dev {dev} parent 1:1 handle 10: netem limit {max(10, limit_bytes // 1500)}"
            if delay_ms:
                netem += f" delay {delay_ms:.3f}ms"
            if loss_pct:
                netem += f" loss {loss_pct:.3f}%"
            lines.append(netem)
        else:
            lines.append(f"qdisc {verb} dev {dev} parent 1:1 handle 10: bfifo limit {limit_bytes}")
        return lines

    def stop(self) -> None:
        """Tear everything down (idempotent; never raises for things already gone).

        SIGINT/SIGTERM are held back while it runs, so a second Ctrl-C cannot cut the
        teardown short; they are delivered when it is done.
        """
        main = threading.current_thread() is threading.main_thread()
        if main:
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._stop()
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _stop(self) -> None:
        with self._lock:
            if not self._up:
                self._restore_signal()
                return
            t0 = time.perf_counter()
            errors = []
            self.stop_processes()
            if self.controller is not None:
                try:
                    self.controller.stop()
                except Exception as exc:
                    errors.append(str(exc))
            # Processes still inside our namespaces (probes started elsewhere, iperf3...).
            kill_netns_processes([self.netns(r) for r in self.routers])
            # Interfaces first, in one rtnl operation: root-side veths (peers go with them)
            # and the bridges' internal ports, all in this run's interface group.  Deleting
            # them one by one costs ~17 ms each.  Namespaces are released asynchronously.
            lines = [f"link set dev {self.bridge(r)} group {self.link_group}" for r in self.routers]
            lines += [f"link del group {self.link_group}"] + [f"netns del {self.netns(r)}" for r in self.routers]
            _run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n", check=False)
            args = []
            for r in self.routers:
                args += ["--", "--if-exists", "del-br", self.bridge(r)]
            try:
                _ovs(args)
            except EmulationError as exc:
                errors.append(str(exc))
            if self._nft:
                _run(["nft", "delete", "table", "netdev", self.prefix], check=False)
                self._nft = False
            self._up = False
            self.timings["teardown_s"] = time.perf_counter() - t0
            self._restore_signal()
            if errors:
                log.warning("teardown of %s: %s", self.prefix, "; ".join(errors))

    def _restore_signal(self) -> None:
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # ------------------------------------------------------------------ host commands
    def host_argv(self, router: str, argv: list[str]) -> list[str]:
        """An argument list that runs ``argv`` inside ``router``'s host namespace."""
        return ["ip", "netns", "exec", self.netns(router), *argv]

    def host_run(self, router: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command in ``router``'s host and wait for it (no shell)."""
        return subprocess.run(self.host_argv(router, argv), capture_output=True, text=True, timeout=timeout)

    def spawn(self, router: str, argv: list[str], *, stdout=subprocess.DEVNULL,
              stderr=subprocess.STDOUT) -> subprocess.Popen:
        """Start a background process in ``router``'s host; :meth:`stop_processes` ends it."""
        self._require_up()
        p = subprocess.Popen(self.host_argv(router, argv), stdout=stdout, stderr=stderr,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self._procs.append(p)
        return p

    def stop_processes(self) -> None:
        """End every background process started with :meth:`spawn` (SIGINT, then SIGKILL)."""
        procs, self._procs = self._procs, []
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(2)

    def ping(self, src: str, dst: str, count: int = 1, timeout: float = 1.0) -> bool:
        """True if ``src``'s host gets at least one reply from ``dst``'s host."""
        r = self.host_run(src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", str(timeout),
                                self.host_ip(dst)], timeout=timeout * count + 5)
        return r.returncode == 0

    def reachability(self, pairs=None, timeout: float = 1.0, attempts: int = 3) -> dict[tuple[str, str], bool]:
        """``{(src, dst): reachable}`` for ``pairs`` (default: all ordered pairs).

        ICMP echo from raw sockets opened inside every source namespace, all pairs at once
        (paced), up to ``attempts`` rounds for pairs without a reply: all 20k pairs of a
        143-router network take a few seconds, not 20k ping processes.
        """
        self._require_up()
        if pairs is None:
            pairs = [(a, b) for a in self.routers for b in self.routers if a != b]
        pairs = [tuple(p) for p in pairs]
        srcs = sorted({s for s, _ in pairs})
        socks = in_netns_each([self.netns(s) for s in srcs],
                              lambda ns: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
        by_fd = {}
        try:
            for s, sock in zip(srcs, socks):
                sock.setblocking(False)
                by_fd[sock.fileno()] = s
            sock_of = dict(zip(srcs, socks))
            ident = os.getpid() & 0xFFFF
            ip_of = {self.host_ip(r): r for r in self.routers}
            got: set[tuple[str, str]] = set()
            for _ in range(attempts):
                todo = [p for p in pairs if p not in got]
                # Waves of REACH_WAVE echoes: a burst of new flows overflows the userspace
                # datapath's upcall queue (datapath_drop_upcall_error) and looks like loss.
                for w in range(0, len(todo), REACH_WAVE):
                    wave = todo[w:w + REACH_WAVE]
                    for s, d in wave:
                        pkt = _icmp_echo(ident, self.plan.idx(d) & 0xFFFF, self.plan.idx(s))
                        try:
                            sock_of[s].sendto(pkt, (self.host_ip(d), 0))
                        except OSError:
                            pass
                    deadline = time.monotonic() + timeout
                    while time.monotonic() < deadline and any(p not in got for p in wave):
                        self._drain(by_fd, socks, ident, ip_of, got, 0.02)
            return {p: p in got for p in pairs}
        finally:
            for sock in socks:
                sock.close()

    @staticmethod
    def _drain(by_fd, socks, ident, ip_of, got, wait):
        import select
        ready, _, _ = select.select(socks, [], [], wait)
        for sock in ready:
            while True:
                try:
                    data, addr = sock.recvfrom(2048)
                except (BlockingIOError, OSError):
                    break
                ihl = (data[0] & 0x0F) * 4
                if len(data) < ihl + 8 or data[ihl] != 0:
                    continue
                rid = struct.unpack("!H", data[ihl + 4:ihl + 6])[0]
                if rid == ident and addr[0] in ip_of:
                    got.add((by_fd[sock.fileno()], ip_of[addr[0]]))

    def check_healthy(self, timeout: float = 1.0) -> None:
        """Raise EmulationError unless every host reaches every other host."""
        if self.controller is not None:
            self.controller.check_alive()
        bad = [f"{a}->{b}" for (a, b), ok in self.reachability(timeout=timeout).items() if not ok]
        if bad:
            shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
            raise EmulationError(f"{len(bad)} host pairs cannot reach each other: {shown}")

    # ------------------------------------------------------------------ injection
    def _require_up(self) -> None:
        if not self._up:
            raise EmulationError("the network is not running")

    def set_link(self, u: str, v: str, up: bool) -> None:
        """Bring both ends of link u-v down or up (the controller sees OFPPortStatus)."""
        self._require_up()
        a, b = self._link_ifaces(u, v)
        state = "up" if up else "down"
        _run(["ip", "-batch", "-"], input=f"link set {a} {state}\nlink set {b} {state}\n")
        (self._down_links.discard if up else self._down_links.add)(link_id(u, v))

    def set_router(self, router: str, up: bool) -> None:
        """Fail or restore a whole router: all its ports (host port included) down/up."""
        self._require_up()
        state = "up" if up else "down"
        lines = [f"link set {self.port_name(router, HOST_PORT)} {state}"]
        for nb in self._ports[router]:
            for dev in self._link_ifaces(router, nb):
                lines.append(f"link set {dev} {state}")
        _run(["ip", "-batch", "-"], input="\n".join(lines) + "\n")
        (self._down_routers.discard if up else self._down_routers.add)(router)

    def shape_link(self, u: str, v: str, rate_mbps: float) -> None:
        """Re-shape link u-v (both directions) to ``rate_mbps`` (HTB, not scaled)."""
        self._require_up()
        if not (0 < rate_mbps <= MAX_RATE_MBPS):
            raise EmulationError(f"rate {rate_mbps} Mbit/s is outside (0, {MAX_RATE_MBPS:g}]")
        self._apply_tc(u, v, rate_mbps, self._lossy.get(link_id(u, v)))
        self._shaped[link_id(u, v)] = rate_mbps

    def restore_link(self, u: str, v: str) -> None:
        """Undo :meth:`shape_link`, :meth:`add_loss` and :meth:`set_link` on u-v."""
        self._require_up()
        lid = link_id(u, v)
        self._shaped.pop(lid, None)
        if lid in self._lossy:
            self.remove_loss(u, v)
        self._apply_tc(u, v, None, None)
        if lid in self._down_links:
            self.set_link(u, v, up=True)

    def _apply_tc(self, u: str, v: str, rate: float | None, loss: float | None) -> None:
        l = self.link(u, v)
        rate = rate or l["rate_mbps"]
        delay = l["delay_ms"] if self.fidelity.get("delay") else None
        netem_loss = loss if self.fidelity.get("loss") == "netem" else None
        lines = []
        for dev in self._link_ifaces(u, v):
            lines += self._tc_lines(dev, rate, delay, netem_loss, replace=True)
        _run(["tc", "-force", "-batch", "-"], input="\n".join(lines) + "\n", check=False)

    def add_loss(self, u: str, v: str, pct: float) -> None:
        """Drop ``pct`` % of packets on link u-v in both directions.

        netem ``loss`` if the kernel has netem, else an nftables ``numgen random`` rule on
        the netdev *egress* hook of both ports (ingress would be too late: OVS reads the
        port with a packet socket before the ingress hook runs).
        """
        self._require_up()
        if not (0 < pct <= 100):
            raise EmulationError(f"loss {pct} % is outside (0, 100]")
        lid = link_id(u, v)
        mode = self.fidelity.get("loss")
        if mode == "netem":
            self._lossy[lid] = pct
            self._apply_tc(u, v, self._shaped.get(lid), pct)
            return
        if mode != "nftables-numgen":
            raise EmulationError("cannot inject loss: no netem and no nft binary (install nftables)")
        if lid in self._lossy:
            self.remove_loss(u, v)
        if not self._nft:
            _run(["nft", "add", "table", "netdev", self.prefix])
            self._nft = True
        threshold = int(round(pct * 100))
        rules = []
        for dev in self._link_ifaces(u, v):
            chain = f"loss_{dev}"
            rules.append(f"add chain netdev {self.prefix} {chain} "
                         f"{{ type filter hook egress device \"{dev}\" priority 0 ; policy accept ; }}")
            rules.append(f"add rule netdev {self.prefix} {chain} numgen random mod 10000 < {threshold} counter drop")
        _run(["nft", "-f", "-"], input="\n".join(rules) + "\n")
        self._lossy[lid] = pct

    def remove_loss(self, u: str, v: str) -> None:
        """Undo :meth:`add_loss` on u-v (no error if there is none)."""
        self._require_up()
        lid = link_id(u, v)
        if self._lossy.pop(lid, None) is None:
            return
        if self.fidelity.get("loss") == "netem":
            self._apply_tc(u, v, self._shaped.get(lid), None)
            return
        lines = [f"delete chain netdev {self.prefix} loss_{dev}" for dev in self._link_ifaces(u, v)]
        _run(["nft", "-f", "-"], input="\n".join(lines) + "\n", check=False)

    def restore_all(self) -> None:
        """Undo every injection: links and routers up, shaping and loss removed,
        controller misconfigurations and mitigations rolled back, background traffic stopped."""
        self._require_up()
        self.stop_processes()
        for r in list(self._down_routers):
            self.set_router(r, up=True)
        for lid in list(self._down_links):
            l = self._links[lid]
            self.set_link(l["u"], l["v"], up=True)
        for lid in set(self._shaped) | set(self._lossy):
            l = self._links[lid]
            self.restore_link(l["u"], l["v"])
        if self.client is not None:
            self.client.rollback()
            self.client.undo_mitigation("all")
            if self.router_capacity:
                self.client.router_capacity()

    @property
    def injected(self) -> dict:
        """What is currently injected (plain data)."""
        return {"down_links": sorted(self._down_links), "down_routers": sorted(self._down_routers),
                "shaped": dict(self._shaped), "loss": dict(self._lossy), "processes": len(self._procs)}

    # ------------------------------------------------------------------ read-only state
    @property
    def down_routers(self) -> frozenset[str]:
        """Routers taken down (:meth:`set_router`)."""
        return frozenset(self._down_routers)

    def failed_links(self) -> set[str]:
        """Links that are down: their own ends, or a router at either end."""
        return set(self._down_links) | {l for l, d in self._links.items()
                                        if d["u"] in self._down_routers or d["v"] in self._down_routers}

    def link_drops(self) -> dict[str, int]:
        """Per link: packets its two interfaces have dropped so far (what their drop counters
        say): the shaper's queue overflowing (the root qdisc's drops) plus the random loss of a
        degraded link (the nftables rule's counter, or netem's drops inside the qdisc)."""
        self._require_up()
        dev_link = {dev: lid for lid, l in self._links.items() for dev in self._link_ifaces(l["u"], l["v"])}
        out = {lid: 0 for lid in self._links}
        for q in json.loads(_run(["tc", "-s", "-j", "qdisc", "show"]) or "[]"):
            if q.get("root") and q.get("dev") in dev_link:
                out[dev_link[q["dev"]]] += int(q.get("drops", 0))
        if self._nft:
            table = json.loads(_run(["nft", "-j", "list", "table", "netdev", self.prefix], check=False) or "{}")
            for item in table.get("nftables", []):
                rule = item.get("rule")
                if not rule or not rule.get("chain", "").startswith("loss_"):
                    continue
                lid = dev_link.get(rule["chain"][len("loss_"):])
                for expr in rule.get("expr", []):
                    if lid and "counter" in expr:
                        out[lid] += int(expr["counter"].get("packets", 0))
        return out

    def link_queue_counters(self) -> dict:
        """What every link direction's shaper (the root qdisc of the sending port) has sent
        and dropped so far, read now: ``{"t": epoch, "dirs": {(u, v): (bytes_sent,
        packets_sent, packets_dropped)}}`` for the direction ``u -> v`` (one ``tc`` call).
        What ``u -> v`` offered is what was sent plus what was dropped; what ``v`` received
        from ``u`` is what was sent (a veth delivers every frame its peer sends)."""
        self._require_up()
        dev_dir = {}
        for l in self._links.values():
            a, b = self._link_ifaces(l["u"], l["v"])
            dev_dir[a], dev_dir[b] = (l["u"], l["v"]), (l["v"], l["u"])
        t = time.time()
        out = {}
        for q in json.loads(_run(["tc", "-s", "-j", "qdisc", "show"]) or "[]"):
            if q.get("root") and q.get("dev") in dev_dir:
                out[dev_dir[q["dev"]]] = (int(q.get("bytes", 0)), int(q.get("packets", 0)), int(q.get("drops", 0)))
        return {"t": t, "dirs": out}

    def forwarding_entries(self, router: str) -> list[dict]:
        """The switch's routing table (table 2) as it stands, read from the switch itself
        (``ovs-ofctl dump-flows``): per entry its ``cookie`` and the rest of the line (``entry``)."""
        self._require_up()
        text = _run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", self.bridge(router), "table=2"])
        out = []
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("cookie="):
                continue
            head, _, rest = line.partition(",")
            out.append({"cookie": int(head.split("=", 1)[1], 16), "entry": rest.strip()})
        return out

    def nominal_rate_mbps(self, lid: str) -> float:
        """The link's built rate (Mbit/s, emulated units)."""
        return self._links[lid]["rate_mbps"]

    def rate_mbps(self, lid: str) -> float:
        """The link's current rate: shaped by an event or mitigation, else nominal."""
        return self._shaped.get(lid) or self._links[lid]["rate_mbps"]


_CLONE_NEWNET = 0x40000000


def in_netns_each(namespaces: list[str], fn):
    """``[fn(ns) for ns in namespaces]``, each call made *inside* that network namespace.

    Runs in a helper thread that ``setns``-es into each namespace in turn (a thread's
    namespace is its own; sockets keep the namespace they were created in).  No process
    is started, unlike ``ip netns exec``.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    out, err = [], []

    def work():
        try:
            for ns in namespaces:
                fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
                finally:
                    os.close(fd)
                out.append(fn(ns))
        except BaseException as exc:  # handed to the caller
            err.append(exc)

    t = threading.Thread(target=work, name="ani-netns")
    t.start()
    t.join()
    if err:
        raise EmulationError(f"work inside namespace failed: {err[0]}")
    return out


def _icmp_echo(ident: int, seq: int, payload_n: int) -> bytes:
    payload = struct.pack("!Q", payload_n) * 4
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    csum = _checksum(hdr + payload)
    return struct.pack("!BBHHH", 8, 0, csum, ident, seq) + payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def kill_netns_processes(namespaces: list[str]) -> list[int]:
    """SIGKILL every process whose network namespace is one of ``namespaces`` (by inode)."""
    inodes = set()
    for ns in namespaces:
        try:
            inodes.add(os.stat(f"/var/run/netns/{ns}").st_ino)
        except OSError:
            pass
    killed = []
    if not inodes:
        return killed
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.stat(f"/proc/{d}/ns/net").st_ino in inodes:
                os.kill(int(d), signal.SIGKILL)
                killed.append(int(d))
        except OSError:
            pass
    return killed
