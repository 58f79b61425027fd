"""The flow engine's records: demands in, the network state applied, configuration, outcome out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import scipy.sparse as sp

from harness.errors import ConfigError
from harness.twin.cascade import DEFAULT_ALPHA, DEFAULT_LINKS, DEFAULT_MAX_ROUNDS


@dataclass(frozen=True)
class Demand:
    """A traffic demand of ``mbps`` from router ``src`` to router ``dst``."""

    src: str
    dst: str
    mbps: float
    id: str


@dataclass(frozen=True)
class NetState:
    """What events and mitigations did to the network (every field optional).

    Link ids are canonical ``A-B`` ids (:func:`harness.topology.link_id`).
    """

    failed_links: frozenset[str] = frozenset()
    failed_routers: frozenset[str] = frozenset()
    link_capacity_factor: Mapping[str, float] = field(default_factory=dict)
    link_loss: Mapping[str, float] = field(default_factory=dict)
    router_capacity_factor: Mapping[str, float] = field(default_factory=dict)
    extra_demands: tuple[Demand, ...] = ()
    blackhole: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    wrong_next_hop: Mapping[str, tuple[frozenset[str] | None, str]] = field(default_factory=dict)
    rate_limit: Mapping[str, float] = field(default_factory=dict)
    extra_capacity: Mapping[str, float] = field(default_factory=dict)
    avoid_links: frozenset[str] = frozenset()
    load_aware: bool = False


@dataclass(frozen=True)
class EngineConfig:
    """Engine options (unknown keyword arguments are refused by the dataclass).

    ``weight``               ``"delay"`` (link ``delay_ms``) or ``"hops"`` (1 per link)
    ``ecmp``                 split equally over equal-cost next hops (else lowest router index)
    ``ecmp_tolerance``       two path costs within this (weight units) are equal (1e-6)
    ``cascade``              run Motter–Lai overload cascades (True)
    ``alpha``                Motter–Lai tolerance parameter
                             (:data:`harness.twin.cascade.DEFAULT_ALPHA`, sourced there)
    ``cascade_links``        links trip from load too, not only routers (False)
    ``max_cascade_rounds``   stop a cascade after this many rounds
                             (:data:`harness.twin.cascade.DEFAULT_MAX_ROUNDS`)
    ``packet_bytes``         mean packet size of the M/M/1 queue (1000 B)
    ``queue_cap_ms``         queueing delay cap, also the delay of a saturated link (50 ms)
    ``router_capacity``      forwarding capacity: one number, ``{router: mbps}`` (others get
                             the default) or ``None`` = sum of incident link capacities
    ``load_aware_threshold`` utilisation above which load-aware routing penalises a link (0.8)
    ``load_aware_penalty``   weight multiplier is ``1 + penalty * utilisation`` (4.0)
    """

    weight: str = "delay"  # "delay" | "hops"
    ecmp: bool = True
    ecmp_tolerance: float = 1e-6  # in weight units
    cascade: bool = True
    alpha: float = DEFAULT_ALPHA
    cascade_links: bool = DEFAULT_LINKS
    max_cascade_rounds: int = DEFAULT_MAX_ROUNDS
    packet_bytes: float = 1000.0
    queue_cap_ms: float = 50.0
    router_capacity: float | Mapping[str, float] | None = None
    load_aware_threshold: float = 0.8
    load_aware_penalty: float = 4.0

    def __post_init__(self):
        if self.weight not in ("delay", "hops"):
            raise ConfigError(f"EngineConfig.weight must be 'delay' or 'hops', not {self.weight!r}")
        if not self.alpha >= 0:
            raise ConfigError(f"EngineConfig.alpha must be >= 0, not {self.alpha!r}")
        if self.packet_bytes <= 0 or self.queue_cap_ms <= 0 or self.ecmp_tolerance < 0:
            raise ConfigError("EngineConfig.packet_bytes and queue_cap_ms must be > 0, ecmp_tolerance >= 0")


@dataclass(frozen=True, eq=False)
class Outcome:
    """Result of one evaluation, as columnar arrays aligned with the id tuples.

    Demands: ``demand_ids`` (base demands, then ``extra_demands``) with
    ``offered_mbps``, ``admitted_mbps`` (after rate limits), ``routed_fraction`` (share of
    the admitted traffic that routing brings to the destination, ignoring element
    loss), ``reachable`` (``routed_fraction > 0``), ``delivered_fraction`` and
    ``loss_fraction`` (of offered), ``latency_ms`` and ``path_changed`` (route differs
    from the baseline; always ``False`` for extra demands).
    Links: ``link_ids`` with ``link_load_fwd``/``link_load_rev`` (direction ``A->B`` /
    ``B->A`` of id ``A-B``), ``link_load_mbps`` (max direction), ``link_capacity_mbps``
    (per direction, after degradation and extra capacity), ``link_utilisation``,
    ``link_loss`` (max direction), ``link_failed``.
    Routers: ``router_ids`` with ``router_load_mbps``, ``router_capacity_mbps``,
    ``router_utilisation``, ``router_loss``, ``router_failed``.
    ``failed_links``/``failed_routers`` include induced failures (``failed_links`` also
    every link of a failed router);
    ``induced_links[i]``/``induced_routers[i]`` are those induced in cascade round i+1.
    """

    demand_ids: tuple[str, ...]
    offered_mbps: np.ndarray
    admitted_mbps: np.ndarray
    routed_fraction: np.ndarray
    reachable: np.ndarray
    delivered_fraction: np.ndarray
    loss_fraction: np.ndarray
    latency_ms: np.ndarray
    path_changed: np.ndarray
    link_ids: tuple[str, ...]
    link_load_fwd: np.ndarray
    link_load_rev: np.ndarray
    link_load_mbps: np.ndarray
    link_capacity_mbps: np.ndarray
    link_utilisation: np.ndarray
    link_loss: np.ndarray
    link_failed: np.ndarray
    router_ids: tuple[str, ...]
    router_load_mbps: np.ndarray
    router_capacity_mbps: np.ndarray
    router_utilisation: np.ndarray
    router_loss: np.ndarray
    router_failed: np.ndarray
    failed_links: frozenset[str]
    failed_routers: frozenset[str]
    induced_links: tuple[tuple[str, ...], ...]
    induced_routers: tuple[tuple[str, ...], ...]
    cascade_rounds: int
    timing: dict
    _fractions: sp.csr_matrix = field(repr=False)
    _n_arcs: int = field(repr=False)

    def paths(self, demand_id: str) -> dict[str, float]:
        """Link id -> fraction of the demand's admitted traffic sent over that link."""
        i = self.demand_ids.index(demand_id)
        row = self._fractions.getrow(i)
        out: dict[str, float] = {}
        for col, frac in zip(row.indices, row.data):
            if col < self._n_arcs:
                lid = self.link_ids[col // 2]
                out[lid] = out.get(lid, 0.0) + float(frac)
        return out

    def demand(self, demand_id: str) -> dict:
        """One demand's figures as a plain dict."""
        i = self.demand_ids.index(demand_id)
        return {
            "id": demand_id,
            "offered_mbps": float(self.offered_mbps[i]),
            "admitted_mbps": float(self.admitted_mbps[i]),
            "routed_fraction": float(self.routed_fraction[i]),
            "reachable": bool(self.reachable[i]),
            "delivered_fraction": float(self.delivered_fraction[i]),
            "loss_fraction": float(self.loss_fraction[i]),
            "latency_ms": float(self.latency_ms[i]),
            "path_changed": bool(self.path_changed[i]),
            "paths": self.paths(demand_id),
        }

    def link(self, lid: str) -> dict:
        """One link's figures as a plain dict."""
        i = self.link_ids.index(lid)
        return {
            "id": lid,
            "load_mbps": float(self.link_load_mbps[i]),
            "load_fwd": float(self.link_load_fwd[i]),
            "load_rev": float(self.link_load_rev[i]),
            "capacity_mbps": float(self.link_capacity_mbps[i]),
            "utilisation": float(self.link_utilisation[i]),
            "loss": float(self.link_loss[i]),
            "failed": bool(self.link_failed[i]),
        }

    def router(self, rid: str) -> dict:
        """One router's figures as a plain dict."""
        i = self.router_ids.index(rid)
        return {
            "id": rid,
            "load_mbps": float(self.router_load_mbps[i]),
            "capacity_mbps": float(self.router_capacity_mbps[i]),
            "utilisation": float(self.router_utilisation[i]),
            "loss": float(self.router_loss[i]),
            "failed": bool(self.router_failed[i]),
        }


