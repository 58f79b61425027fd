"""Campaign specs: one YAML file says what to compare, on what, with what budget.

Strict: unknown keys are refused, values are validated, defaults live here::

    name: abilene-demo
    topology: topozoo/Abilene
    traffic: {model: gravity, seed: 0, load: 0.5}
    generators:                       # each becomes one arm of the comparison
      - {generator: llm}                              # label defaults to the flags: llm
      - {generator: llm, no_kg: true}                 # llm+no-kg
      - {generator: llm, unconstrained: true}         # llm+unconstrained
      - {generator: llm, no_feedback: true}           # llm+no-feedback
      - {generator: llm, screen: 4}                   # llm+best4: best of 4 on the flow twin
      - {generator: rule}
      - {generator: replay, incidents: topologies/incidents/abilene.jsonl}
      - {generator: random}
    budget: {iterations: 2, per_iteration: 3}
    twins: {flow: true, emulation: {top_k: 1, sample: 1}}
    mitigation: [auto]
    event_types: [fiber_link_failure, router_failure]   # the operator's scope (default: every type)
    max_events: 3                     # ... and the attack budget: events per scenario
    horizon_s: 600
    seed: 1
    llm: {url: null, model: null, temperature: 0.7}   # null url: the embedded model
    fail_on: [sla]     # exit 3 when any result violates a service's SLA after mitigation (default: [])
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import CampaignError
from harness.generate.registry import generator_names
from harness.mitigate import STRATEGIES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Traffic(_Strict):
    model: Literal["gravity", "uniform"] = "gravity"
    seed: int = 0
    load: float = Field(default=0.5, gt=0, le=1)


class GeneratorArm(_Strict):
    generator: str
    label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+-]{1,40}$")
    unconstrained: bool = False
    no_kg: bool = False
    no_feedback: bool = False
    #: best-of-n on the flow twin (llm only): n candidates per scenario, the most damaging valid kept
    screen: int = Field(default=1, ge=1, le=16)
    incidents: str | None = None

    @model_validator(mode="after")
    def _flags(self):
        known = generator_names()
        if self.generator not in known:
            raise ValueError(f"unknown generator {self.generator!r}; known: {', '.join(known)}")
        if self.generator != "llm" and (self.unconstrained or self.no_kg or self.no_feedback or self.screen > 1):
            raise ValueError(f"unconstrained/no_kg/no_feedback/screen apply to the llm generator, not {self.generator}")
        if self.incidents and self.generator != "replay":
            raise ValueError("incidents applies to the replay generator")
        if self.label is None:
            flags = [f for f, on in (("unconstrained", self.unconstrained), ("no-kg", self.no_kg),
                                     ("no-feedback", self.no_feedback), (f"best{self.screen}", self.screen > 1)) if on]
            self.label = self.generator + "".join(f"+{f}" for f in flags)
        return self


class Budget(_Strict):
    iterations: int = Field(default=2, ge=1, le=1000)
    per_iteration: int = Field(default=3, ge=1, le=10000)


class EmulationSel(_Strict):
    top_k: int = Field(default=1, ge=0)
    sample: int = Field(default=0, ge=0)


class Twins(_Strict):
    flow: Literal[True] = True
    emulation: EmulationSel | None = None


class LLMOptions(_Strict):
    url: str | None = None
    model: str | None = None
    temperature: float = Field(default=0.7, ge=0, le=2)


class CampaignSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    topology: str
    traffic: Traffic = Field(default_factory=Traffic)
    generators: list[GeneratorArm] = Field(min_length=1)
    budget: Budget = Field(default_factory=Budget)
    twins: Twins = Field(default_factory=Twins)
    mitigation: list[str] = Field(default_factory=lambda: ["auto"], min_length=1)
    #: The operator's scope: the event types generators may use (default: all) and, with
    #: ``max_events``, the attack budget. Proposals outside it are rejected (rule ``scope``),
    #: whichever arm made them, so arms compare at the same budget.
    event_types: list[str] | None = Field(default=None, min_length=1)
    max_events: int = Field(default=3, ge=1, le=20)
    horizon_s: float = Field(default=600.0, gt=0)
    seed: int = 0
    llm: LLMOptions = Field(default_factory=LLMOptions)
    #: ``[sla]``: ``ani campaign run`` exits 3 when any result's steady state (its mitigated
    #: phase, or failure phase without mitigation) violates a knowledge-graph service's SLA
    fail_on: list[Literal["sla"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self):
        labels = [g.label for g in self.generators]
        dup = sorted({l for l in labels if labels.count(l) > 1})
        if dup:
            raise ValueError(f"generator labels must be unique; repeated: {', '.join(dup)} (set label:)")
        if self.event_types is not None:
            from harness.scenario import types as event_types

            unknown = [t for t in self.event_types if t not in event_types.names()]
            if unknown:
                raise ValueError(f"unknown event type {unknown[0]!r} in event_types; choose from "
                                 f"{', '.join(event_types.names())}")
        bad = [m for m in self.mitigation if m != "none" and m not in STRATEGIES]
        if bad:
            raise ValueError(f"unknown mitigation {bad[0]!r}; choose from none, {', '.join(STRATEGIES)}")
        return self


def load_spec(path: str | Path) -> CampaignSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CampaignError(f"campaign spec not found: {path}") from None
    except yaml.YAMLError as exc:
        raise CampaignError(f"{path}: malformed YAML: {str(exc).splitlines()[0]}") from None
    return parse_spec(data, str(path))


def parse_spec(data, where: str = "campaign spec") -> CampaignSpec:
    if not isinstance(data, dict):
        raise CampaignError(f"{where}: expected a mapping of campaign settings")
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors())
        raise CampaignError(f"{where}: {problems}") from None
