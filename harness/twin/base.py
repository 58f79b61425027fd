"""The twin protocol and the registry of twins.

A twin is anything with ``name``, ``run(kg, scenario, mitigation=None) -> ScenarioResult``,
``is_available() -> bool`` and context-manager semantics (``with twin: ...`` acquires and
releases whatever it runs on). Twins are registered by name and made with :func:`make_twin`.
"""

from __future__ import annotations

import importlib.util
from typing import Callable, Protocol, runtime_checkable

from harness.kg.model import KnowledgeGraph
from harness.registry import Registry
from harness.scenario.model import Scenario
from harness.twin.kpi import ScenarioResult


@runtime_checkable
class Twin(Protocol):
    name: str

    def run(self, kg: KnowledgeGraph, scenario: Scenario, mitigation: str | None = None) -> ScenarioResult: ...

    def is_available(self) -> bool: ...

    def __enter__(self) -> "Twin": ...

    def __exit__(self, *exc) -> None: ...


def _builtin(registry: Registry) -> None:
    from harness.twin.flow.twin import FlowTwin

    registry.register("flow", FlowTwin)
    if importlib.util.find_spec("harness.twin.emulation.twin") is not None:
        from harness.twin.emulation.twin import EmulationTwin

        registry.register("emulation", EmulationTwin)


TWINS: Registry[Twin] = Registry("twin", _builtin)


def register_twin(name: str, factory: Callable[..., Twin]) -> None:
    TWINS.register(name, factory)


def twin_names() -> list[str]:
    return TWINS.names()


def make_twin(name: str, **options) -> Twin:
    """A twin by registered name; unknown names are refused with the known ones listed."""
    return TWINS.make(name, **options)
