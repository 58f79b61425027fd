"""The one exception tree of ani.

Every error ani raises on purpose derives from :class:`AniError`; the CLI catches
it, prints ``error: <message>`` and exits non-zero, never a traceback::

    AniError
    ├── ConfigError            bad option values, unknown registry names, strict-config violations
    ├── TopologyError          unknown topology name, malformed or empty graph files
    ├── KnowledgeGraphError    unknown KG node, malformed KG file
    ├── ScenarioError          malformed scenario files (YAML/JSON syntax, wrong shape)
    │   └── ScenarioInvalid    well-formed but causally invalid: carries every reason
    ├── TwinError              a twin could not run a scenario
    │   ├── EmulationError     Mininet / OVS / injection / probe failures
    │   └── ControllerError    the SDN controller is unreachable, died, or refused a request
    ├── LLMError               model server down, model missing, unusable output
    ├── CampaignError          campaign spec, storage, resume and integrity problems
    └── RemoteError            SSH, host key, remote execution and Dask dispatch problems
"""

from __future__ import annotations


class AniError(Exception):
    """Root of every error ani raises deliberately."""


class ConfigError(AniError):
    """An option, registry name or configuration value is invalid."""


class TopologyError(AniError):
    """A topology could not be found, read or used."""


class KnowledgeGraphError(AniError):
    """A knowledge-graph lookup or file is invalid."""


class ScenarioError(AniError):
    """A scenario file or record is malformed."""


class ScenarioInvalid(ScenarioError):
    """A scenario violates the causal validity rules.

    ``reasons`` holds one :class:`harness.scenario.validate.Reason` per violation
    (event index, rule, plain-words explanation).
    """

    def __init__(self, scenario_id: str, reasons: list):
        self.scenario_id = scenario_id
        self.reasons = list(reasons)
        lines = "\n".join(f"  {r}" for r in self.reasons)
        super().__init__(f"scenario {scenario_id!r} is invalid:\n{lines}")


class TwinError(AniError):
    """A digital twin could not run a scenario."""


class EmulationError(TwinError):
    """The packet-level emulation failed (Mininet, OVS, injection, probes)."""


class ControllerError(TwinError):
    """The SDN controller is unreachable, died, or refused a request."""


class LLMError(AniError):
    """The language-model backend failed or returned unusable output."""


class CampaignError(AniError):
    """A campaign spec, directory or results file is invalid."""


class RemoteError(AniError):
    """Remote execution (SSH, Vagrant, Dask) failed."""


class VMError(AniError):
    """Building, booting or reaching the VM failed."""


class MissingDependency(AniError):
    """A feature needs an optional dependency (a ``pip`` extra) that is not installed."""
