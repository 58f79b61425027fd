"""The generator registry: names -> generator factories (built-ins loaded on first use).

Kept apart from :mod:`harness.generate.base` so the generators, which import the base
records, are imported by the registry and never the other way round.
"""

from __future__ import annotations

from typing import Callable

from harness.generate.base import Generator
from harness.errors import ConfigError
from harness.registry import Registry


def _builtin(registry: Registry) -> None:
    from harness.generate.greedy import GreedyGenerator
    from harness.generate.llm import LLMGenerator
    from harness.generate.mutate import MutateGenerator
    from harness.generate.random_gen import RandomGenerator
    from harness.generate.replay import ReplayGenerator
    from harness.generate.rule import RuleGenerator

    for cls in (LLMGenerator, RuleGenerator, RandomGenerator, ReplayGenerator, GreedyGenerator, MutateGenerator):
        registry.register(cls.name, cls)


GENERATORS: Registry[Generator] = Registry("generator", _builtin)


def register_generator(name: str, factory: Callable[..., Generator]) -> None:
    GENERATORS.register(name, factory)


def generator_names() -> list[str]:
    return GENERATORS.names()


def make_generator(name: str, **options) -> Generator:
    return GENERATORS.make(name, **options)


LLM_ONLY = ("unconstrained", "no_kg", "no_feedback")


def make_arm(name: str, *, unconstrained: bool = False, no_kg: bool = False, no_feedback: bool = False,
             screen: int = 1, incidents: str | None = None, **llm) -> Generator:
    """A generator from the options a campaign arm or ``ani generate`` gives it.

    ``unconstrained``/``no_kg``/``no_feedback`` are the LLM ablations; ``incidents`` is the
    replay log; ``llm`` holds the LLM's server and sampling options (``llm_url``, ``model``,
    ``temperature``, ``compact_grammar``). Options that do not apply to ``name`` are refused.
    """
    if name != "llm" and (unconstrained or no_kg or no_feedback or screen > 1
                          or any(v is not None for v in llm.values())):
        raise ConfigError(f"unconstrained/no_kg/no_feedback and the LLM server options apply to the llm "
                          f"generator, not {name}")
    if incidents and name != "replay":
        raise ConfigError(f"incidents applies to the replay generator, not {name}")
    options: dict = {}
    if name == "llm":
        options = dict(constrained=not unconstrained, use_kg=not no_kg, use_feedback=not no_feedback, screen=screen,
                       **{k: v for k, v in llm.items() if v is not None})
    elif incidents:
        options = dict(log=incidents)
    return make_generator(name, **options)
