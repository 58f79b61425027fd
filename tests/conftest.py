"""Shared fixtures: small hand-checked topologies and their knowledge graphs."""

from __future__ import annotations

import pytest

from harness.kg import build_kg
from harness.topology import load_topology


@pytest.fixture(scope="session")
def abilene():
    return load_topology("topozoo/Abilene")


@pytest.fixture(scope="session")
def abilene_kg(abilene):
    return build_kg(abilene)


@pytest.fixture(scope="session")
def bridge_kg():
    return build_kg(load_topology("line_bridge"))
