"""Optional dependencies: the core (topologies, knowledge graph, validator, baseline
generators, flow twin, campaigns, reports) needs none of them; the emulation twin, the embedded
model and remote execution each come with a ``pip`` extra (``pyproject.toml``)."""

from __future__ import annotations

import importlib
from types import ModuleType

from harness.errors import MissingDependency

#: module -> the extra that installs it
EXTRA_OF = {"mininet": "emulation", "os_ken": "emulation", "scapy": "emulation", "xllamacpp": "llm",
            "paramiko": "remote", "dask": "remote", "distributed": "remote"}


def hint(module: str) -> str:
    extra = EXTRA_OF.get(module, "all")
    return f"pip install 'ani-harness[{extra}]' (a checkout's `make setup` installs every extra)"


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"{feature} needs the Python package {module!r}, which is not installed: "
                                f"{hint(module)}") from None
