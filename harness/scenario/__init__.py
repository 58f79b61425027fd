"""Scenarios: the event and scenario records, the event-type registry, the causal validator, files."""

from harness.scenario.io import read_scenarios, write_scenarios
from harness.scenario.model import Event, Provenance, Scenario
from harness.scenario.validate import Reason, check_scenario, validate_scenario

__all__ = ["Event", "Provenance", "Reason", "Scenario", "check_scenario", "read_scenarios", "validate_scenario",
           "write_scenarios"]
