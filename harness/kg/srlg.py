"""Shared-risk link groups: links that fail together.

Two sources: links whose files name the same ``conduit``; and *proximity* — links whose
geographic midpoints lie within ``radius_km`` of a seed link's midpoint, standing for
fibres that share a duct or a right of way near the same place. Seeds are taken in
sorted link order and each link joins at most one proximity group (no chaining across a
continent). Links without coordinates join only conduit groups.
"""

from __future__ import annotations

import math

import networkx as nx

from harness.topology.geo import haversine_km, midpoint
from harness.topology.load import link_id

DEFAULT_SRLG_RADIUS_KM = 100.0


def find_srlgs(topology: nx.Graph, radius_km: float = DEFAULT_SRLG_RADIUS_KM) -> list[dict]:
    """``[{"name", "links", "reason"}]``, deterministic: sorted links, numbered in order."""
    groups: list[tuple[list[str], str]] = []
    conduits: dict[str, list[str]] = {}
    for u, v, d in topology.edges(data=True):
        if d.get("conduit"):
            conduits.setdefault(str(d["conduit"]), []).append(link_id(u, v))
    groups += [(sorted(links), "conduit") for _, links in sorted(conduits.items()) if len(links) > 1]
    if radius_km > 0:
        mids = {}
        for u, v in topology.edges():
            a, b = topology.nodes[u], topology.nodes[v]
            if None not in (a.get("lat"), a.get("lon"), b.get("lat"), b.get("lon")):
                mids[link_id(u, v)] = midpoint(a["lat"], a["lon"], b["lat"], b["lon"])
        items = sorted(mids.items())
        # Grid bucketing keeps the neighbour search near-linear on large graphs.
        cell = max(radius_km / 111.0, 1e-6)
        buckets: dict[tuple[int, int], list[int]] = {}
        for i, (_, (lat, lon)) in enumerate(items):
            buckets.setdefault((math.floor(lat / cell), math.floor(lon / cell)), []).append(i)
        taken: set[int] = set()
        for i, (li, (lat, lon)) in enumerate(items):
            if i in taken:
                continue
            bx, by = math.floor(lat / cell), math.floor(lon / cell)
            span = max(1, math.ceil(1 / max(math.cos(math.radians(lat)), 1e-3)))
            members = [i] + sorted(
                j for dx in (-1, 0, 1) for dy in range(-span, span + 1)
                for j in buckets.get((bx + dx, by + dy), ())
                if j != i and j not in taken and haversine_km(lat, lon, *items[j][1]) <= radius_km)
            if len(members) > 1:
                taken.update(members)
                groups.append((sorted(items[j][0] for j in members), "proximity"))
    groups.sort(key=lambda g: g[0])
    return [{"name": f"srlg{i}", "links": links, "reason": reason} for i, (links, reason) in enumerate(groups, 1)]
