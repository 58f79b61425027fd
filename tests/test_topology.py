"""Topology loaders: files, topohub, CAIDA AS-relationships, synthetic graphs, bad input."""

from __future__ import annotations

import logging
import math

import networkx as nx
import pytest

from harness.errors import TopologyError
from harness.topology import DEFAULT_CAPACITY_MBPS, link_id, list_topologies, load_topology
from harness.topology.geo import haversine_km

GRAPHML_HEAD = """<?xml version="1.0" encoding="utf-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="label" attr.type="string" for="node" id="d0"/>
  <key attr.name="Latitude" attr.type="double" for="node" id="d1"/>
  <key attr.name="Longitude" attr.type="double" for="node" id="d2"/>
  <key attr.name="LinkSpeed" attr.type="string" for="edge" id="d3"/>
  <key attr.name="LinkSpeedUnits" attr.type="string" for="edge" id="d4"/>
  <graph edgedefault="undirected">
"""


def write_graphml(tmp_path, body: str, name="t.graphml"):
    p = tmp_path / name
    p.write_text(GRAPHML_HEAD + body + "  </graph>\n</graphml>\n")
    return p


def test_hand_made_graphml_known_distances(tmp_path):
    # Equator points one degree of longitude apart: 2*pi*R/360 km.
    p = write_graphml(tmp_path, """
    <node id="0"><data key="d0">West Hub</data><data key="d1">0</data><data key="d2">0</data></node>
    <node id="1"><data key="d0">East</data><data key="d1">0</data><data key="d2">1</data></node>
    <node id="2"><data key="d0">North</data><data key="d1">1</data><data key="d2">1</data></node>
    <edge source="0" target="1"><data key="d3">2.5</data><data key="d4">G</data></edge>
    <edge source="1" target="2"/>
""")
    g = load_topology(p)
    one_degree = 2 * math.pi * 6371.0088 / 360
    assert sorted(g.nodes) == ["East", "North", "WestHub"]
    e = g.edges["WestHub", "East"]
    assert e["dist_km"] == pytest.approx(one_degree, rel=1e-4)
    assert e["delay_ms"] == pytest.approx(one_degree * 0.005, rel=1e-3)
    assert e["capacity_mbps"] == 2500 and e["capacity_source"] == "data"
    e2 = g.edges["East", "North"]
    assert e2["capacity_mbps"] == DEFAULT_CAPACITY_MBPS and e2["capacity_source"] == "default"
    assert e2["dist_km"] == pytest.approx(one_degree, rel=1e-3)


def test_parallel_edges_collapse_capacity_adds(tmp_path):
    p = write_graphml(tmp_path, """
    <node id="a"><data key="d1">0</data><data key="d2">0</data></node>
    <node id="b"><data key="d1">0</data><data key="d2">2</data></node>
    <edge source="a" target="b"><data key="d3">1</data><data key="d4">G</data></edge>
    <edge source="a" target="b"><data key="d3">10</data><data key="d4">G</data></edge>
""")
    g = load_topology(p)
    assert g.number_of_edges() == 1
    assert g.edges["a", "b"]["capacity_mbps"] == 11_000
    assert g.edges["a", "b"]["parallel"] == 2


def test_disconnected_keeps_largest_component_and_warns(tmp_path, caplog):
    p = write_graphml(tmp_path, """
    <node id="a"/><node id="b"/><node id="c"/><node id="x"/><node id="y"/>
    <edge source="a" target="b"/><edge source="b" target="c"/><edge source="x" target="y"/>
""")
    with caplog.at_level(logging.WARNING, logger="harness"):
        g = load_topology(p)
    assert sorted(g.nodes) == ["a", "b", "c"]
    assert g.graph["dropped"] == ["x", "y"]
    assert "x, y" in caplog.text


def test_duplicate_names_are_disambiguated(tmp_path):
    p = write_graphml(tmp_path, """
    <node id="0"><data key="d0">Paris</data></node>
    <node id="1"><data key="d0">Paris</data></node>
    <edge source="0" target="1"/>
""")
    assert sorted(load_topology(p).nodes) == ["Paris", "Paris_2"]


@pytest.mark.parametrize("body, needle", [
    ("<node id='a'/><node id='a'/><edge source='a' target='a'/>", "duplicate node id"),
    ("<node id='a'/>", "no links"),
    ("", "no nodes"),
    ("<node id='a'><edge", "malformed"),
])
def test_bad_graphml(tmp_path, body, needle):
    with pytest.raises(TopologyError, match=needle):
        load_topology(write_graphml(tmp_path, body))


def test_gml_file(tmp_path):
    p = tmp_path / "t.gml"
    p.write_text('graph [ node [ id 0 label "A" Latitude 0 Longitude 0 ] node [ id 1 label "B" Latitude 0 Longitude 1 ]'
                 ' edge [ source 0 target 1 LinkSpeedRaw 1000000000 ] ]')
    g = load_topology(p)
    assert g.edges["A", "B"]["capacity_mbps"] == 1000
    assert g.graph["source"] == "gml"


def test_as_rel_file(tmp_path):
    g = load_topology("sample_asrel")
    assert g.number_of_nodes() == 6 and g.number_of_edges() == 7
    assert g.edges["AS1", "AS2"]["relationship"] == -1
    bad = tmp_path / "bad.txt"
    bad.write_text("1|2|-1\n1;rm -rf /|2|0\n")
    with pytest.raises(TopologyError, match="line 2"):
        load_topology(bad)


def test_topohub_sources():
    g = load_topology("topozoo/Abilene")
    assert g.number_of_nodes() == 11 and g.number_of_edges() == 14
    ny_chi = g.edges["NewYork", "Chicago"]
    assert ny_chi["dist_km"] == pytest.approx(1146.16)
    lat1, lon1 = g.nodes["NewYork"]["lat"], g.nodes["NewYork"]["lon"]
    lat2, lon2 = g.nodes["Chicago"]["lat"], g.nodes["Chicago"]["lon"]
    assert haversine_km(lat1, lon1, lat2, lon2) == pytest.approx(1146.16, rel=0.01)
    assert load_topology("caida/3356").number_of_nodes() > 300
    assert load_topology("sndlib/polska").number_of_nodes() == 12


def test_synthetic_as_graph_is_seeded():
    a, b, c = load_topology("as:80", seed=1), load_topology("as:80", seed=1), load_topology("as:80", seed=2)
    assert nx.utils.graphs_equal(a, b)
    assert not nx.utils.graphs_equal(a, c)
    assert all(1 <= d["delay_ms"] <= 20 for _, _, d in a.edges(data=True))
    assert nx.is_connected(a)


def test_unknown_name_suggests_closest():
    with pytest.raises(TopologyError, match="did you mean topozoo/Abilene"):
        load_topology("topozoo/Abilen")
    with pytest.raises(TopologyError, match="not found"):
        load_topology("/no/such/file.graphml")
    with pytest.raises(TopologyError, match="as:1"):
        load_topology("as:1")


def test_ids_are_safe_and_link_ids_unambiguous(abilene):
    for n in abilene.nodes:
        assert n.replace("_", "").isalnum()
    assert link_id("NewYork", "Chicago") == "Chicago-NewYork" == link_id("Chicago", "NewYork")


def test_list_topologies():
    rows = list_topologies("sndlib")
    assert any(r["name"] == "sndlib/polska" and r["nodes"] == 12 for r in rows)
    assert {r["source"] for r in rows} == {"sndlib"}
    shipped = {r["name"] for r in list_topologies("shipped")}
    assert {"ring6", "line_bridge", "square"} <= shipped
    with pytest.raises(TopologyError):
        list_topologies("nonsense")
