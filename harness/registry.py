"""One registry class for every kind of extension (twins, generators, …).

Names map to factories; unknown and duplicate names are refused loudly with a
:class:`~harness.errors.ConfigError` that lists what is known. Built-in entries are
registered lazily by a ``loader`` on first lookup, so importing a registry stays cheap.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from harness.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, loader: Callable[["Registry[T]"], None] | None = None):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._loader = loader

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader(self)

    def register(self, name: str, factory: Callable[..., T]) -> None:
        if name in self._factories:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._factories[name] = factory

    def names(self) -> list[str]:
        self._load()
        return list(self._factories)

    def make(self, name: str, **options) -> T:
        """A new instance of the entry called ``name``."""
        self._load()
        try:
            factory = self._factories[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self._factories)}") from None
        return factory(**options)
