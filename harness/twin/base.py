"""The twin protocol and the registry of twins.

A twin is anything with ``name``, ``run(kg, scenario, mitigation=None) -> ScenarioResult``,
``is_available() -> bool`` and context-manager semantics (``with twin: ...`` acquires and
releases whatever it runs on). Twins are registered by name and made with :func:`make_twin`.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from harness.errors import ConfigError
from harness.kg.model import KnowledgeGraph
from harness.scenario.model import Scenario
from harness.twin.kpi import ScenarioResult


@runtime_checkable
class Twin(Protocol):
    name: str

    def run(self, kg: KnowledgeGraph, scenario: Scenario, mitigation: str | None = None) -> ScenarioResult: ...

    def is_available(self) -> bool: ...

    def __enter__(self) -> "Twin": ...

    def __exit__(self, *exc) -> None: ...


_TWINS: dict[str, Callable[..., Twin]] = {}


def register_twin(name: str, factory: Callable[..., Twin]) -> None:
    if name in _TWINS:
        raise ConfigError(f"twin {name!r} is already registered")
    _TWINS[name] = factory


def twin_names() -> list[str]:
    _load_builtin()
    return list(_TWINS)


def make_twin(name: str, **options) -> Twin:
    """A twin by registered name; unknown names are refused with the known ones listed."""
    _load_builtin()
    try:
        factory = _TWINS[name]
    except KeyError:
        raise ConfigError(f"unknown twin {name!r}; known: {', '.join(_TWINS)}") from None
    return factory(**options)


def _load_builtin() -> None:
    if "flow" not in _TWINS:
        from harness.twin.flow.twin import FlowTwin

        register_twin("flow", FlowTwin)
    if "emulation" not in _TWINS:
        try:
            from harness.twin.emulation.twin import EmulationTwin
        except ImportError:
            return
        register_twin("emulation", EmulationTwin)
