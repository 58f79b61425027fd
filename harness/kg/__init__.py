"""The knowledge graph: model, builder, files, and free functions over it."""

from harness.kg.build import build_kg, host_name
from harness.kg.io import from_json, kg_from_ref, load_kg, save_kg, to_json
from harness.kg.model import KINDS, RELATIONS, KnowledgeGraph, nid, split
from harness.kg.query import blast_radius, dependents, paths, reachable

__all__ = [
    "KINDS", "RELATIONS", "KnowledgeGraph", "blast_radius", "build_kg",
    "dependents", "from_json", "host_name", "kg_from_ref", "load_kg", "nid", "paths", "reachable", "save_kg",
    "split", "to_json",
]
