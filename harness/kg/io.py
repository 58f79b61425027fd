"""Knowledge graph files: networkx node-link JSON, lossless (relation keys included)."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx

from harness.errors import KnowledgeGraphError
from harness.fileio import atomic_write
from harness.kg.build import build_kg
from harness.kg.model import KINDS, KnowledgeGraph
from harness.topology import load_topology

FORMAT = "ani-kg/1"


def to_json(kg: KnowledgeGraph) -> dict:
    data = nx.node_link_data(kg.graph, edges="edges")
    return {"format": FORMAT, **data}


def from_json(data: dict) -> KnowledgeGraph:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise KnowledgeGraphError(f"not an ani knowledge graph (expected format {FORMAT!r})")
    body = {k: v for k, v in data.items() if k != "format"}
    try:
        g = nx.node_link_graph(body, edges="edges", directed=True, multigraph=True)
    except (KeyError, TypeError, nx.NetworkXError) as exc:
        raise KnowledgeGraphError(f"malformed knowledge graph: {exc}") from None
    bad = [n for n, d in g.nodes(data=True) if d.get("kind") not in KINDS]
    if bad:
        raise KnowledgeGraphError(f"malformed knowledge graph: node {bad[0]!r} has no valid kind")
    return KnowledgeGraph(g)


def save_kg(kg: KnowledgeGraph, path: str | Path) -> None:
    atomic_write(Path(path), json.dumps(to_json(kg)))


def load_kg(path: str | Path) -> KnowledgeGraph:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KnowledgeGraphError(f"knowledge graph file not found: {path}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise KnowledgeGraphError(f"malformed knowledge graph file {path}: {exc}") from None
    return from_json(data)


def kg_from_ref(ref: str, traffic: str = "gravity", seed: int = 0, incidents: str | None = None) -> KnowledgeGraph:
    """A knowledge graph from a saved KG file (``*.kg.json``) or a topology reference."""
    if ref.endswith(".kg.json"):
        return load_kg(ref)
    return build_kg(load_topology(ref, seed=seed), traffic=traffic, seed=seed, incidents=incidents)
