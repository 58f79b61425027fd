"""What an event type is, and the plain-data :class:`Effect` every part of ani reads from it.

An event type owns its semantics in one module (:mod:`harness.scenario.events`): the kind of
element it targets, its parameters, its causal preconditions (rule R2/R5 checks), what it
acts on (the footprint behind rule R4 and the blast radius), and its **effect** — which links
and routers it takes down, which capacities and loss rates it changes, what extra traffic it
sends and which routers it misconfigures. Both twins, the mitigation planner and the report
read the effect, never the type's name: a new type that can be expressed as an effect runs
everywhere without touching any other module. A twin that cannot realise some kind of effect
lists the kinds it supports (:data:`EFFECT_KINDS`) and refuses to load when a registered type
needs another (:func:`harness.scenario.types.require_effects`).

Demand formulas (surge, DDoS) are computed here once, in the KG's units (Mbit/s); the
emulation scales them by its ``bw_scale`` like the rest of its traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from harness.kg.model import KnowledgeGraph, nid

TargetKind = Literal["link", "router", "srlg"]
Problem = tuple[str, str]          # (rule, message)
R2, R5 = "R2-alive", "R5-reach"


class CausalView(Protocol):
    """What an event type's checks may ask of the causal state
    (:class:`harness.scenario.causal.CausalState`, which imports this module)."""

    kg: KnowledgeGraph

    def target_problems(self, kind: str, target: str) -> list[Problem]: ...
    def in_condition(self, event_type: str, target: str) -> bool: ...
    def reach_problems(self, target: str, sources: list[str]) -> list[Problem]: ...
    def link_alive(self, link: str) -> bool: ...


class Params(BaseModel):
    """Base of every type's parameter model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class NoParams(Params):
    pass


@dataclass(frozen=True)
class Traffic:
    """Extra traffic an event sends: ``mbps`` from ``src`` to ``dst`` (KG units)."""

    src: str
    dst: str
    mbps: float
    id: str
    #: ``surge``: more of the same demand; ``flood``: attack packets (``protocol``, ``spoofed``).
    kind: Literal["surge", "flood"] = "surge"
    protocol: Literal["udp", "syn"] = "udp"
    spoofed: bool = False


@dataclass(frozen=True)
class Misroute:
    """A router forwarding traffic for ``destinations`` (``None``: every destination) wrongly:
    dropped (``next_hop is None``) or sent to ``next_hop``."""

    router: str
    destinations: frozenset[str] | None
    next_hop: str | None = None


@dataclass(frozen=True)
class Effect:
    """What an event does to the network while it lasts, in plain data."""

    links_down: frozenset[str] = frozenset()
    routers_down: frozenset[str] = frozenset()
    #: router -> fraction of its forwarding capacity left
    router_capacity: dict[str, float] = field(default_factory=dict)
    #: link -> random loss added, percent
    link_loss_pct: dict[str, float] = field(default_factory=dict)
    #: link -> fraction of its capacity left
    link_capacity: dict[str, float] = field(default_factory=dict)
    traffic: tuple[Traffic, ...] = ()
    misroutes: tuple[Misroute, ...] = ()

    def kinds(self) -> set[str]:
        """The kinds of effect this one uses (names of its non-empty fields)."""
        return {f.name for f in fields(self) if getattr(self, f.name)}


EFFECT_KINDS = frozenset(f.name for f in fields(Effect))


class EventType:
    """One event type. Subclasses set the class attributes and override what differs.

    ``condition`` names a state the target may not be put in twice (``"overloaded"``):
    rule R2 refuses the second event while the first lasts.
    """

    name: ClassVar[str]
    target_kind: ClassVar[TargetKind]
    label: ClassVar[str]                     # for people: "fiber link failure"
    description: ClassVar[str]               # for the model's prompt and the docs
    params: ClassVar[type[Params]] = NoParams
    #: Defaults filled in from the event's severity when a parameter is omitted.
    severity_defaults: ClassVar[dict[str, dict[str, float]]] = {}
    #: Kinds of :class:`Effect` this type produces (checked against each twin's support).
    effect_kinds: ClassVar[frozenset[str]] = frozenset()
    condition: ClassVar[str | None] = None
    #: Parameters naming routers the event involves (checked like targets, part of R4).
    router_params: ClassVar[tuple[str, ...]] = ()
    #: Sends traffic to its target: rule R5 checks the routers named by this parameter
    #: (none named: any other router) can reach the target as the network stands.
    reach_from: ClassVar[str | None] = None
    #: The role generators ask for by name (``"cut"``: the link cut, ``"surge"``: the demand
    #: surge); at most one type per role (:func:`harness.scenario.types.for_role`).
    role: ClassVar[str | None] = None

    # ------------------------------------------------------------------ parameters
    def normalise(self, params: dict, severity: str) -> dict:
        """Validate ``params`` and fill severity defaults; raises pydantic ValidationError."""
        out = self.params.model_validate(params).model_dump()
        for key, value in self.severity_defaults.get(severity, {}).items():
            if out.get(key) is None:
                out[key] = value
        return out

    def check_names(self, kg: KnowledgeGraph, target: str, params: dict) -> list[str]:
        """Rule-1 problems beyond the target's existence (parameters naming elements)."""
        return []

    def notes(self, kg: KnowledgeGraph, target: str, params: dict) -> list[str]:
        """Remarks on a valid event the user should see (not errors)."""
        return []

    # ------------------------------------------------------------------ causal rules
    def check(self, state: CausalView, target: str, params: dict) -> list[Problem]:
        """Rule-2/5 problems of firing the event now (default: the target is alive, not
        already in this type's ``condition``, and reachable by ``reach_from``'s routers)."""
        problems = state.target_problems(self.target_kind, target)
        if not problems and self.condition and state.in_condition(self.name, target):
            problems = [(R2, f"{self.target_kind} {target} is already {self.condition}")]
        if not problems and self.reach_from:
            problems = state.reach_problems(target, params.get(self.reach_from) or [])
        return problems

    def touched(self, kg: KnowledgeGraph, target: str, params: dict) -> set[str]:
        """Node ids the event acts on (removed, degraded or loaded)."""
        return {nid(self.target_kind, target)}

    def effect(self, kg: KnowledgeGraph, target: str, params: dict, index: int = 0) -> Effect:
        """What the event does while it lasts; ``index`` names its extra demands."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<event type {self.name}>"
