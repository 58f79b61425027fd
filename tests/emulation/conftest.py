"""Shared fixtures for the emulation tests: small in-test topologies and a leak check."""

from __future__ import annotations

import os
import shutil
import subprocess

import networkx as nx
import pytest


def contract_graph(edges, delay_ms=1.0, capacity_mbps=10_000.0) -> nx.Graph:
    """A graph with the topology-contract attributes from ``[(u, v), ...]``."""
    g = nx.Graph(name="test", source="synthetic", dropped=[])
    for u, v in edges:
        g.add_edge(u, v, delay_ms=delay_ms, capacity_mbps=capacity_mbps, dist_km=None,
                   delay_source="synthetic", capacity_source="default", conduit=None, parallel=1)
    for n in g.nodes:
        g.nodes[n].update(label=n, lat=None, lon=None)
    return g


def emulation_available() -> str | None:
    """Why the root tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("ovs-vsctl"):
        return "Open vSwitch not installed"
    if subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True).returncode != 0:
        return "Open vSwitch not running (make ovs)"
    return None


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole session nothing with ani's name prefix may remain."""
    yield
    if emulation_available() is None:
        from harness.twin.emulation.cleanup import leftovers

        left = {k: v for k, v in leftovers().items() if v}
        assert not left, f"emulation tests left things behind: {left}"


@pytest.fixture(scope="session")
def graph():
    """The :func:`contract_graph` builder as a fixture."""
    return contract_graph


@pytest.fixture
def need_emulation():
    why = emulation_available()
    if why:
        pytest.skip(why)
