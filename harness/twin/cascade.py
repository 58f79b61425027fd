"""The one overload-tripping rule both twins apply: which elements a cascade round fails.

Motter and Lai's cascade model (A. E. Motter and Y.-C. Lai, "Cascade-based attacks on
complex networks", Phys. Rev. E 66, 065102(R), 2002) gives every element ``i`` a capacity
proportional to the load it was built for::

    C_i = (1 + alpha) * L_i(0)

where ``L_i(0)`` is its load in the intact network and ``alpha >= 0`` the *tolerance
parameter* (the paper's argument: in man-made networks capacity is limited by cost, so
it is provisioned in proportion to the expected load). An element whose load exceeds its
capacity fails; its load moves elsewhere, which may fail others, round after round.

Here an element's tolerance is the smaller of that and its physical capacity ``c_i`` (an
element cannot carry more than its port or forwarding rate, whatever the headroom it was
planned with), but never below its baseline load (Motter and Lai's intact network is in a
steady state: an element overloaded before any event drops its excess, it does not fail
because nothing happened)::

    T_i = min((1 + alpha) * L_i(0), max(c_i, L_i(0)))        trips when  L_i > T_i

An element that carried nothing in the baseline (``L_i(0) <= min_mbps``: a backup path,
idle in the intact network) has its physical capacity as tolerance: Motter–Lai's capacity
of 0 would fail every backup path the first time a reroute uses it, whereas an idle
element was provisioned for protection, not for a load.

With the knowledge graph's provisioning (links at most 50 % utilised, routers at half their
forwarding capacity: :mod:`harness.kg.build`) and ``alpha <= 1``, ``(1 + alpha) * L_i(0)``
is at most ``c_i`` for every element, so ``alpha`` decides every trip; ``c_i`` binds only
for an element whose capacity an event lowered (a degraded link, a cut CPU) or for
``alpha > 1``. The rule's parameters and their sources:

``alpha`` (:data:`DEFAULT_ALPHA` = 1)
    The headroom the knowledge graph provisions: every router's forwarding capacity is
    its baseline load over ``harness.kg.build.DEFAULT_LOAD`` = 0.5, i.e. twice its load
    (Motter–Lai's ``alpha = 1/0.5 - 1 = 1``), and the busiest link is built at the same
    50 % utilisation. The value lies in the range the paper explores (tolerances from 0
    to about 1; the smaller ``alpha``, the larger the cascades it finds). It is a modelling
    choice consistent with the testbed's provisioning, not a measurement of a real
    network's protection headroom. ``EngineConfig(alpha=...)`` and
    ``EmulationTwin(alpha=...)`` change it (both twins must use the same value to be
    compared). On ``topozoo/Abilene`` (14 links), single link cuts cascade in 13 of 14
    cases at ``alpha`` = 0.5, 8 at 1 and 5 at 2 (flow twin, the KG's default traffic).
``L_i``, the load measure
    Motter and Lai use betweenness (shortest paths through the element); here it is the
    traffic rate, Mbit/s, as both twins measure it. A *link*'s load is its busier
    direction (links are full duplex, each direction has the capacity). A *router*'s load
    is the traffic it receives from its neighbouring routers: transit plus delivered
    traffic. What its own hosts send is left out: a router's hosts' excess is policed at
    its ingress (its capacity meter, or a rate limit) and a surge must not fail its own
    source; traffic it delivers to its hosts crossed its forwarding, so it counts. Both
    twins use this measure: the flow twin from its routes, the emulation from the port
    counters of a router's inter-router ports (received bytes).
Offered or carried load
    A link's load: the flow twin counts offered load; the emulation measures carried load
    (what left a port) plus what the link's shaper dropped. Because ``T_i <= c_i``, a link
    that carries at most ``c_i`` still exceeds a tolerance below ``c_i`` exactly when its
    offered load does: the two measures trip the same link. A router's load is what its
    incoming links *carry* on both twins: the flow twin caps each incoming link's offered
    load at the link's capacity (what a full link delivers), as the emulation's port
    counters see it — a DDoS that fills the links into a router loads it with at most their
    capacity. Drops further upstream still load the flow twin's routers (it has no fixed
    point over loss), so it can trip a router the emulation does not.
``min_mbps`` (the measurement floor)
    Loads at or below it never trip. The flow twin's loads are exact (0); the emulation
    passes the resolution of its counters, so stray packets neither trip an element nor
    make an idle one look loaded.

Which elements (:data:`DEFAULT_LINKS`)
    Routers, by default. Motter and Lai's model is on nodes, and in an IP network it is a
    router that fails from load (its CPU and control plane overloaded: sessions drop, routes
    are withdrawn), whereas a link past its tolerance stays up and queues and drops the
    excess — that is congestion, which the twins report as loss and congested links. With
    ``links=True`` the same rule fails links too (the edge-overload variant); on the flow
    twin with the knowledge graph's default traffic, single link cuts that cascade:

    =====================  ==========  ==========  ==========  ==========
    alpha                  0.25        0.5         1           2
    =====================  ==========  ==========  ==========  ==========
    Abilene, routers       13/14       10/14       4/14        2/14
    Abilene, + links       13/14       13/14       8/14        5/14
    Geant2012, routers     24/58       19/58       13/58       7/58
    Geant2012, + links     43/58       36/58       29/58       25/58
    =====================  ==========  ==========  ==========  ==========

A cascade is then: apply the events; repeat {measure loads; fail every live element that
trips} until a round fails nothing or ``max_rounds`` rounds have failed something. The
*depth* is the number of rounds that failed something (0: no cascade).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from harness.errors import ConfigError

#: Motter–Lai tolerance parameter: the knowledge graph's provisioning headroom (capacity = 2 x
#: baseline load, ``harness.kg.build.DEFAULT_LOAD`` = 0.5), within the paper's range (above).
DEFAULT_ALPHA = 1.0
#: Whether links fail from load (see "Which elements" above): no, by default.
DEFAULT_LINKS = False
#: Cascade rounds after which the flow twin stops: a bound on run time, not a model constant
#: (every round fails at least one element, so a cascade ends within that many rounds anyway
#: on networks of fewer elements). The emulation bounds its own rounds, each costing a window.
DEFAULT_MAX_ROUNDS = 50


@dataclass(frozen=True)
class CascadeRule:
    """The tripping rule's parameters (see the module docstring for their sources)."""

    alpha: float = DEFAULT_ALPHA
    min_mbps: float = 0.0
    max_rounds: int = DEFAULT_MAX_ROUNDS
    #: Apply the rule to links too (the edge-overload variant); by default only routers trip.
    links: bool = DEFAULT_LINKS

    def __post_init__(self):
        if not (self.alpha >= 0 and np.isfinite(self.alpha)):
            raise ConfigError(f"cascade alpha must be a finite number >= 0, not {self.alpha!r}")
        if not self.min_mbps >= 0:
            raise ConfigError(f"cascade min_mbps must be >= 0, not {self.min_mbps!r}")
        if not (isinstance(self.max_rounds, int) and self.max_rounds >= 0):
            raise ConfigError(f"cascade max_rounds must be an integer >= 0, not {self.max_rounds!r}")

    def tolerance(self, baseline, capacity):
        """``min((1 + alpha) * baseline, max(capacity, baseline))``, elementwise; ``capacity``
        where the baseline load is at most ``min_mbps`` (an idle element)."""
        base = np.asarray(baseline, dtype=float)
        cap = np.asarray(capacity, dtype=float)
        return np.where(base > self.min_mbps, np.minimum((1.0 + self.alpha) * base, np.maximum(cap, base)), cap)

    def over(self, baseline, load, capacity) -> np.ndarray:
        """Per element (aligned arrays): does ``load`` trip it? A float tolerance of 1e-9
        Mbit/s keeps rounding from tripping an element sitting exactly at its tolerance."""
        load = np.asarray(load, dtype=float)
        return (load > self.tolerance(baseline, capacity) + 1e-9) & (load > self.min_mbps)

    def tripped(self, baseline: Mapping[str, float], load: Mapping[str, float],
                capacity: Mapping[str, float]) -> list[str]:
        """The elements of ``load`` (id -> Mbit/s) that trip, sorted. An element missing
        from ``baseline`` had no baseline load (tolerance: its capacity); one missing from ``capacity``
        has no physical limit."""
        ids = sorted(load)
        if not ids:
            return []
        hit = self.over([baseline.get(i, 0.0) for i in ids], [load[i] for i in ids],
                        [capacity.get(i, np.inf) for i in ids])
        return [i for i, h in zip(ids, hit.tolist()) if h]

    def record(self) -> dict:
        """The parameters as plain data, for a result's ``meta``."""
        return {"rule": "load > min((1 + alpha) * baseline load, max(capacity, baseline load)) "
                        "(Motter & Lai, Phys. Rev. E 66, 065102, 2002); idle elements: capacity",
                "elements": "routers and links" if self.links else "routers",
                "alpha": self.alpha, "min_mbps": self.min_mbps, "max_rounds": self.max_rounds}
