"""What an operator's monitoring sees, and what it calls abnormal.

:class:`FailureView` is the one record a twin hands the mitigation planner: plain data that a
network operations centre has without knowing what happened — port status, per-port
counters, per-router forwarding drops, the traffic each router's hosts send into the network
(ingress counters, as flow export / sFlow gives), the forwarding entries that differ from the
controller's intent (a configuration audit) — each twin fills it from its *own* measurements
(the flow twin from its engine outcome, the emulation from its controller, switches and
interfaces). The planner (:mod:`harness.mitigate`) sees nothing else: never the scenario.

Thresholds shared by the KPI record, both twins and the planner live here, below all of
them, so none imports another for these. They are alarm levels (operator policy), not
model constants; each says where its value comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

#: A link is congested at or above this utilisation of its capacity. 80 % is the usual
#: operator alarm level for backbone links (the planning rule of keeping links below 80 %
#: so a failure can be absorbed); it is a convention, not a measurement.
CONGESTION_THRESHOLD = 0.8
#: A measured baseline losing more than this (%) of its traffic or probes is not healthy: the
#: knowledge graph keeps every link at <= 50 % and routers at half their capacity, so a
#: healthy network loses nothing at baseline; 0.5 % is the limit issue 12 sets (a loaded
#: machine's userspace datapath loses 5-7 % there, measured on this 2-core machine).
BASELINE_LOSS_PCT = 0.5
#: A link or router is *dropping* when it loses at least this share of what it carries (%).
#: 1 % is the loss at which TCP throughput collapses to a few per cent of the link rate
#: (Mathis et al., "The macroscopic behavior of the TCP congestion avoidance algorithm",
#: CCR 1997: throughput ~ MSS / (RTT sqrt(p))), the usual interface-drop alarm level.
DROP_ALARM_PCT = 1.0
#: A router's hosts are *surging* when they send at least this many times their baseline rate
#: into the network — the default volumetric-anomaly rule of flow-based DDoS detectors
#: (e.g. FastNetMon's per-host threshold over a learnt baseline); a policy, not a measurement.
SURGE_RATIO = 1.5


@dataclass
class FailureView:
    """What monitoring saw in the failure window (rates in the knowledge graph's Mbit/s).

    ``failed_links``        links whose ports are down (port status)
    ``failed_routers``      routers with every port down or unreachable (port status)
    ``link_utilisation``    per live link, busier direction (port byte counters / capacity)
    ``link_load_mbps``      per live link, busier direction
    ``link_capacity_mbps``  per link, its current rate (port speed; a degraded link is slower)
    ``link_loss_pct``       per link, packets it dropped over packets it carried (interface
                            drop counters), links with none left out
    ``router_drop_pct``     per router, packets its forwarding dropped (overload), routers
                            with none left out
    ``source_mbps``         per router, traffic its hosts sent into the network (ingress
                            port counters) in the failure window ...
    ``source_baseline_mbps`` ... and in the healthy baseline window
    ``forwarding_drift``    per router, forwarding entries that are not the controller's
                            (a configuration audit against intent), as readable strings
    """

    failed_links: set[str] = field(default_factory=set)
    failed_routers: set[str] = field(default_factory=set)
    link_utilisation: dict[str, float] = field(default_factory=dict)
    link_load_mbps: dict[str, float] = field(default_factory=dict)
    link_capacity_mbps: dict[str, float] = field(default_factory=dict)
    link_loss_pct: dict[str, float] = field(default_factory=dict)
    router_drop_pct: dict[str, float] = field(default_factory=dict)
    source_mbps: dict[str, float] = field(default_factory=dict)
    source_baseline_mbps: dict[str, float] = field(default_factory=dict)
    forwarding_drift: dict[str, list[str]] = field(default_factory=dict)

    def congested(self) -> list[str]:
        """Live links at or above :data:`CONGESTION_THRESHOLD`."""
        return sorted(l for l, u in self.link_utilisation.items()
                      if u >= CONGESTION_THRESHOLD and l not in self.failed_links)

    def lossy_links(self) -> list[str]:
        """Live links dropping at least :data:`DROP_ALARM_PCT` of their packets."""
        return sorted(l for l, p in self.link_loss_pct.items()
                      if p >= DROP_ALARM_PCT and l not in self.failed_links)

    def overloaded_routers(self) -> list[str]:
        """Live routers whose forwarding drops at least :data:`DROP_ALARM_PCT`."""
        return sorted(r for r, p in self.router_drop_pct.items()
                      if p >= DROP_ALARM_PCT and r not in self.failed_routers)

    def surging_sources(self) -> list[str]:
        """Routers whose hosts send at least :data:`SURGE_RATIO` × their baseline rate."""
        return sorted(r for r, x in self.source_mbps.items()
                      if r not in self.failed_routers and x > 0
                      and x >= SURGE_RATIO * self.source_baseline_mbps.get(r, 0.0))

    def summary(self) -> dict:
        """The abnormal part, for a result record (small on any network)."""
        return {"failed_links": sorted(self.failed_links), "failed_routers": sorted(self.failed_routers),
                "congested": self.congested(), "lossy_links": self.lossy_links(),
                "overloaded_routers": self.overloaded_routers(),
                "surging_sources": {r: [round(self.source_mbps[r], 6),
                                        round(self.source_baseline_mbps.get(r, 0.0), 6)]
                                    for r in self.surging_sources()},
                "forwarding_drift": {r: list(x) for r, x in sorted(self.forwarding_drift.items()) if x}}

    def record(self) -> dict:
        """Plain JSON data (sets as sorted lists); :meth:`from_record` gives the same view."""
        out: dict = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, set):
                out[f.name] = sorted(v)
            elif f.name == "forwarding_drift":
                out[f.name] = {k: list(x) for k, x in sorted(v.items())}
            else:
                out[f.name] = {k: float(x) for k, x in sorted(v.items())}
        return out

    @classmethod
    def from_record(cls, rec: dict) -> "FailureView":
        """The view back from :meth:`record` (unknown keys are refused by the dataclass)."""
        kw = dict(rec)
        for name in ("failed_links", "failed_routers"):
            if name in kw:
                kw[name] = set(kw[name])
        return cls(**kw)
