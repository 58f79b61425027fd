"""The emulation twin: the flow twin's protocol and KPI record, measured on real packets.

``with EmulationTwin() as twin: twin.run(kg, scenario, "auto")`` builds an
:class:`~harness.twin.emulation.network.EmulatedNetwork` of the knowledge graph's topology
once, and reuses it for every scenario on that knowledge graph.  After each scenario every
injection is undone (``restore_all``) and the baseline must be healthy again (all pairs
reachable); if it is not, the network is rebuilt and ``meta["network"]["rebuilt"]`` says why.

Phases (wall clock; see :class:`EmulationTwin` for the knobs)
    background traffic starts (``background=True``: the KG's traffic matrix, see below) →
    probes start → injection set-up (flood senders spawned, iperf3 servers listening) →
    **baseline** window → events injected at their timestamps mapped into wall-clock
    (``(t - t_first) × time_scale``; default: the events' span compressed into
    ``inject_span_s``; order kept; an event whose ``duration_s`` ends before the last event
    is undone at its scaled end, as the flow twin stops counting it) → ``settle_s`` →
    cascade phase (see *cascade_depth*) → **failure** window → mitigation actions applied (planned from a
    :class:`~harness.monitoring.FailureView` of what monitoring saw in the failure window,
    :mod:`.observe`) → ``settle_s`` → **mitigated** window →
    restore (background stopped).  Event semantics: :mod:`harness.twin.emulation.inject`.

Background traffic (:mod:`harness.twin.emulation.background`)
    every KG flow sent as UDP at ``demand_mbps × scale`` (links are shaped at
    ``capacity × scale``, so link utilisations match the KG's), one paced sender per
    source host, for the scenario's whole measured span. ``scale`` is ``bw_scale``, times the
    factor that brings the matrix within the userspace datapath's packet budget
    (``background_max_pps``, ``background_max_hop_pps``) when it is over it: links are then
    shaped slower by the same factor, so utilisations stay the knowledge graph's (the
    network's ``bw_scale`` is that product).  The probes are part of the traffic they
    measure: each monitored flow's background is its demand less its probes' own bytes
    (:func:`probe_load`).  What was offered, sent and achieved is in ``meta["background"]``.
    ``background=False`` runs probes and injected traffic only.

KPIs (per window, from the monitored pairs = the KG flows, or a sample when there are more
than ``max_pairs``; probes are ``ping`` at ``1/probe_interval_s`` Hz)
    latency_ms_mean / p95: per pair mean of RTT/2 (a one-way *estimate*), then mean and
    95th percentile over the pairs that answered.
    loss_pct: traffic-weighted with background traffic: the bytes of background packets
    offered in the window (by send time) that never arrived, over all offered (every KG
    flow, whatever is monitored; see :mod:`.background`; a flow sending smaller frames
    weighs their bytes, not their number).  Without background: unanswered echo requests /
    sent, pooled over the pairs.  ``meta["probe_loss_pct"]`` has the probe loss per phase.
    reroute_time_ms_max / mean: per *rerouted* pair (:func:`rerouted_pairs`: the controller's
    path changed between the snapshots before and after, or crossed a failed link or router)
    that got replies again before the window ended: the interruption after the window's
    trigger (the first event for ``failure``, the mitigation for ``mitigated``; none in
    ``baseline``), :meth:`~harness.twin.emulation.measure.Probe.disruption_s` — its longest
    reply gap minus one probe interval, and a pair that lost nothing counts with its small
    gap, not left out.  The pairs whose path crosses an element the events take down
    (:func:`watched_pairs`, at most ``max_fast_pairs``) are timed by fast probes at
    ``fast_probe_interval_s`` (5 ms) resolution, and the KPI is over them when there are
    any; else over the pairs the 40 ms probes timed.  Pairs that never resumed, or that a
    later failure cut off (no path after), are unreachable, not rerouted.  Gaps on pairs
    whose path never changed are congestion or policing loss and count in loss, not here.
    max_link_util, congested_links (>= 0.8): from the controller's port byte counters over
    the window, as a share of the link's current shaped rate, busier direction; down links
    left out.
    unreachable_pairs: monitored flows with >= 95 % loss in the window's last second: of
    their own background packets (one-way, as the flow twin counts) when they offered at
    least :data:`MIN_LAST_PACKETS` there, else of their probes (round trip: a broken
    reverse path also counts).
    impacted_nodes: :func:`harness.twin.kpi.impacted_routers` with broken = unreachable or
    loss above the flow's service SLA loss bound beyond sampling error
    (:meth:`~harness.twin.sla.FlowSample.loss_over`: a window holds tens of packets of
    a small flow): the loss of the flow's own background packets when it offered at least
    :data:`MIN_TRAFFIC_PACKETS` in the window (a policer drops full-size packets more than
    small probes; every monitored flow sends at least ``background.FLOOR_PPS``, one whose
    path crosses a link an event degrades ``background.WATCH_PPS``: :func:`degraded_pairs`),
    else its probe loss.  The latency SLA
    is not checked: no propagation delay is emulated without netem.
    SLA verdicts (:mod:`harness.twin.sla`): per monitored flow and phase, its latency (mean
    RTT/2 of its probes), its loss (as judged for impacted_nodes above) and its reachability
    (the unreachable rule); with a monitored *sample* each verdict says how many of the
    service's flows were measured. The latency SLA is judged only with netem delay.
    cascade_depth: rounds of the cascade phase that induced failures (0: none). Between the
    events' settle and the failure window, every ``cascade_window_s`` the shared Motter–Lai
    rule (:mod:`harness.twin.cascade`) is applied to the loads *measured* on the live
    network against those of the baseline window (:mod:`.cascade`: a link's offered rate
    from its shapers' counters, a router's received rate), and what trips is taken down (a
    link: both ends; a router: every port); then the network settles and is measured again,
    for at most ``max_cascade_rounds`` rounds. The phase's length is reserved in the
    schedule. The failure window is the network after the cascade, as on the flow twin.
    ``meta["cascade"]`` has each round's trips and the loads that tripped them. The
    mitigated phase's is ``None`` (no cascade check after the mitigation).

Per-event KPIs: every timeline record (an event injected, or ended because its duration is
over) gets the same KPIs over its own window, from the record to the next one (the last:
to the end of the failure window), ``window_s`` long, with the failed links and link rates
of that window (not of the failure window); utilisation there only where the controller's
port counters were refreshed within the window (they are polled each second).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from typing import NamedTuple
from pathlib import Path

from harness.errors import ConfigError, ControllerError, EmulationError
from harness.kg.model import KnowledgeGraph
from harness.mitigate import outlook, plan
from harness.monitoring import BASELINE_LOSS_PCT
from harness.scenario import types as event_types
from harness.scenario.model import Event, Scenario
from harness.topology import link_id
from harness.twin.cascade import DEFAULT_ALPHA, DEFAULT_LINKS, CascadeRule
from harness.twin.emulation.background import DEFAULT_MAX_HOP_PPS as DEFAULT_BG_MAX_HOP_PPS
from harness.twin.emulation.background import DEFAULT_MAX_PPS as DEFAULT_BG_MAX_PPS
from harness.twin.emulation.background import BINS_PER_S, FRAME_BYTES, Background, plan_background
from harness.twin.emulation.cascade import direction_rates, element_loads, floor_mbps, round_trips
from harness.twin.emulation.inject import SUPPORTED_EFFECTS, Injector, carried_traffic, wait_until
from harness.twin.emulation.measure import latency_stats, port_utilisation, traffic_loss
from harness.twin.emulation.network import DEFAULT_BW_SCALE, EmulatedNetwork
from harness.twin.emulation.observe import failure_view
from harness.twin.emulation.probes import Probes
from harness.twin.emulation import profile
from harness.twin.kpi import CONGESTION_THRESHOLD, KPIRow, ScenarioResult, impacted_routers
from harness.twin.sla import FlowSample, judge

#: Ethernet frame of a probe's echo request or reply: ping's default 56-byte payload + ICMP 8
#: + IPv4 20 + Ethernet 14 bytes.
PROBE_FRAME_BYTES = 98
#: Ping interval of the fast probes that time reroutes (5 ms: the resolution issue 12 asks
#: for; ``ping -i 0.005`` as root, one process per watched pair).
FAST_PROBE_INTERVAL_S = 0.005
#: Fast probes start this long before the first injection (ping's start-up, the first echo)
#: and stop this long before the failure window.
FAST_PROBE_LEAD_S = 0.3
#: At most this many watched pairs get fast probes (16 x 200 Hz = 3,200 echo requests a
#: second, within the userspace datapath's budget beside the background traffic), natively.
MAX_FAST_PAIRS = profile.NATIVE.max_fast_pairs
#: Cascade rounds the emulation runs at most: each costs a settle and a measurement window,
#: reserved in every run's schedule (a bound on run time; the flow twin goes on to a fixed point).
MAX_CASCADE_ROUNDS = 2
#: Length (s) of a cascade round's measurement window: the link shapers' counters are read
#: directly, so one second holds hundreds of frames on a loaded emulated link.
CASCADE_WINDOW_S = 1.0
#: Monitored pairs when the KG has more flows than this: a deterministic sample (natively).
DEFAULT_MAX_PAIRS = profile.NATIVE.max_pairs
#: Background packets a flow must have offered in a window for its loss to be judged on them
#: (fewer: on its probes). Every monitored flow offers ``background.FLOOR_PPS`` (10) at least:
#: 20 in a 2 s window, ±1 with the pacing's phase, so 18; and with 18 one lost packet is not
#: yet over voice's 1 % bound (:func:`~harness.twin.sla.loss_exceeds`: 0.98 %).
MIN_TRAFFIC_PACKETS = 18
#: ... and in the window's last second for its reachability to be (one-way, like a flow).
MIN_LAST_PACKETS = 5
#: Probe loss (share) over a window's last second that counts a pair as unreachable.
UNREACHABLE_LOSS = 0.95
#: Why the latency SLA is not judged without netem: the services' latency bounds are built on
#: the links' propagation delays (:mod:`harness.kg.build`), which only netem emulates.
NO_DELAY_LATENCY_NOTE = ("not judged: no propagation delay is emulated (no netem), so latency is "
                         "forwarding and queueing only")
#: The doctor checks the twin cannot run without (plus every check the doctor marks required).
REQUIRED_CHECKS = ("root", "Open vSwitch running", "mnexec (Mininet)", "python: os_ken")


def monitored_pairs(kg: KnowledgeGraph, max_pairs: int = DEFAULT_MAX_PAIRS) -> tuple[list[str], bool]:
    """The KG flows to probe: all of them, or a deterministic sample of ``max_pairs`` that
    has every router as a source and as a destination (largest demand first)."""
    flows = kg.flows
    if len(flows) <= max_pairs:
        return list(flows), False
    attrs = {f: kg.attrs("flow", f) for f in flows}
    order = sorted(flows, key=lambda f: (-attrs[f]["demand_mbps"], f))
    chosen: list[str] = []
    seen: set[str] = set()
    for role in ("src", "dst"):
        covered = {attrs[f][role] for f in chosen}
        for f in order:
            r = attrs[f][role]
            if r not in covered and f not in seen:
                chosen.append(f)
                seen.add(f)
                covered.add(r)
    cap = max(max_pairs, len(chosen))
    for f in order:
        if len(chosen) >= cap:
            break
        if f not in seen:
            chosen.append(f)
            seen.add(f)
    return sorted(chosen), True


class EmulationTwin:
    """The packet-level twin (root, Open vSwitch, os-ken).

    Parameters
    ----------
    run_dir : where networks keep their files (controller log, probe output); a temporary
        directory (removed on exit) by default.
    bw_scale : emulated link rate = KG capacity × bw_scale (see the network module).
    window_s : length of each measurement window (baseline, failure, mitigated).
    time_scale : wall seconds per scenario second for event times; default compresses
        the events' span into ``inject_span_s``.
    inject_span_s : the default compression target (seconds).
    settle_s : wait after the last event / the mitigation before the next window.
    probe_interval_s : ping interval of the probes (0.04 s = 25 Hz).
    max_pairs : at most this many monitored pairs (a covering sample beyond).
    max_fast_pairs : at most this many pairs timed by the fast probes.
        These three, and ``background_max_pps``, default to the machine's
        :mod:`~harness.twin.emulation.profile` (the native 0.04 s / 132 / 16 / 5,000 pps, or a
        lighter set under software emulation).
    max_senders : at most this many concurrent surge / attack senders per event.
    flood_max_pps : per-sender packet rate above which a UDP flood uses iperf3 (a SYN
        flood is capped there).
    background : replay the KG's traffic matrix as background traffic (default True).
    alpha : the Motter–Lai tolerance of the cascade rule (:mod:`harness.twin.cascade`; the
        flow twin's default, and both must use the same value to be compared).
    max_cascade_rounds : at most this many cascade rounds (0: no cascade check).
    cascade_window_s : measurement window of a cascade round.
    background_max_pps, background_max_hop_pps : background budgets in packets sent per
        second and in switch traversals per second; above either the matrix is scaled down
        uniformly (and ``meta["background"]["budget_scale"]`` says by how much).
    """

    name = "emulation"

    def __init__(self, run_dir: str | Path | None = None, bw_scale: float = DEFAULT_BW_SCALE,
                 window_s: float = 2.0, time_scale: float | None = None, *, inject_span_s: float = 2.0,
                 settle_s: float = 0.5, probe_interval_s: float | None = None, max_pairs: int | None = None,
                 fast_probe_interval_s: float = FAST_PROBE_INTERVAL_S, max_fast_pairs: int | None = None,
                 max_senders: int = 4, flood_max_pps: float = 10_000.0, datapath: str = "auto",
                 health_timeout: float = 1.0, background: bool = True,
                 background_max_pps: float | None = None,
                 background_max_hop_pps: float = DEFAULT_BG_MAX_HOP_PPS, alpha: float = DEFAULT_ALPHA,
                 cascade_links: bool = DEFAULT_LINKS, max_cascade_rounds: int = MAX_CASCADE_ROUNDS, cascade_window_s: float = CASCADE_WINDOW_S):
        self.profile = profile.detect()
        probe_interval_s = self.profile.probe_interval_s if probe_interval_s is None else probe_interval_s
        max_pairs = self.profile.max_pairs if max_pairs is None else max_pairs
        max_fast_pairs = self.profile.max_fast_pairs if max_fast_pairs is None else max_fast_pairs
        if background_max_pps is None:
            background_max_pps = self.profile.background_max_pps or DEFAULT_BG_MAX_PPS
        for key, val, ok in (("bw_scale", bw_scale, bw_scale > 0), ("window_s", window_s, window_s >= 0.5),
                             ("time_scale", time_scale, time_scale is None or time_scale >= 0),
                             ("inject_span_s", inject_span_s, inject_span_s >= 0),
                             ("settle_s", settle_s, settle_s >= 0),
                             ("probe_interval_s", probe_interval_s, 0.002 <= probe_interval_s <= 0.25),
                             ("fast_probe_interval_s", fast_probe_interval_s, 0.002 <= fast_probe_interval_s <= 0.25),
                             ("max_fast_pairs", max_fast_pairs, max_fast_pairs >= 0),
                             ("max_pairs", max_pairs, max_pairs >= 1), ("max_senders", max_senders, max_senders >= 1),
                             ("flood_max_pps", flood_max_pps, flood_max_pps > 0),
                             ("background_max_pps", background_max_pps, background_max_pps > 0),
                             ("background_max_hop_pps", background_max_hop_pps, background_max_hop_pps > 0),
                             ("max_cascade_rounds", max_cascade_rounds, max_cascade_rounds >= 0),
                             ("cascade_window_s", cascade_window_s, cascade_window_s >= 0.2)):
            if not ok:
                raise ConfigError(f"EmulationTwin: {key}={val!r} is out of range")
        event_types.require_effects("emulation", SUPPORTED_EFFECTS)
        self.run_dir_req = Path(run_dir) if run_dir is not None else None
        self.bw_scale = float(bw_scale)
        self.window_s = float(window_s)
        self.time_scale = time_scale
        self.inject_span_s = float(inject_span_s)
        self.settle_s = float(settle_s)
        self.probe_interval_s = float(probe_interval_s)
        self.fast_probe_interval_s = float(fast_probe_interval_s)
        self.max_fast_pairs = int(max_fast_pairs)
        self.max_pairs = int(max_pairs)
        self.max_senders = int(max_senders)
        self.flood_max_pps = float(flood_max_pps)
        self.datapath = datapath
        self.health_timeout = health_timeout
        self.background = bool(background)
        self.background_max_pps = float(background_max_pps)
        self.background_max_hop_pps = float(background_max_hop_pps)
        self.cascade_rule = CascadeRule(alpha=alpha, links=bool(cascade_links), min_mbps=floor_mbps(cascade_window_s),
                                        max_rounds=int(max_cascade_rounds))   # ConfigError on a bad alpha
        self.cascade_window_s = float(cascade_window_s)
        self.net: EmulatedNetwork | None = None
        self._kg: KnowledgeGraph | None = None
        self._tmp: Path | None = None
        self._runs_on_net = 0
        self._builds = 0
        self._available: bool | None = None

    # ------------------------------------------------------------------ protocol
    def unavailable_reasons(self) -> list[str]:
        """Why the twin cannot run here (empty when it can), from ``ani doctor``'s checks."""
        from harness.twin.emulation.doctor import doctor

        return [f"{c.name}: {c.detail} ({c.impact})" for c in doctor()
                if not c.ok and (c.required or c.name in REQUIRED_CHECKS)]

    def is_available(self) -> bool:
        if self._available is None:
            self._available = not self.unavailable_reasons()
        return self._available

    def __enter__(self) -> "EmulationTwin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Tear the network down and remove the temporary run directory (idempotent)."""
        try:
            self._stop_net()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    # ------------------------------------------------------------------ network
    @property
    def run_dir(self) -> Path:
        if self.run_dir_req is not None:
            return self.run_dir_req
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="ani-emulation-"))
        return self._tmp

    def _stop_net(self) -> None:
        net, self.net, self._kg = self.net, None, None
        if net is not None:
            net.stop()

    def network(self, kg: KnowledgeGraph) -> tuple[EmulatedNetwork, dict]:
        """The running network for ``kg`` (built on first use, reused after)."""
        info: dict = {}
        if self.net is not None and self._kg is not kg:
            info["replaced"] = f"knowledge graph changed ({self._kg.name if self._kg else '?'} -> {kg.name})"
            self._stop_net()
        if self.net is not None and self.net.controller is not None:
            try:
                self.net.controller.check_alive()   # ControllerError with the log tail
            except ControllerError as exc:
                self._stop_net()
                raise ControllerError(f"{exc}\n(the network was torn down; the next run rebuilds it)") from None
        if self.net is None:
            self._build(kg)
            info["built"] = True
        info.update(prefix=self.net.prefix, bringup_s=round(self.net.timings.get("bringup_s", 0.0), 3),
                    bringup_parts_s={k: round(v, 3) for k, v in self.net.timings.items()
                                     if k.endswith("_s") and k not in ("bringup_s", "teardown_s")},
                    reused=self._runs_on_net > 0, scenarios_on_network=self._runs_on_net + 1,
                    builds=self._builds)
        return self.net, info

    def _build(self, kg: KnowledgeGraph) -> None:
        self._builds += 1
        d = self.run_dir / f"net{self._builds}"
        cpu = {r: kg.attrs("resource", f"cpu_{r}")["capacity"] for r in kg.routers}
        # When the traffic matrix at bw_scale is over the datapath's packet budget, links are
        # shaped slower by the same factor the background is scaled down by, so every link's
        # utilisation stays the knowledge graph's (not scale x it).
        scale = self.bw_scale
        if self.background:
            scale *= plan_background(kg, self.bw_scale, max_pps=self.background_max_pps,
                                     max_hop_pps=self.background_max_hop_pps).scale
        net = EmulatedNetwork(kg.topology, d, bw_scale=scale, datapath=self.datapath,
                              router_capacity_mbps=cpu)
        net.start()
        self.net, self._kg, self._runs_on_net = net, kg, 0
        # The first port statistics arrive one polling interval after the switches connect;
        # wait for them so the first scenario's baseline has utilisation figures.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not net.client.ports()["ports"]:
            time.sleep(0.1)

    # ------------------------------------------------------------------ run
    def run(self, kg: KnowledgeGraph, scenario: Scenario, mitigation: str | None = None) -> ScenarioResult:
        """Run ``scenario``; a run whose baseline window was not healthy (traffic or probe loss
        above :data:`~harness.monitoring.BASELINE_LOSS_PCT`) is run again once, and if the
        baseline is still unhealthy the result says so in ``meta["baseline_health"]`` (fidelity
        figures and reports leave it out, with the reason)."""
        if not self.is_available():
            raise EmulationError("the emulation twin cannot run here: " + "; ".join(self.unavailable_reasons()))
        if mitigation == "none":
            mitigation = None
        first = self._run_once(kg, scenario, mitigation)
        health = baseline_health(first)
        if health["healthy"]:
            first.meta["baseline_health"] = health
            return first
        second = self._run_once(kg, scenario, mitigation)
        second.meta["baseline_health"] = {**baseline_health(second), "first_attempt": health}
        return second

    def _run_once(self, kg: KnowledgeGraph, scenario: Scenario, mitigation: str | None) -> ScenarioResult:
        t_run0 = time.perf_counter()
        load_before = os.getloadavg()
        net, net_info = self.network(kg)
        flows, sampled = monitored_pairs(kg, self.max_pairs)
        pairs = [(kg.attrs("flow", f)["src"], kg.attrs("flow", f)["dst"]) for f in flows]
        bw = net.bw_scale       # the network's scale: bw_scale x the background's budget scale
        inj = Injector(net, kg, bw_scale=bw, max_senders=self.max_senders,
                       flood_max_pps=self.flood_max_pps, carried=self.background)
        sdir = net.run_dir / "scenarios" / f"{self._runs_on_net:04d}-{scenario.id}"
        probes = Probes(net, pairs, interval_s=self.probe_interval_s, out_dir=sdir / "probes")
        events = sorted(enumerate(scenario.events), key=lambda x: (x[1].timestamp, x[0]))
        t_first = events[0][1].timestamp
        t_last = events[-1][1].timestamp
        scale = (self.time_scale if self.time_scale is not None
                 else (self.inject_span_s / (t_last - t_first) if t_last > t_first else 0.0))
        span = (t_last - t_first) * scale
        timings: dict = {}
        timeline: list[dict] = []
        snaps: dict = {}
        event_snaps: list[dict] = []     # port counters right after each timeline record
        event_state: list[tuple[set, dict]] = []   # failed links and link rates, likewise
        mitigation_info: dict = {}
        restore_info: dict = {}
        ok = False
        bg = None
        fast: Probes | None = None
        bg_info: dict = {"enabled": self.background}
        t_quiet = None
        try:
            t0 = time.time()
            probes.start()
            self._warm_up(probes)
            timings["probes_start_s"] = time.time() - t0
            start_dir = sdir / "start"
            start_dir.mkdir(parents=True, exist_ok=True)
            paths0 = net.client.paths()      # the controller's paths before any event
            if self.background:
                # the probes carry part of their flows' demand: at the rate they achieve here
                probe_mbps = probe_load(probes.rates_hz())
                effects = {i: event_types.effect_of(kg, e, i) for i, e in events}
                # surges and UDP floods: every source's sender adds its share while the event lasts
                bursts = [{"event": i, "src": t.src, "dst": t.dst, "mbps": t.mbps * bw,
                           "start_file": start_dir / f"start-{i}"}
                          for i, eff in effects.items() for t in carried_traffic(eff)]
                bg = Background(net, plan_background(kg, bw, max_pps=self.background_max_pps,
                                                     max_hop_pps=self.background_max_hop_pps,
                                                     probe_mbps=probe_mbps, bursts=bursts, floor_pairs=pairs,
                                                     watch_pairs=degraded_pairs(paths0, pairs, effects.values())),
                                sdir / "background")
                bg_info.update(bg.plan.record(), probe_mbps=round(sum(probe_mbps.values()), 4))
                t_quiet = (t0, time.time())    # the probes so far met no background traffic
                timings["background_start_s"] = bg.start()
            # Senders start up first (Scapy's import must not load a window), then the
            # windows (epoch seconds) are fixed and the senders told when to run.
            t_prep0 = time.time()
            for i, e in events:
                inj.prepare(i, e, start_dir)
            inj.wait_ready()
            # the pairs whose path crosses an element the events take down get fast probes
            # (reroute time at FAST_PROBE_INTERVAL_S resolution), between the baseline and the
            # failure windows only (their load is no part of either window)
            watch = watched_pairs(paths0, pairs, inj.effects.values(), self.max_fast_pairs)
            if watch:
                fast = Probes(net, watch, interval_s=self.fast_probe_interval_s, out_dir=sdir / "fast-probes")
            timings["prepare_s"] = time.time() - t_prep0
            t_b0 = time.time() + 0.1
            if bg is not None and bg.started_at is not None:
                # the controller polls port counters every stats interval: the baseline's first
                # snapshot must be a poll taken after the background started
                interval = net.controller.stats_interval if net.controller is not None else 1.0
                t_b0 = max(t_b0, bg.started_at + interval + 0.1)
            t_b1 = t_b0 + self.window_s
            t_inj = t_b1 + (FAST_PROBE_LEAD_S if fast is not None else 0.0)
            at = {i: t_inj + (e.timestamp - t_first) * scale for i, e in events}
            t_c0 = t_inj + span + self.settle_s     # the cascade phase: rounds of check, trip, settle
            t_f0 = t_c0 + self._cascade_budget()
            t_f1 = t_f0 + self.window_s
            t_m0 = t_f1 + self.settle_s if mitigation else t_f1
            t_end = t_m0 + self.window_s if mitigation else t_f1
            # events whose duration is over before the last event are undone at their scaled end
            undo_at = {i: at[i] + (e.end() - e.timestamp) * scale for i, e in events if e.end() <= t_last}
            for i, e in events:
                inj.schedule(i, at[i], undo_at.get(i, t_end + 0.2))
            wait_until(t_b0)
            snaps["b0"] = self._ports(net)
            queues = {"b0": net.link_queue_counters()}
            wait_until(t_b1)
            snaps["b1"] = self._ports(net)
            queues["b1"] = net.link_queue_counters()
            if fast is not None:
                fast.start()
            for step in schedule(events, at, undo_at):   # the one executor of the schedule
                when, i, e = step.at, step.index, step.event
                wait_until(when)
                t = time.time()
                if step.action == "inject":
                    rec = inj.inject(i, e)
                    timeline.append({"index": i, "t": e.timestamp, "event_type": e.event_type, "target": e.target,
                                     "severity": e.severity, "params": dict(e.params),
                                     "wall_offset_s": round(when - t_inj, 4), "injected_at": t,
                                     "lag_ms": round((t - when) * 1000, 2),
                                     "took_ms": round((time.time() - t) * 1000, 2), **rec})
                else:
                    rec = inj.undo(i, e)
                    timeline.append({"index": i, "t": e.end(), "event_type": e.event_type, "target": e.target,
                                     "wall_offset_s": round(when - t_inj, 4), "injected_at": time.time(),
                                     "ended": True, **rec})
                event_snaps.append(self._ports(net))
                # the failed links and link rates this record's window starts with
                event_state.append((net.failed_links(), {l: net.rate_mbps(l) for l in kg.links}))
            t_first_inj = min((x["injected_at"] for x in timeline if not x.get("ended")), default=t_inj)
            if time.time() > t_f0:   # injection overran its plan: shift the later windows
                shift = time.time() - t_f0
                t_f0, t_f1, t_m0, t_end = (x + shift for x in (t_f0, t_f1, t_m0, t_end))
            if fast is not None:   # before the cascade phase: its load is no part of a cascade round
                wait_until((t_c0 if self.cascade_rule.max_rounds else t_f0) - FAST_PROBE_LEAD_S)
                fast.stop()
            cascade = self._cascade(net, kg, queues, t_c0) if self.cascade_rule.max_rounds else None
            if time.time() > t_f0:   # the cascade overran its reserve: shift the later windows
                shift = time.time() - t_f0
                t_f0, t_f1, t_m0, t_end = (x + shift for x in (t_f0, t_f1, t_m0, t_end))
            wait_until(t_f0)
            snaps["f0"] = self._ports(net)
            counters = {"f0": self._counters(net)} if mitigation else {}
            wait_until(t_f1)
            snaps["f1"] = self._ports(net)
            if mitigation:
                counters["f1"] = self._counters(net)
            paths_f = net.client.paths()
            recomputes = net.client.health()["failovers"]   # the controller's own timing log
            failed_links = net.failed_links()
            rates = {l: net.rate_mbps(l) for l in kg.links}
            util_f = port_utilisation(snaps["f0"], snaps["f1"], rates, failed_links)
            t_mit = None
            if mitigation:
                view = failure_view(kg, net, snaps, {k: c["meters"] for k, c in counters.items()},
                                    {k: c["drops"] for k, c in counters.items()}, bw)
                actions = plan(mitigation, kg, view)
                t_mit = time.time()
                applied = [{**a, "applied_at": time.time(), **inj.apply(a)} for a in actions]
                mitigation_info = {"strategy": mitigation, "actions": actions, "applied": applied,
                                   "view": view.summary(), "notes": outlook(kg, view, actions)}
                if time.time() > t_m0:
                    shift = time.time() - t_m0
                    t_m0, t_end = t_m0 + shift, t_end + shift
                wait_until(t_m0)
                snaps["m0"] = self._ports(net)
                wait_until(t_end)
                snaps["m1"] = self._ports(net)
                paths_m = net.client.paths()
            # the routers' capacity meters as they stand at the end (rollback re-creates them)
            router_meters = net.client.meters() if net.router_capacity else {}
            probes.stop()
            if bg is not None:
                bg_info.update(bg.stop())
                bg_info["bins_per_s"] = BINS_PER_S
            achieved = inj.collect()
            if bg is not None:   # what the background senders sent of each event's traffic
                for i, sent in bg.burst_results.items():
                    achieved.setdefault(i, []).extend(
                        {"generator": "background sender", "src": b["src"], "dst": b["dst"],
                         "target_mbps": b["target_mbps"], "achieved_mbps": b["achieved_mbps"],
                         "achieved_pps": (round(b["sent_packets"] / b["window_s"], 1) if b["window_s"] else None),
                         "sent_packets": b["sent_packets"]} for b in sent)
            rates_m = {l: net.rate_mbps(l) for l in kg.links}
            failed_m = net.failed_links()
            ok = True
        finally:
            try:
                inj.rollback_all()
            except BaseException:   # restore_all below puts everything back regardless
                ok = False
            if fast is not None and fast._procs and not ok:
                try:
                    fast.stop()
                except Exception:   # never mask the run's own error
                    pass
            restore_info = self._restore(net, probes, ok)
        timings.update(baseline_window_s=round(t_b1 - t_b0, 3), inject_s=round(t_f0 - self.settle_s - t_inj, 3),
                       failure_window_s=round(t_f1 - t_f0, 3),
                       mitigated_window_s=round(t_end - t_m0, 3) if mitigation else None,
                       restore_s=restore_info.get("restore_s"), health_check_s=restore_info.get("health_check_s"))
        # ---------------------------------------------------------------- KPIs
        parsed = probes.results      # parsed once, when the probes stopped
        # reroute gaps from the fast probe of a pair where it has one
        timed = {**parsed, **(fast.results if fast is not None else {})}
        @functools.lru_cache(maxsize=None)   # each phase window is asked for twice
        def traffic(a: float, b: float):
            return traffic_loss(bg.sent_bins, bg.recv_bins, a, b, BINS_PER_S) if bg is not None else {}

        windows = {"baseline": (t_b0, t_b1), "failure": (t_f0, t_f1)}
        if mitigation:
            windows["mitigated"] = (t_m0, t_end)
        # Reroute time counts only pairs the controller actually rerouted (a gap on a pair
        # whose path never changed is congestion or policing loss, not a reroute).
        injected = [inj.effects[rec["index"]] for rec in timeline if not rec.get("ended")]
        induced_links = {l for rnd in (cascade or {}).get("rounds", []) for l in rnd["links"]}
        induced_routers = {r for rnd in (cascade or {}).get("rounds", []) for r in rnd["routers"]}
        rerouted_f = rerouted_pairs(before=paths0, after=paths_f,
                                    failed_links=set().union(induced_links, *(x.links_down for x in injected)),
                                    failed_routers=set().union(induced_routers, *(x.routers_down for x in injected)))
        rerouted_m = rerouted_pairs(paths_f, paths_m) if mitigation else set()
        fast_pairs = frozenset(fast.results) if fast is not None else frozenset()
        reroute_samples = reroute_record(timed, pairs, rerouted_f, paths_f, t_first_inj, t_f1, fast_pairs)
        # detection is timed from the latest injection before a recompute: an event's, or a
        # cascade round's taking its tripped elements down
        injections = ([x["injected_at"] for x in timeline]
                      + [rnd["injected_at"] for rnd in (cascade or {}).get("rounds", []) if rnd.get("injected_at")])
        control_plane = control_plane_record(recomputes, injections, t_inj - 0.05, t_f1)
        probe_loss: dict = {}
        samples: dict = {}      # per phase, per monitored flow: its SLA sample
        frame = bg.plan.frame if bg is not None else None     # bytes of a pair's background frames
        rows = {}
        rows["baseline"], probe_loss["baseline"], samples["baseline"] = self._row(
            kg, scenario.id, "baseline", flows, parsed, t_b0, t_b1, t_b0, set(),
            port_utilisation(snaps["b0"], snaps["b1"], {l: net.nominal_rate_mbps(l) for l in kg.links}, set()),
            traffic, rerouted=set(), timed=timed, frame=frame)
        down = set(routers_down(timeline, inj.effects)) | induced_routers
        depth = None if cascade is None else len(cascade["rounds"])
        rows["failure"], probe_loss["failure"], samples["failure"] = self._row(kg, scenario.id, "failure", flows, parsed, t_f0, t_f1,
                                                           t_first_inj, down, util_f, traffic, rerouted_f, timed,
                                                           cascade_depth=depth, fast=fast_pairs, frame=frame)
        if depth is not None:
            rows["baseline"] = rows["baseline"].model_copy(update={"cascade_depth": 0})
        if mitigation:
            util_m = port_utilisation(snaps["m0"], snaps["m1"], rates_m, failed_m)
            rows["mitigated"], probe_loss["mitigated"], samples["mitigated"] = self._row(
                kg, scenario.id, "mitigated", flows, parsed, t_m0, t_end, t_mit, down, util_m, traffic, rerouted_m,
                frame=frame)
        # Per-event KPIs: each timeline record's window runs from it to the next record (the
        # last one: to the end of the failure window), measured like the phases.
        for k, rec in enumerate(timeline):
            a = rec["injected_at"]
            b = max(timeline[k + 1]["injected_at"] if k + 1 < len(timeline) else t_f1, a + 1e-3)
            down_k = set(routers_down(timeline[:k + 1], inj.effects))
            failed_k, rates_k = event_state[k]     # this window's own, not the failure window's
            skip = failed_k | {l for l in kg.links if set(kg.link_ends(l)) & down_k}
            util_k = port_utilisation(event_snaps[k], event_snaps[k + 1] if k + 1 < len(event_snaps) else snaps["f1"],
                                      rates_k, skip)
            row_k, ploss_k, _ = self._row(kg, scenario.id, "failure", flows, parsed, a, b, a, down_k, util_k,
                                       traffic, rerouted_f, timed, fast=fast_pairs, frame=frame)
            rec.update(window_s=round(b - a, 3), **row_k.kpis(), impacted_node_names=row_k.impacted_node_names,
                       congested_link_names=row_k.congested_link_names, probe_loss_pct=ploss_k)
        pair_loss: dict = {ph: {} for ph in windows}
        # per phase: the propagation-and-forwarding floor (mean over pairs of each one's smallest
        # RTT/2); "no_background": the probes before the background traffic started, which
        # queued behind nothing (the phases' floors still meet some queueing, see latency_note)
        floor = {}
        for ph, (a, b) in {**({"no_background": t_quiet} if t_quiet else {}), **windows}.items():
            mins = []
            for f, pair in zip(flows, pairs):
                sent, ok_, rtts = parsed[pair].window(a, b)
                if ph in windows and sent and ok_ < sent:
                    pair_loss[ph][f] = round(100.0 * (sent - ok_) / sent, 2)
                if rtts:
                    mins.append(min(rtts) / 2.0)
            floor[ph] = round(sum(mins) / len(mins), 6) if mins else None
        traffic_pair_loss = {ph: {f"{src}>{dst}": [sent, round(100.0 * (sent - got) / sent, 2)]
                                  for (src, dst), (sent, got) in sorted(traffic(a, b).items()) if got < sent}
                             for ph, (a, b) in windows.items()} if bg is not None else None
        for rec in timeline:
            if not rec.get("ended") and rec["index"] in achieved:
                gens = achieved[rec["index"]]
                rec["achieved"] = gens
                pps = [g.get("achieved_pps") for g in gens if g.get("achieved_pps") is not None]
                mbps = [g.get("achieved_mbps") for g in gens if g.get("achieved_mbps") is not None]
                rec["achieved_total_pps"] = round(sum(pps), 1) if pps else None
                rec["achieved_total_mbps"] = round(sum(mbps), 4) if mbps else None
        load_after = os.getloadavg()
        cpus = os.cpu_count() or 1
        loaded = max(load_before[0], load_after[0]) >= 0.9 * cpus
        fid = net.fidelity
        modelled = [f"packet forwarding by Open vSwitch ({fid.get('datapath')} datapath) under an os-ken "
                    f"controller (delay-shortest routing, failover on port status)",
                    f"link rates shaped with {fid.get('shaping')} at capacity x {bw:g}",
                    f"random loss via {fid.get('loss')}",
                    *([f"router forwarding capacity: {fid['router_capacity']}"] if fid.get("router_capacity") else []),
                    "failures, shaping, surges and floods (every source, by the traffic senders; SYN and spoofed "
                    "floods by Scapy) and misconfigurations injected on the live network",
                    "latency, loss, reroute gaps and reachability from ICMP probes; utilisation from port counters"]
        if self.background:
            scaled = (f", scaled down x {bg_info['budget_scale']:.3g} to the packet budget "
                      f"({self.background_max_pps:g} pps, {self.background_max_hop_pps:g} switch traversals/s)"
                      if bg_info.get("budget_scale", 1.0) < 1.0 else "")
            modelled.append(f"the KG's traffic matrix as background UDP: {bg_info['flows']} flows, "
                            f"{bg_info['target_mbps']:.4g} Mbit/s offered (demand x {bw:g}{scaled}, less the "
                            f"probes' own traffic), "
                            f"{bg_info.get('achieved_mbps', 0.0):.4g} Mbit/s sent, one paced sender per source")
        not_modelled = [*(["cascade_depth (no cascade check: max_cascade_rounds=0)"] if cascade is None else
                          [f"cascades deeper than {self.cascade_rule.max_rounds} rounds",
                           "cascades after the mitigation (the mitigated phase's cascade_depth is not measured)"]),
                        *([] if self.background else
                          ["traffic-weighted loss (loss_pct is probe loss over monitored pairs)",
                           "the KG's baseline demand as background traffic (only probes, surges and attacks "
                           "flow, so a router overload has nothing to drop)"]),
                        "load-aware rerouting (the controller's reroute avoids links by penalty, by delay)",
                        "equal-cost multipath: the controller pins one delay-shortest path per destination "
                        "where the flow twin splits equal-cost paths evenly (differs on ties, e.g. even rings)"]
        if fid.get("delay"):
            modelled.append("propagation delay per link (netem)")
        else:
            not_modelled.append("propagation delay (no netem: latency is forwarding + queueing only, "
                                "and the services' latency SLA is not checked)")
        if self.background and bw < 1.0:
            not_modelled.append(f"queueing delay at the real link rates (links run at capacity x {bw:g}, so a probe "
                                f"waits {1 / bw:g}x longer behind a background frame; latency_floor_ms's "
                                f"no_background entry leaves queueing out)")
        if sampled:
            not_modelled.append(f"all KG flows (a covering sample of {len(flows)} is monitored)")
        meta = {
            "elapsed_s": round(time.perf_counter() - t_run0, 3),
            "network": {**net_info, **{k: v for k, v in restore_info.items() if k in ("rebuilt", "healthy")}},
            "timings_s": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in timings.items()},
            "time_scale": scale, "event_span_wall_s": round(span, 3),
            "monitored_pairs": len(flows), "pairs_sampled": sampled,
            "probe_interval_s": self.probe_interval_s,
            "probe_profile": self.profile.name, "virtualisation": profile.virtualisation(),
            "probe_rate_hz_min": round(min((_rate(p) for p in parsed.values()), default=0.0), 2),
            "latency_note": latency_note(net, kg, bw, bool(self.background)),
            # per phase: mean over the monitored pairs of each one's smallest RTT/2
            "latency_floor_ms": floor,
            "monitored_flows": list(flows),
            "loss_note": ("loss_pct is traffic-weighted: background packets offered in the window that never "
                          "arrived (counted by send-time bin at sender and receiver); probe_loss_pct is the "
                          "round-trip ICMP probe loss" if bg is not None else
                          "round-trip probe loss pooled over monitored pairs, not traffic-weighted (no background "
                          "traffic)"),
            "probe_loss_pct": probe_loss,
            "unreachable_rule": (f">= {UNREACHABLE_LOSS:.0%} loss in the window's last second, of the flow's "
                                 f"background packets (one-way) when it sent >= {MIN_LAST_PACKETS} there, else of "
                                 f"its probes (round trip)"),
            "rerouted_pairs": {"failure": len(rerouted_f), "mitigated": len(rerouted_m)},
            # per rerouted monitored pair in the failure window: its gap (ms), the switches on
            # its new path, whether a fast probe timed it (for calibrating the flow twin)
            "reroute_samples": reroute_samples,
            # the controller's recomputes during the injection: port status received after the
            # injection (detect_ms) and the recompute + flow-mods sent (compute_ms)
            "control_plane": control_plane,
            "reroute_note": "longest reply gap minus one probe interval, over pairs the controller rerouted that recovered "
                            "within the window and still have a path (a pair that lost nothing counts with its longest "
                            "reply gap minus one interval); over the pairs the fast probes timed when there are any "
                            "(those whose path crossed a failed element, at most max_fast_pairs spread over them), "
                            "else the probes at probe_interval_s",
            "reroute_resolution_ms": round(1000 * (self.fast_probe_interval_s if fast is not None
                                                   else self.probe_interval_s), 3),
            "fast_probe_pairs": [f"{s_}>{d_}" for s_, d_ in (fast.pairs if fast is not None else [])],
            "senders": inj.notes,
            "router_meters": router_meters,   # per router: packets its capacity meter passed and dropped
            "background": bg_info,
            "pair_loss_pct": pair_loss,   # per phase: monitored pairs (flow names) that lost probes
            # per phase: background pairs "src>dst" that lost packets: [offered packets, loss %]
            "traffic_pair_loss": traffic_pair_loss,
            "load_avg": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after],
                         "cpus": cpus, "loaded": loaded,
                         "note": "heavy load inflates RTT" if loaded else "not loaded"},
            "fidelity": fid,
            # the cascade phase: the rule, each round's trips and the loads that tripped them
            "cascade": cascade,
            "induced_links": [list(r["links"]) for r in (cascade or {}).get("rounds", [])],
            "induced_routers": [list(r["routers"]) for r in (cascade or {}).get("rounds", [])],
        }
        verdicts = judge(kg, samples, coverage="the emulation's monitored sample of pairs" if sampled else "",
                         not_measured={} if fid.get("delay") else {"latency_ms": NO_DELAY_LATENCY_NOTE})
        return ScenarioResult(scenario_id=scenario.id, twin=self.name, rows=rows, timeline=timeline,
                              mitigation=mitigation_info, modelled=modelled, not_modelled=not_modelled, meta=meta,
                              sla=verdicts)

    # ------------------------------------------------------------------ cascades
    def _cascade_budget(self) -> float:
        """Seconds the schedule reserves for the cascade phase: a first check, then per round
        the induced failures' settle and the next check (plus 0.1 s of slack each)."""
        rounds = self.cascade_rule.max_rounds
        if not rounds:
            return 0.0
        return self.cascade_window_s + 0.1 + rounds * (self.settle_s + self.cascade_window_s + 0.1)

    def _cascade(self, net: EmulatedNetwork, kg: KnowledgeGraph, queues: dict, t_c0: float) -> dict:
        """The cascade phase (after the events settled, before the failure window): measure
        every link's and router's load over ``cascade_window_s``, apply the shared rule
        against the baseline window's loads (``queues["b0"]``..``["b1"]``), take what trips
        down on the live network (a link: both ends; a router: every port), settle, and
        measure again, until a round trips nothing or ``max_cascade_rounds`` rounds tripped
        something. Returns the rule's parameters and every round (plain data)."""
        rule = self.cascade_rule
        baseline = element_loads(direction_rates(queues["b0"], queues["b1"]))
        rounds: list[dict] = []
        checks = 0
        wait_until(t_c0)
        q0 = net.link_queue_counters()
        while True:
            wait_until(q0["t"] + self.cascade_window_s)
            q1 = net.link_queue_counters()
            checks += 1
            now = element_loads(direction_rates(q0, q1))
            meters = net.client.meters() if net.router_capacity else {}
            capacity = ({l: net.rate_mbps(l) for l in kg.links},
                        {r: float(m["capacity_mbps"]) for r, m in meters.items() if m.get("capacity_mbps")})
            trips = round_trips(rule, baseline, now, capacity, net.failed_links(), set(net.down_routers))
            if not (trips["links"] or trips["routers"]) or len(rounds) >= rule.max_rounds:
                break
            t = time.time()
            for l in trips["links"]:
                u, v = kg.link_ends(l)
                net.set_link(u, v, up=False)
            for r in trips["routers"]:
                net.set_router(r, up=False)
            rounds.append({"round": len(rounds) + 1, "links": trips["links"], "routers": trips["routers"],
                           "injected_at": t,
                           # what tripped them: load, baseline load and capacity (Mbit/s, emulated)
                           "loads": {**{l: [round(now[0][l], 6), round(baseline[0].get(l, 0.0), 6),
                                            round(capacity[0][l], 6)] for l in trips["links"]},
                                     **{r: [round(now[1][r], 6), round(baseline[1].get(r, 0.0), 6),
                                            capacity[1].get(r)] for r in trips["routers"]}}})
            wait_until(t + self.settle_s)
            q0 = net.link_queue_counters()
        return {**rule.record(), "window_s": self.cascade_window_s, "checks": checks, "rounds": rounds,
                "stopped": "no element over its tolerance" if not (trips["links"] or trips["routers"])
                           else f"max_cascade_rounds={rule.max_rounds} reached ({trips} still over)"}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _warm_up(probes: Probes, timeout: float = 3.0) -> None:
        """Wait until every probe has printed its first result, then a little longer: the
        first echo of each pair pays process start-up and datapath flow set-up."""
        deadline = time.monotonic() + timeout
        files = [probes.out_dir / f"{s}__{d}.txt" for s, d in probes.pairs]
        while time.monotonic() < deadline:
            if all(f.exists() and f.read_text(errors="replace").count("\n") >= 2 for f in files):
                break
            time.sleep(0.05)
        time.sleep(0.3)

    @staticmethod
    def _counters(net: EmulatedNetwork) -> dict:
        """The meter and interface drop counters as they stand (for the planner's view)."""
        return {"meters": net.client.meters() if net.router_capacity else {}, "drops": net.link_drops()}

    @staticmethod
    def _ports(net: EmulatedNetwork) -> dict:
        return {(p["router"], p["port"]): {"t": p["t"], "tx_bytes": p["tx_bytes"], "rx_bytes": p["rx_bytes"],
                                           "rx_packets": p["rx_packets"], "link": p.get("link")}
                for p in net.client.ports()["ports"]}

    def _restore(self, net: EmulatedNetwork, probes: Probes, ok: bool) -> dict:
        """Undo everything; check the baseline is healthy; rebuild the network if it is not."""
        t0 = time.perf_counter()
        info: dict = {}
        if probes._procs:
            try:
                probes.stop()
            except Exception:  # never mask the run's own error
                pass
        try:
            net.restore_all()
        except BaseException as exc:
            # The controller died or a command failed: this network cannot be trusted.
            self._stop_net()
            if not ok:
                return {"restore_s": time.perf_counter() - t0, "rebuilt": f"torn down after restore failed: {exc}"}
            raise
        info["restore_s"] = round(time.perf_counter() - t0, 3)
        self._runs_on_net += 1
        if not ok:   # the run failed: keep the network only if its baseline is healthy
            try:
                net.check_healthy(timeout=self.health_timeout)
            except Exception:
                self._stop_net()
            return info
        t1 = time.perf_counter()
        reason = None
        for attempt in range(2):
            try:
                time.sleep(0.1 if attempt == 0 else 0.5)
                net.check_healthy(timeout=self.health_timeout)
                reason = None
                break
            except EmulationError as exc:
                reason = str(exc)
        info["health_check_s"] = round(time.perf_counter() - t1, 3)
        info["healthy"] = reason is None
        if reason is not None:
            kg = self._kg
            self._stop_net()
            self._build(kg)
            self.net.check_healthy(timeout=self.health_timeout)
            info["rebuilt"] = f"baseline unhealthy after restore ({reason}); network rebuilt as {self.net.prefix}"
        return info

    def _row(self, kg, sid, phase, flows, parsed, a, b, trigger, failed_routers, util,
             traffic=None, rerouted: set | None = None, timed: dict | None = None,
             cascade_depth: int | None = None, fast: frozenset = frozenset(), frame=None
             ) -> tuple[KPIRow, float | None, dict[str, FlowSample]]:
        """The KPI row of window ``[a, b)``, the window's probe loss (%), and each monitored
        flow's :class:`~harness.twin.sla.FlowSample` (its mean RTT/2, its loss as judged for
        ``impacted_nodes``, its reachability).

        ``traffic(a, b)`` gives ``(src, dst) -> (offered, received)`` background packets
        sent in ``[a, b)``; with packets, loss is traffic-weighted (each pair's packets weigh
        ``frame(src, dst)`` bytes) and a flow's loss and reachability are judged on its own
        packets (see the module doc). Reroute time is over the rerouted pairs in ``fast``
        (timed by the fast probes) when there are any: a 40 ms probe times an interruption
        20 ms short on average (the first reply after it comes 0-40 ms after it ends, less one
        interval)."""
        win = traffic(a, b) if traffic else {}
        last = max(a, b - 1.0)
        win_last = traffic(last, b) if traffic else {}
        sent = lost = 0
        lat_pairs = []
        broken: dict[str, bool] = {}
        samples: dict[str, FlowSample] = {}
        unreachable = 0
        reroute = []
        for f in flows:
            fa = kg.attrs("flow", f)
            p = parsed[(fa["src"], fa["dst"])]
            s, ok_, rtts = p.window(a, b)
            sent += s
            lost += s - ok_
            lat_f = sum(rtts) / len(rtts) / 2.0 if rtts else None
            if lat_f is not None:
                lat_pairs.append(lat_f)
            s_last, ok_last, _ = p.window(last, b)
            off_last, got_last = win_last.get((fa["src"], fa["dst"]), (0, 0))
            if off_last >= MIN_LAST_PACKETS:    # one-way, on the flow's own packets
                unreach = (off_last - got_last) / off_last >= UNREACHABLE_LOSS
            else:                               # round trip, on its probes
                unreach = s_last > 0 and (s_last - ok_last) / s_last >= UNREACHABLE_LOSS
            unreachable += int(unreach)
            sla = kg.attrs("service", fa["service"])["sla_loss_pct"]
            offered, got = win.get((fa["src"], fa["dst"]), (0, 0))
            # the flow's own packets, else its probes
            lost_n, n = (offered - got, offered) if offered >= MIN_TRAFFIC_PACKETS else (s - ok_, s)
            samples[f] = FlowSample(None if unreach else lat_f, 100.0 * lost_n / n if n else None, not unreach,
                                    n or None)
            broken[f] = bool(unreach or samples[f].loss_over(sla))
            # a rerouted flow still reachable at the window's end (as the flow twin counts:
            # one cut off by a later failure is unreachable, not rerouted)
            if trigger is not None and not unreach and (rerouted is None or (fa["src"], fa["dst"]) in rerouted):
                g = (timed or parsed)[(fa["src"], fa["dst"])].disruption_s(trigger, b)
                if g is not None:   # a rerouted pair that lost nothing counts with its small gap
                    reroute.append(((fa["src"], fa["dst"]) in fast, g * 1000.0))
        impacted = impacted_routers(kg, broken, failed_routers)
        reroute = [g for is_fast, g in reroute if is_fast] or [g for _, g in reroute]
        mean, p95 = latency_stats(lat_pairs)
        probe_loss = round(100.0 * lost / sent, 6) if sent else None
        # traffic-weighted: each pair's packets weigh their frame's bytes (flows under the packet
        # floor, and those watched across a degraded link, send smaller frames, more of them)
        weight = frame or (lambda src, dst: 1)
        offered = sum(o * weight(*k) for k, (o, _) in win.items())
        got = sum(r * weight(*k) for k, (_, r) in win.items())
        loss = round(100.0 * (offered - got) / offered, 6) if offered else probe_loss
        live = {l: u["util"] for l, u in util.items()}
        congested = sorted(l for l, u in live.items() if u >= CONGESTION_THRESHOLD)
        return KPIRow(
            scenario_id=sid, twin=self.name, phase=phase,
            latency_ms_mean=mean, latency_ms_p95=p95,
            loss_pct=loss,
            reroute_time_ms_max=round(max(reroute), 3) if reroute else 0.0,
            reroute_time_ms_mean=round(sum(reroute) / len(reroute), 3) if reroute else 0.0,
            max_link_util=round(max(live.values()), 6) if live else None,
            congested_links=len(congested), congested_link_names=congested,
            impacted_nodes=len(impacted), impacted_node_names=sorted(impacted),
            unreachable_pairs=unreachable, cascade_depth=cascade_depth), probe_loss, samples


class Step(NamedTuple):
    """One entry of a scenario's schedule: at epoch ``at``, ``action`` event ``index``."""

    at: float
    order: int          # the event's position in time order (ties keep it)
    rank: int           # 0 = inject, 1 = undo: at equal times an undo follows its own injection
    index: int
    event: Event

    @property
    def action(self) -> str:
        return "inject" if self.rank == 0 else "undo"


def schedule(events: list[tuple[int, Event]], at: dict[int, float], undo_at: dict[int, float]) -> list[Step]:
    """The scenario's schedule as plain data, in execution order: every event injected at
    ``at[i]``, and undone at ``undo_at[i]`` when its duration ends before the failure window;
    an undo goes after its own injection and before any injection due at the same time."""
    return sorted([Step(at[i], k, 0, i, e) for k, (i, e) in enumerate(events)]
                  + [Step(undo_at[i], k, 1, i, e) for k, (i, e) in enumerate(events) if i in undo_at])


def rerouted_pairs(before: dict, after: dict, failed_links: set[str] = frozenset(),
                   failed_routers: set[str] = frozenset()) -> set[tuple[str, str]]:
    """Router pairs ``(s, d)`` whose probes were rerouted: the controller's path ``s>d`` or
    ``d>s`` differs between the ``before`` and ``after`` snapshots of ``GET /paths``, or
    crossed one of ``failed_links``/``failed_routers`` (what the injected events took down,
    also if it came back before ``after``)."""
    out: set[tuple[str, str]] = set()
    for key in set(before) | set(after):
        s, d = key.split(">", 1)
        path = before.get(key)
        hit = path != after.get(key) or (path is not None and (
            bool(failed_routers & set(path))
            or bool(failed_links & path_links(path))))
        if hit:
            out |= {(s, d), (d, s)}
    return out


def baseline_health(result: ScenarioResult) -> dict:
    """Was the run's baseline window healthy: traffic loss and probe loss at most
    :data:`~harness.monitoring.BASELINE_LOSS_PCT` (plain data, with the reason when not)."""
    loss = result.row("baseline").loss_pct
    probe = (result.meta.get("probe_loss_pct") or {}).get("baseline")
    bad = [f"{name} {x:.2f} %" for name, x in (("traffic loss", loss), ("probe loss", probe))
           if x is not None and x > BASELINE_LOSS_PCT]
    out = {"healthy": not bad, "loss_pct": loss, "probe_loss_pct": probe, "limit_pct": BASELINE_LOSS_PCT}
    if bad:
        load = result.meta.get("load_avg", {})
        out["reason"] = (f"baseline {' and '.join(bad)} above {BASELINE_LOSS_PCT} %"
                         + (f" (load average {load.get('after', ['?'])[0]} on {load.get('cpus', '?')} CPUs)"
                            if load else ""))
    return out


def probe_load(rates_hz: dict) -> dict[tuple[str, str], float]:
    """Mbit/s on the wire per ordered router pair that probes send at ``rates_hz`` (pair ->
    echo requests a second, as achieved): each probe's requests go ``s -> d`` and its
    replies ``d -> s``, :data:`PROBE_FRAME_BYTES` each. The background sends each flow's
    demand less this, so the probes are part of the knowledge graph's traffic, not extra
    load on it."""
    out: dict[tuple[str, str], float] = {}
    for (s, d), hz in rates_hz.items():
        for key in ((s, d), (d, s)):
            out[key] = out.get(key, 0.0) + PROBE_FRAME_BYTES * 8 * hz / 1e6
    return out


def watched_pairs(paths: dict, pairs, effects, cap: int = MAX_FAST_PAIRS) -> list[tuple[str, str]]:
    """The monitored ``pairs`` whose controller path (``GET /paths``, either direction)
    crosses a link or router one of ``effects`` takes down: the pairs a reroute will move,
    at most ``cap`` of them (spread evenly over them in sorted order). What the measuring
    instrument watches; the KPIs still come from what it measures."""
    links = set().union(*(x.links_down for x in effects)) if effects else set()
    routers = set().union(*(x.routers_down for x in effects)) if effects else set()
    if not (links or routers) or cap <= 0:
        return []
    hit = rerouted_pairs(paths, paths, links, routers)
    out = sorted(p for p in set(map(tuple, pairs)) if p in hit and not set(p) & routers)
    return out if len(out) <= cap else [out[k * len(out) // cap] for k in range(cap)]


def path_links(path: list[str]) -> set[str]:
    """The link ids along a router path (``[s, ..., d]``)."""
    return {link_id(u, v) for u, v in zip(path, path[1:])}


def degraded_pairs(paths: dict, pairs, effects) -> list[tuple[str, str]]:
    """The monitored ``pairs`` whose controller path ``s>d`` (``GET /paths``) crosses a link
    one of ``effects`` degrades (random loss or lower capacity): their background flows send
    more packets (``background.WATCH_PPS``) so that the loss shows beyond sampling error."""
    links = {l for x in effects for l in (*x.link_loss_pct, *x.link_capacity)}
    if not links:
        return []
    return [(s, d) for s, d in sorted(set(map(tuple, pairs))) if links & path_links(paths.get(f"{s}>{d}") or [])]


def reroute_record(timed: dict, pairs, rerouted: set, paths_after: dict, trigger: float, until: float,
                   fast: set) -> dict[str, dict]:
    """Per rerouted monitored pair that recovered by ``until`` and still has a path in
    ``paths_after`` (the controller's ``GET /paths``; a pair a later failure cut off is
    unreachable, not rerouted): ``{"gap_ms", "switches", "fast"}`` — its interruption after
    ``trigger``, the routers on its path, whether a fast probe timed it."""
    out = {}
    for s, d in sorted(set(map(tuple, pairs)) & rerouted):
        path = paths_after.get(f"{s}>{d}")
        if not path:
            continue
        g = timed[(s, d)].disruption_s(trigger, until)
        if g is not None:
            out[f"{s}>{d}"] = {"gap_ms": round(g * 1000.0, 3), "switches": len(path),
                               "fast": (s, d) in fast}
    return out


def control_plane_record(recomputes: list[dict], injected_at: list[float], a: float, b: float) -> list[dict]:
    """The controller's route recomputes with ``t_event`` in ``[a, b)`` (its failover log),
    each with ``detect_ms``: from the latest injection before it to the port status."""
    out = []
    for rec in recomputes:
        t = rec.get("t_event")
        before = [x for x in injected_at if x <= t] if t is not None else []
        if t is None or not a <= t < b or not before:
            continue
        out.append({"reason": rec["reason"], "detect_ms": round((t - max(before)) * 1000.0, 3),
                    "compute_ms": rec["compute_ms"], "flows_changed": rec.get("flows_changed")})
    return out


def latency_note(net, kg: KnowledgeGraph, bw: float, background: bool) -> str:
    """What ``latency_ms_mean`` holds on this network, and what to compare with the flow twin.

    Links are shaped at ``capacity x bw_scale``, so a background frame takes ``1000 x bw_scale``
    times longer to serialise than on the real link and a probe queues behind it: with
    ``bw_scale`` 0.001 Abilene's 10 Gbit/s links run at 10 Mbit/s, where a 1514-byte frame takes
    1.2 ms. Measured in the TCG VM (docs/vm.md, 2026-12-05), Abilene baseline, 20 monitored
    pairs: mean RTT/2 13.25 ms, mean of the per-pair smallest RTT/2 10.73 ms, the flow twin on
    the same pairs 10.01 ms (its M/M/1 queueing at the real 10 Gbit/s is ~0)."""
    note = "one-way latency estimated as RTT/2 of ICMP probes"
    rates = [net.nominal_rate_mbps(l) for l in kg.links]
    if background and bw < 1.0 and rates:
        slow = min(rates)
        note += (f"; links are shaped at capacity x {bw:g} (the slowest at {slow:.4g} Mbit/s, where a "
                 f"{FRAME_BYTES}-byte frame takes {FRAME_BYTES * 8 / slow / 1000:.3g} ms), so "
                 f"the mean includes queueing behind background frames that the real links' rates would "
                 f"not cause; latency_floor_ms (each pair's smallest RTT/2) estimates propagation + forwarding, "
                 f"its no_background entry (the probes before the background started) without that queueing")
    return note


def routers_down(timeline: list[dict], effects: dict) -> list[str]:
    """Routers the timeline's events have taken down and not yet brought back (``effects``:
    event index -> its :class:`~harness.scenario.events.base.Effect`)."""
    down: set[str] = set()
    for rec in timeline:
        routers = effects[rec["index"]].routers_down
        down = down - routers if rec.get("ended") else down | routers
    return sorted(down)


def _rate(p) -> float:
    if len(p.sends) < 2:
        return 0.0
    span = p.sends[-1][0] - p.sends[0][0]
    return (len(p.sends) - 1) / span if span > 0 else 0.0
