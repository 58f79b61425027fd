"""Scenario generators (llm, rule, random, replay, greedy, mutate) and their metrics."""

from harness.generate.base import Feedback, GenState, Generator
from harness.generate.registry import generator_names, make_generator, register_generator

__all__ = ["Feedback", "GenState", "Generator", "generator_names", "make_generator", "register_generator"]
