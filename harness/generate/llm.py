"""``llm``: causal scenario generation by a language model, constrained while decoding.

Step-wise: for each next event, :func:`harness.kg.admissible_events` gives the admissible
``{event_type: [targets]}`` given the events so far; the model is asked for exactly one
event under a JSON schema whose branches (``anyOf``, one per admissible event type) enumerate
exactly that type's admissible targets, with a timestamp bounded to leave a measurable tail of
the horizon (:func:`~harness.scenario.model.latest_event_time`, which the validator applies
too) and a severity enum. On the
embedded llama.cpp server the schema is sent as a compact GBNF grammar (no free whitespace:
a 135M model otherwise spends its token budget on indentation and wrote 13-digit timestamps
for a 0..600 field); on vLLM and other OpenAI-compatible servers as
``response_format: {"type": "json_schema", …}``. A last call asks for a one-sentence
description of the scenario.

At any graph size each step offers at most ``shortlist_limit`` (type, target) pairs, every one
admissible: the previous events' causal neighbourhood, the most critical elements, and a seeded
exploration share (:mod:`harness.generate.shortlist`; recorded in the provenance), listed most
critical first. The arm starts narrow — the graph's few most critical elements — and widens
with each proposal it has made (:meth:`LLMGenerator._width`).

The prompt carries the knowledge-graph context of the last target (its neighbours, the flows
and SRLGs through it, loads and headroom), the operator's constraints (allowed event types,
number of events, horizon), and feedback from earlier results (what hurt most, what
mitigation fixed, what was rejected and why).

Model output is untrusted: it is parsed as JSON, shaped by the :class:`Event` model, and the
whole scenario still goes through the causal validator — once, where it is used (the campaign
loop, ``ani generate``), not here. Per attempt the generator records the scenario id (none when
the model's output could not be read, with the reason), prompt hash, model, seed, temperature,
tokens and attempts (:attr:`LLMGenerator.records`); the campaign's ``logs/llm.jsonl`` adds each
scenario's verdict.

Ablations (flags): ``constrained=False`` — same prompt, no schema, parse whatever comes back;
``use_kg=False`` — no graph context in the prompt and no admissibility: the enums list every
element of the right kind by name; ``use_feedback=False`` — feedback is left out, both from
the prompt and from the shortlist (with feedback, the targets of the most damaging scenarios so
far and their surroundings are offered first). ``screen=n`` — best-of-n: n candidates per
scenario, the most damaging valid one kept, judged by the flow twin (:meth:`_screened`).
Every arm's last step leaves out what would repeat an earlier proposal (:func:`unseen`); with
feedback, half the multi-event proposals continue one of the most damaging scenarios so far
(:meth:`LLMGenerator._chain_prefix`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from harness.generate.base import Feedback, GenState, scenario_id
from harness.generate.shortlist import DEFAULT_LIMIT, scores, shortlist
from harness.scenario.causal import admissible_events
from harness.kg.model import KnowledgeGraph, nid
from harness.scenario import types as event_types
from harness.scenario.model import Event, Provenance, Scenario, latest_event_time

SEVERITIES = ["low", "medium", "high"]
#: Candidates the prompt lists by name (the grammar offers the whole shortlist).
PROMPT_TARGETS = 30
#: Candidates per step at an arm's first proposal, and how many more per proposal since
#: (:meth:`LLMGenerator._width`).
NARROW = 8
GROWTH = 2
SYSTEM = ("You are a network resilience engineer writing failure scenarios for a telecom network "
          "digital twin. Answer with one JSON object only.")


def event_schema(options: dict[str, list[str]], t_min: float, horizon: float) -> dict:
    """The JSON schema of one event whose type and target are exactly ``options``."""
    branches = []
    for et, targets in options.items():
        branches.append({
            "type": "object",
            "properties": {
                "event_type": {"const": et},
                "target": {"enum": list(targets)},
                "timestamp": {"type": "number", "minimum": float(t_min), "maximum": float(horizon)},
                "severity": {"enum": SEVERITIES},
            },
            "required": ["event_type", "target", "timestamp", "severity"],
            "additionalProperties": False,
        })
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


DESCRIPTION_SCHEMA = {
    "type": "object",
    "properties": {"description": {"type": "string", "minLength": 10, "maxLength": 160}},
    "required": ["description"],
    "additionalProperties": False,
}


def kg_context(kg: KnowledgeGraph, target: str | None, limit: int = 6) -> str:
    """A few lines about ``target``'s surroundings: neighbours, flows, SRLGs, loads, headroom."""
    topo = kg.topology
    lines = [f"Network {kg.name}: {len(kg.routers)} routers, {len(kg.links)} links."]
    busiest = sorted(kg.links, key=lambda l: -kg.attrs("link", l)["utilisation"])[:limit]
    lines.append("Busiest links (utilisation): " + ", ".join(
        f"{l} {kg.attrs('link', l)['utilisation']:.0%}" for l in busiest))
    if target is None:
        central = sorted(kg.routers, key=lambda r: -topo.degree(r))[:limit]
        lines.append("Best-connected routers: " + ", ".join(f"{r} ({topo.degree(r)} links)" for r in central))
        return "\n".join(lines)
    routers = list(kg.link_ends(target)) if kg.has("link", target) else [target] if kg.has("router", target) else []
    for r in routers:
        nbrs = sorted(topo.neighbors(r))
        lines.append(f"Router {r} neighbours: {', '.join(nbrs[:limit])}" + (" …" if len(nbrs) > limit else ""))
        for n in nbrs[:limit]:
            a = topo.edges[r, n]
            head = 1 - kg.attrs("link", a["id"])["utilisation"]
            lines.append(f"  link {a['id']}: {a['delay_ms']:.1f} ms, headroom {head:.0%}")
    elements = [nid("link", target)] if kg.has("link", target) else [nid("router", r) for r in routers]
    flows = sorted({f for e in elements for f in kg.related(e, "carries")} if kg.has("link", target) else
                   {f for f in kg.flows if target in kg.attrs("flow", f)["path"]})
    if flows:
        lines.append(f"{len(flows)} flows cross {target}, e.g. {', '.join(f.removeprefix('flow:') for f in flows[:3])}")
    srlgs = sorted({s for e in elements if e.startswith("link:") for s in kg.related(e, "shares_risk")})
    if srlgs:
        lines.append(f"{target} shares risk with: {', '.join(s.removeprefix('srlg:') for s in srlgs)}")
    return "\n".join(lines)


def parse_event(text: str) -> dict | None:
    """The first JSON object in ``text`` (models add prose when unconstrained), or None."""
    text = text.strip()
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else None
    except ValueError:
        pass
    for m in re.finditer(r"\{[^{}]*\}", text):
        try:
            value = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def known(kg, event: Event) -> bool:
    """Whether the graph has ``event``'s target for its event type — always so under the grammar;
    without it (the unconstrained ablation) the model may write any name, and nothing may build
    on such an event (what follows from it is replayed on the graph)."""
    return event.event_type in event_types.names() and kg.has(event_types.get(event.event_type).target_kind,
                                                                 event.target)


@dataclass
class LLMGenerator:
    """Generates scenarios with a model behind an OpenAI-compatible server.

    With ``llm_url=None`` it starts the embedded llama.cpp server (SmolLM2) on first use and
    stops it on :meth:`close` (use it as a context manager).
    """

    llm_url: str | None = None
    model: str | None = None
    constrained: bool = True
    use_kg: bool = True
    use_feedback: bool = True
    temperature: float = 0.7
    max_attempts: int = 3
    max_tokens: int = 96
    compact_grammar: bool | None = None  # None: on for the embedded server, off for remote servers
    #: candidate (type, target) pairs offered per step at most (:mod:`harness.generate.shortlist`)
    shortlist_limit: int = DEFAULT_LIMIT
    #: candidate pairs at the arm's first proposal, and how many more per proposal since
    narrow: int = NARROW
    growth: int = GROWTH
    #: best-of-n: write this many candidates per scenario and keep the most damaging valid one,
    #: judged by the flow twin (the "digital twin as verifier"); 1 = no screening
    screen: int = 1
    name: str = "llm"
    records: list[dict] = field(default_factory=list, init=False)
    _server: object = field(default=None, init=False, repr=False)
    _client: object = field(default=None, init=False, repr=False)
    _verifier: object = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "LLMGenerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self):
        from harness.llm import EmbeddedServer, LLMClient

        if self._client is None:
            url, model = self.llm_url, self.model
            if url is None:
                self._server = EmbeddedServer().start()
                url, model = self._server.url, model or self._server.model
                if self.compact_grammar is None:
                    self.compact_grammar = True
            self._client = LLMClient(url, model=model)
        return self._client

    @property
    def label(self) -> str:
        flags = [f for f, on in (("unconstrained", not self.constrained), ("no-kg", not self.use_kg),
                                 ("no-feedback", not self.use_feedback), (f"best{self.screen}", self.screen > 1)) if on]
        return "llm" + "".join(f"+{f}" for f in flags)

    # ------------------------------------------------------------------ generation
    def propose(self, kg: KnowledgeGraph, state: GenState, feedback: Feedback | None, n: int,
                seed: int) -> list[Scenario]:
        out = []
        state = replace(state, history=list(state.history))     # this batch's own are not repeated either
        for k in range(n):
            scenario = (self._one(kg, state, feedback, seed, k) if self.screen <= 1
                        else self._screened(kg, state, feedback, seed, k))
            if scenario is not None:
                out.append(scenario)
                state.history.append(scenario)
        return out

    def _screened(self, kg, state: GenState, feedback, seed: int, k: int) -> Scenario | None:
        """Best of :attr:`screen` candidates: each valid one (by the causal validator) is run on
        the flow twin without mitigation; the one that loses most traffic (then impacts most
        routers, then cascades deepest) is kept. Invalid candidates are never returned while a
        valid one exists; the screening is recorded in the kept scenario's provenance."""
        from harness.scenario.validate import check_scenario
        from harness.twin.flow.twin import FlowTwin

        if self._verifier is None:
            self._verifier = FlowTwin()
        before = len(self.records)
        scored, first = [], None
        for c in range(self.screen):
            cand = self._one(kg, state, feedback, seed, k * 1000 + c)
            if cand is None:
                continue
            first = first or cand
            verdict = check_scenario(kg, cand)
            if not isinstance(verdict, Scenario):
                continue
            f = self._verifier.run(kg, verdict, None).row("failure")
            scored.append(((f.loss_pct or 0.0, f.impacted_nodes or 0, f.cascade_depth or 0), cand))
        scored.sort(key=lambda x: x[0], reverse=True)
        best = scored[0][1] if scored else first
        if best is not None:      # the other candidates' records say they were screened out
            for r in self.records[before:]:
                r["screened_out"] = r.get("id") != best.id
        if not scored:
            return best
        extra = {**best.provenance.extra, "screening": {
            "candidates": self.screen, "valid": len(scored), "flow_twin_evaluations": len(scored),
            "losses_pct": sorted((round(x[0][0], 3) for x in scored), reverse=True)}}
        return best.model_copy(update={"provenance": best.provenance.model_copy(update={"extra": extra})})

    def _one(self, kg, state: GenState, feedback, seed: int, k: int) -> Scenario | None:
        rng = random.Random(f"{seed}:{state.iteration}:{k}")
        count = rng.randint(1, state.max_events)
        allowed = state.event_types or event_types.names()
        continues, events = self._chain_prefix(state, feedback, count, allowed, rng)
        prompts: list[str] = []
        tokens = attempts = 0
        failed = False
        offered: list[dict] = []
        for step in range(len(events), count):
            if events and not known(kg, events[-1]):
                break       # unconstrained output the graph does not know ends the chain; the validator rejects it
            t_min = events[-1].timestamp if events else 0.0
            options = self._options(kg, events, t_min, allowed)
            if step == count - 1:
                options = unseen(options, events, state.history)
            if not options:
                break
            focus = ([t for w in feedback.worst for t in w.get("targets", [])]
                     if (self.use_feedback and feedback is not None) else [])
            short = shortlist(kg, options, events, seed=rng.randrange(2**31), limit=self._width(state),
                              use_kg=self.use_kg, focus=focus)
            options = short.options
            offered.append(short.record())
            prompt = self._prompt(kg, state, feedback, events, options, count, step)
            prompts.append(prompt)
            event = None
            for attempt in range(self.max_attempts):
                attempts += 1
                latest = latest_event_time(state.horizon_s)
                schema = event_schema(options, t_min, latest) if self.constrained else None
                completion = self._complete(prompt, schema, seed=rng.randrange(2**31))
                tokens += completion.prompt_tokens + completion.completion_tokens
                event = self._to_event(completion.text, t_min, latest)
                if event is not None:
                    break
            if event is None:
                failed = True
                break
            events.append(event)
        record = {"id": None, "generator": self.label, "model": self.client().model, "seed": seed,
                  "temperature": self.temperature, "tokens": tokens, "attempts": attempts,
                  "prompt_hash": hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:16],
                  "reason": None}
        if failed or not events:
            record["reason"] = "the model's output could not be read as an event"
            self.records.append(record)
            return None
        description, more, described_by = self._describe(kg, events, seed=rng.randrange(2**31))
        record["tokens"] += more
        scenario = Scenario(
            id=scenario_id("llm", state.topology, record["prompt_hash"], seed, state.iteration, k),
            description=description, topology=state.topology, horizon_s=state.horizon_s, events=events,
            provenance=Provenance(generator=self.label, model=record["model"], seed=seed, iteration=state.iteration,
                                  prompt_hash=record["prompt_hash"],
                                  extra={"temperature": self.temperature, "tokens": record["tokens"],
                                         "attempts": attempts, "shortlist": offered,
                                         "description": described_by,
                                         **({"continues": continues} if continues else {})}))
        record["id"] = scenario.id     # its verdict is the validator's, at the edge (the campaign loop)
        self.records.append(record)
        return scenario

    def _width(self, state: GenState) -> int:
        """Candidates offered per step: with the knowledge graph, :attr:`narrow` at the arm's first
        proposal, :attr:`growth` more per proposal in its history, up to :attr:`shortlist_limit` —
        the graph's most critical elements first, the rest of the network as the campaign goes on.
        A small model spreads its choices over what it is offered by its own name preferences
        (SmolLM2-135M, 12 draws each on Geant2012: offered routers DE, AT, SK it wrote DE 8 times;
        offered DE and FR, FR 9 times; offered Geant2012's 64-pair shortlist, DE 0 times in 60
        draws at temperatures 0.7-1.3 — though DE alone loses 85 % of the traffic). Without the
        graph there is no criticality to narrow by: always :attr:`shortlist_limit`."""
        if not self.use_kg:
            return self.shortlist_limit
        return min(self.shortlist_limit, self.narrow + self.growth * len(state.history))

    def _chain_prefix(self, state: GenState, feedback, count: int, allowed,
                      rng: random.Random) -> tuple[str | None, list[Event]]:
        """``(parent id, its events kept)``: with feedback, :data:`CHAIN_SHARE` of the
        multi-event proposals continue one of the three most damaging scenarios so far — its
        first events of an allowed type are kept (they were valid and hurt on the twin) and the
        model writes the rest, chains grown from what worked; else ``(None, [])``."""
        if not (self.use_feedback and feedback is not None and feedback.worst) or count < 2:
            return None, []
        if rng.random() >= CHAIN_SHARE:
            return None, []
        w = feedback.worst[rng.randrange(min(3, len(feedback.worst)))]
        parent = next((s for s in state.history if s.id == w["id"]), None)
        kept = [e for e in parent.events if e.event_type in allowed][:count - 1] if parent is not None else []
        if not kept or kept[-1].timestamp >= latest_event_time(state.horizon_s) - 1.0:
            return None, []         # room left for the model's events before the horizon's tail
        return parent.id, kept

    def _options(self, kg, events, t_min, allowed) -> dict[str, list[str]]:
        if self.use_kg:
            return admissible_events(kg, events, at=t_min, event_types=allowed)
        return {et: kg.names(event_types.get(et).target_kind) for et in allowed
                if kg.names(event_types.get(et).target_kind)}

    def _prompt(self, kg, state, feedback, events, options, count, step) -> str:
        # Static parts first: llama.cpp reuses the cached prefix of the previous prompt.
        parts = []
        if self.use_kg:
            parts.append("Network context:\n" + kg_context(kg, None))
        else:
            parts.append(f"Network {kg.name}. Routers: " + ", ".join(kg.routers[:60]))
        if self.use_feedback and feedback is not None and not feedback.is_empty():
            parts.append("Earlier results (aim for more damage than these):\n" + feedback.as_text())
        parts.append(f"Scenario of {count} events, horizon {state.horizon_s:.0f} s.")
        if events:
            parts.append("Events so far: " + "; ".join(
                f"{e.event_type} on {e.target} at {e.timestamp:g} s" for e in events)
                + ". The next event must follow causally from them and come later.")
            if self.use_kg:
                parts.append(kg_context(kg, events[-1].target).split("\n", 2)[-1])
        parts.append(f"Write event {step + 1}. Event types: {', '.join(options)}. " + self._targets_line(kg, options, events))
        parts.append('Reply as {"event_type": ..., "target": ..., "timestamp": ..., "severity": "low|medium|high"}.')
        return "\n\n".join(parts)

    def _targets_line(self, kg, options: dict[str, list[str]], events=(), limit: int = PROMPT_TARGETS) -> str:
        """The candidates as the prompt lists them. With the knowledge graph: most critical first,
        each with the share of all demand crossing it (after events: on the paths the traffic
        takes once they have rerouted it). The order steers the model's event type
        (:func:`~harness.generate.shortlist.by_criticality`) more than its target — hence the
        narrow start (:meth:`_width`). Without the graph: by name."""
        if not self.use_kg:
            names = sorted({t for ts in options.values() for t in ts})
            return "Targets: " + ", ".join(names[:limit]) + (" …" if len(names) > limit else "") + "."
        share = scores(kg, events)
        pairs = sorted(((et, t, event_types.get(et).target_kind) for et, ts in options.items() for t in ts),
                       key=lambda p: (-share.get(p[2], {}).get(p[1], 0.0), p[0], p[1]))
        what = "all traffic crossing it once the events so far have rerouted it" if events else "all traffic crossing it"
        return (f"Candidates, most critical first (share of {what}): "
                + ", ".join(f"{et} {t} ({share.get(kind, {}).get(t, 0.0):.0%})" for et, t, kind in pairs[:limit])
                + (" …" if len(pairs) > limit else "") + ".")

    def _complete(self, prompt: str, schema: dict | None, seed: int):
        client = self.client()
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        if schema is not None and self.compact_grammar:
            from harness.llm.grammar import schema_to_gbnf

            return client.complete(messages, grammar=schema_to_gbnf(schema), temperature=self.temperature,
                                   seed=seed, max_tokens=self.max_tokens)
        return client.complete(messages, schema=schema, temperature=self.temperature, seed=seed,
                               max_tokens=self.max_tokens if schema is not None else 192)

    def _to_event(self, text: str, t_min: float, horizon: float) -> Event | None:
        data = parse_event(text)
        if data is None:
            return None
        try:
            event = Event.model_validate({k: data.get(k) for k in ("event_type", "target", "timestamp", "severity")
                                          if data.get(k) is not None})
        except ValidationError:
            return None
        if self.constrained and not t_min <= event.timestamp <= horizon:
            # Grammars bound digit counts, not values: clamp into the window the schema asked for.
            event = event.model_copy(update={"timestamp": min(max(event.timestamp, t_min), horizon)})
        return event

    def _describe(self, kg, events: list[Event], seed: int) -> tuple[str, int, str]:
        """The scenario's one-sentence description, the tokens it cost, and its source: the
        model's sentence when :func:`supported` by the events, else one derived from them."""
        summary = "; ".join(f"{e.event_type} on {e.target} at {e.timestamp:g} s ({e.severity})" for e in events)
        prompt = (f"Describe this failure scenario on {kg.name} in one sentence for an operator: {summary}. "
                  'Reply as {"description": "..."}.')
        c = self._complete(prompt, DESCRIPTION_SCHEMA if self.constrained else None, seed)
        data = parse_event(c.text) or {}
        text = str(data.get("description") or "").strip()
        tokens = c.prompt_tokens + c.completion_tokens
        if supported(text, events):
            return text[:300], tokens, "model"
        return derived_description(kg, events), tokens, "derived"


#: With feedback, the share of multi-event proposals that continue a most damaging scenario.
CHAIN_SHARE = 0.5


def unseen(options: dict[str, list[str]], events: list[Event], history) -> dict[str, list[str]]:
    """The last step's options less those that would repeat a scenario already proposed (the
    same set of (type, target) events): an evaluation spent on a repeat teaches nothing. In
    the reduced Abilene benchmark the feedback arm spent 25 evaluations on 8 targets, copying
    its few-shot examples. When every option repeats one, all stay offered."""
    seen = {frozenset((e.event_type, e.target) for e in s.events) for s in history}
    if not seen:
        return options
    prev = {(e.event_type, e.target) for e in events}
    out = {et: [t for t in ts if frozenset(prev | {(et, t)}) not in seen] for et, ts in options.items()}
    out = {et: ts for et, ts in out.items() if ts}
    return out or options


def derived_description(kg: KnowledgeGraph, events: list[Event]) -> str:
    """A description that says exactly what the events do, in order."""
    parts = [f"{e.event_type.replace('_', ' ')} on {e.target} at {e.timestamp:g} s ({e.severity})" for e in events]
    head = parts[0][0].upper() + parts[0][1:]
    rest = "".join(f", then {p}" for p in parts[1:])
    return f"{head}{rest} on {kg.name}."[:300]


#: Text a description must not contain: template or markup debris (a real vLLM answer was
#: "{{#type:tblFlapse}}").
_DEBRIS = re.compile(r"[{}<>#\[\]|]|\bnull\b|\bundefined\b")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def supported(text: str, events: list[Event]) -> bool:
    """Does a model's description stand on the events: a sentence (10-300 characters, no
    template debris) that names every event's target (case, spaces and punctuation ignored)?"""
    if not 10 <= len(text) <= 300 or _DEBRIS.search(text):
        return False
    flat = _norm(text)
    return all(_norm(e.target) in flat for e in events)
