"""Topologies: load any supported source into one annotated networkx graph."""

from harness.topology.load import (
    DEFAULT_CAPACITY_MBPS,
    DEFAULT_DELAY_MS,
    link_id,
    list_topologies,
    load_topology,
    topohub_keys,
)

__all__ = ["DEFAULT_CAPACITY_MBPS", "DEFAULT_DELAY_MS", "link_id", "list_topologies", "load_topology", "topohub_keys"]
