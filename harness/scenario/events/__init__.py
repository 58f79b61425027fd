"""Event types, one module each; the registry is :mod:`harness.scenario.types`."""
