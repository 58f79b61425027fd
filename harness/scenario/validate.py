"""The causal validator: the paper's Definition 1, made precise.

A scenario is *causally valid* on a knowledge graph when its events, taken in order, obey:

**schema**  The record has the shape of :class:`harness.scenario.model.Scenario`, every
  ``event_type`` is registered (:mod:`harness.scenario.types`) and its ``params`` are the
  ones that type accepts, within their bounds.

**R1-target**  The target exists in the knowledge graph and is of the kind the event type
  takes (link, router or SRLG); routers named in parameters (``sources``, ``destinations``,
  ``next_hop``) exist too, a ``next_hop`` is a neighbour of the target, and a source is not
  the target itself. Names are forgiving but never interpreted: either orientation of a link,
  a router's label from the data, case, spaces, dots, dashes and underscores resolve to the
  canonical id when exactly one element matches (:mod:`harness.kg.names`; ``ani scenario
  validate`` says what it read), anything else gets "did you mean"; a target with shell
  metacharacters or path separators is simply an unknown target.

**R2-alive**  The target is alive when the event fires: no failing a link or router that is
  down (a link is also down when either endpoint router is), no SRLG failure when all its
  links are down, no overloading, degrading or misconfiguring an element that is down or
  already in that state, no source router that is down. Events with ``duration_s`` end at
  ``timestamp + duration_s``, after which the element is alive again.

**R3-time**  Timestamps are non-decreasing and within ``[0, latest_event_time(horizon_s)]``: each event leaves
            a measurable tail of the horizon (:data:`harness.scenario.model.MEASURE_TAIL_S`).

**R4-causal**  Every event after the first is causally connected to an earlier one through
  the knowledge graph, unless it declares ``independent: true`` (a new root). Connected
  means at least one of: it acts on a router an earlier event acted on (for a link, its
  endpoints; for an SRLG, its links' endpoints; for a surge or DDoS, its target and explicit
  sources); it acts on a neighbour of such a router; it shares an SRLG with an earlier
  event's links; or its element lies on the baseline path of a flow an earlier event
  affected (a flow depending on an element that event acted on).

**R5-reach**  An event that sends traffic (a type with ``reach_from``: surges, DDoS) can reach
  its target through the network as it stands at that moment: every explicit source has a path of live links to the
  target; with no explicit sources, at least one other router has.

Every violation becomes a :class:`Reason` naming the event index, the rule and the reason in
plain words; :func:`validate_scenario` collects them all and raises
:class:`~harness.errors.ScenarioInvalid`, or returns the typed scenario with every event's
parameters normalised (severity defaults filled in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import ValidationError

from harness.errors import ConfigError, ScenarioInvalid
from harness.scenario.causal import R1, R3, R4, CausalState
from harness.kg.model import KnowledgeGraph
from harness.kg.names import resolve, suggest
from harness.scenario import types
from harness.scenario.model import Event, Scenario, latest_event_time

SCHEMA = "schema"


@dataclass(frozen=True)
class Reason:
    index: int | None
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"event {self.index}" if self.index is not None else "scenario"
        return f"{where}: [{self.rule}] {self.message}"

    def to_dict(self) -> dict:
        return {"index": self.index, "rule": self.rule, "message": self.message}


def _safe(name: object) -> str:
    """A target name fit to print: repr() so control characters and quotes show plainly."""
    return repr(str(name)[:80])


def validate_scenario(kg: KnowledgeGraph, data: Scenario | dict) -> Scenario:
    """Return the typed, normalised scenario or raise :class:`ScenarioInvalid` with every reason."""
    reasons = check_scenario(kg, data)
    if isinstance(reasons, Scenario):
        return reasons
    sid = data.get("id", "?") if isinstance(data, dict) else data.id
    raise ScenarioInvalid(str(sid), reasons)


def check_scenario(kg: KnowledgeGraph, data: Scenario | dict) -> Scenario | list[Reason]:
    """Like :func:`validate_scenario` but returns the list of reasons instead of raising."""
    if isinstance(data, Scenario):
        data = data.model_dump()
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        return [_schema_reason(err) for err in exc.errors()]
    reasons: list[Reason] = []
    state = CausalState(kg)
    normalised: list[Event] = []
    last_t = 0.0
    for i, event in enumerate(scenario.events):
        try:
            etype = types.get(event.event_type)
        except ConfigError as exc:
            reasons.append(Reason(i, SCHEMA, str(exc)))
            continue
        try:
            params = etype.normalise(event.params, event.severity)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"])
                reasons.append(Reason(i, SCHEMA, f"{event.event_type} parameter {loc}: {err['msg']}"))
            continue
        event = _canonical(kg, etype, event, params)   # forgiving names -> canonical ids
        params = event.params
        target_problems = _check_names(kg, etype, event.target, params)
        reasons += [Reason(i, R1, m) for m in target_problems]
        if event.timestamp < last_t:
            reasons.append(Reason(i, R3, f"timestamp {event.timestamp} s is before the previous event's {last_t} s"))
        if event.timestamp > scenario.horizon_s:
            reasons.append(Reason(i, R3, f"timestamp {event.timestamp} s is beyond the horizon of {scenario.horizon_s} s"))
        elif event.timestamp > latest_event_time(scenario.horizon_s):
            reasons.append(Reason(i, R3, f"timestamp {event.timestamp} s leaves less than "
                                         f"{scenario.horizon_s - latest_event_time(scenario.horizon_s):g} s of the "
                                         f"{scenario.horizon_s:g} s horizon to measure its effect (latest: "
                                         f"{latest_event_time(scenario.horizon_s):g} s)"))
        last_t = max(last_t, event.timestamp)
        if target_problems:
            continue
        state.advance(event.timestamp)
        alive = state.check(event.event_type, event.target, params)
        reasons += [Reason(i, rule, m) for rule, m in alive]
        if i > 0 and not event.independent and state.footprints:
            fp = state.footprint(event.event_type, event.target, params)
            if not state.connected(fp):
                reasons.append(Reason(i, R4, f"{event.event_type} on {event.target} is not connected to any earlier "
                                             "event (no shared or neighbouring router, shared SRLG, or affected flow "
                                             "path); mark it independent if it is a new root cause"))
        if not alive:
            state.apply(event.event_type, event.target, event.end() if event.duration_s else math.inf, params)
        normalised.append(event)
    if reasons:
        return reasons
    return scenario.model_copy(update={"events": normalised})


def _canonical(kg: KnowledgeGraph, etype: types.EventType, event: Event, params: dict) -> Event:
    """The event with its target and the routers its parameters name resolved to canonical
    ids where the name is unambiguous (:func:`harness.kg.names.resolve`), params normalised."""
    target = resolve(kg, etype.target_kind, event.target) or event.target
    params = dict(params)
    for key in ("sources", "destinations"):
        if params.get(key):
            params[key] = [resolve(kg, "router", r) or r for r in params[key]]
    if params.get("next_hop"):
        params["next_hop"] = resolve(kg, "router", params["next_hop"]) or params["next_hop"]
    return event.model_copy(update={"target": target, "params": params})


def renamed(raw: dict, scenario: Scenario) -> list[str]:
    """What the validator read a raw scenario's names as, where it differs (to say so once)."""
    out = []
    for i, (r, e) in enumerate(zip(raw.get("events") or [], scenario.events)):
        if isinstance(r, dict) and r.get("target") != e.target:
            out.append(f"event {i}: target {_safe(r.get('target'))} read as {e.target}")
    return out


def _check_names(kg: KnowledgeGraph, etype: types.EventType, target: str, params: dict) -> list[str]:
    problems = []
    kind = etype.target_kind
    if not kg.has(kind, target):
        others = [k for k in kg.kind_of(target) if k in ("router", "link", "srlg")]
        hint = f" (it is a {others[0]}; {etype.name} takes a {kind})" if others else ""
        close = suggest(kg, kind, target) if not others else []
        hint += f"; did you mean {', '.join(close)}?" if close else ""
        problems.append(f"unknown {kind} {_safe(target)} in topology {kg.name}{hint}")
        return problems
    for key in ("sources", "destinations"):
        for r in params.get(key) or ():
            if not kg.has("router", r):
                close = suggest(kg, "router", r)
                problems.append(f"{key} names an unknown router {_safe(r)}"
                                + (f"; did you mean {', '.join(close)}?" if close else ""))
            elif key == "sources" and r == target:
                problems.append(f"source {r} is the target itself")
    return problems + etype.check_names(kg, target, params)


def notes(kg: KnowledgeGraph, scenario: Scenario) -> list[str]:
    """Remarks on a valid scenario worth telling the user (how an event was interpreted)."""
    return [f"event {i}: {n}" for i, e in enumerate(scenario.events)
            for n in types.get(e.event_type).notes(kg, e.target, e.params)]


def _schema_reason(err: dict) -> Reason:
    loc = list(err.get("loc", ()))
    index = None
    if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
        index = loc[1]
        loc = loc[2:]
    field = ".".join(str(x) for x in loc) or "record"
    return Reason(index, SCHEMA, f"{field}: {err['msg']}")
