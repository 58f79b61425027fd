"""A one-screen summary of a topology graph (plain data, for the CLI and reports)."""

from __future__ import annotations

import networkx as nx


def summarise(g: nx.Graph) -> dict:
    delays = [d["delay_ms"] for _, _, d in g.edges(data=True)]
    caps = [d["capacity_mbps"] for _, _, d in g.edges(data=True)]
    return {
        "name": g.graph.get("name"),
        "source": g.graph.get("source"),
        "routers": g.number_of_nodes(),
        "links": g.number_of_edges(),
        "diameter_hops": nx.diameter(g) if g.number_of_nodes() <= 2000 else None,
        "delay_min": min(delays), "delay_mean": sum(delays) / len(delays), "delay_max": max(delays),
        "delay_from_distance": sum(d.get("delay_source") == "distance" for _, _, d in g.edges(data=True)),
        "cap_min": min(caps), "cap_mean": sum(caps) / len(caps), "cap_max": max(caps),
        "cap_from_data": sum(d.get("capacity_source") == "data" for _, _, d in g.edges(data=True)),
    }
