"""The ``ani`` CLI: exit codes and messages, never a traceback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.cli.main import _register, cli

_register()


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output
    return result


def test_topo_show_and_json():
    r = run("topo", "show", "topozoo/Abilene")
    assert r.exit_code == 0 and "11 routers, 14 links" in r.output
    r = run("topo", "show", "ring6", "--json")
    data = json.loads(r.output)
    assert len(data["routers"]) == 6 and len(data["links"]) == 6


def test_topo_list_filters():
    r = run("topo", "list", "--source", "sndlib")
    assert r.exit_code == 0 and "sndlib/polska" in r.output and "topozoo/" not in r.output


@pytest.mark.parametrize("args, words", [
    (["topo", "show", "topozoo/Abilen"], "error: unknown topology 'topozoo/Abilen'; did you mean topozoo/Abilene"),
    (["topo", "show", "missing.graphml"], "error: topology file not found: missing.graphml"),
    (["kg", "query", "topozoo/Abilene", "--dependents", "Gotham"], "error: no element named 'Gotham'"),
    (["kg", "query", "topozoo/Abilene"], "error: give exactly one of"),
    (["scenario", "validate", "nope.yaml"], "error: scenario file not found: nope.yaml"),
])
def test_errors_exit_nonzero_with_message(args, words):
    r = run(*args)
    assert r.exit_code == 1
    assert words in r.output


def test_kg_build_writes_file(tmp_path):
    out = tmp_path / "a.kg.json"
    r = run("kg", "build", "topozoo/Abilene", "--traffic", "uniform", "--seed", "3", "-o", str(out))
    assert r.exit_code == 0 and "110 flow" in r.output
    assert json.loads(out.read_text())["graph"]["traffic"] == "uniform"
    r = run("kg", "query", str(out), "--dependents", "link:Denver-KansasCity")
    assert r.exit_code == 0 and "flow:" in r.output


def test_kg_query_blast_radius():
    r = run("kg", "query", "topozoo/Abilene", "--blast-radius", "scenarios/abilene/fiber_cut.yaml")
    assert r.exit_code == 0
    assert json.loads(r.output)["elements"] == ["link:Denver-KansasCity"]


def test_scenario_validate_exit_codes(tmp_path):
    r = run("scenario", "validate", "scenarios/abilene/fiber_cut.yaml", "scenarios/geant/ddos_spike.yaml")
    assert r.exit_code == 0 and "2 of 2 scenarios valid" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nevents:\n  - {event_type: router_failure, target: 'x; reboot', timestamp: 1}\n"
                   "  - {event_type: warp_drive, target: Denver, timestamp: 2}\n")
    r = run("scenario", "validate", str(bad), "--topology", "topozoo/Abilene")
    assert r.exit_code == 1
    lines = [l for l in r.output.splitlines() if "bad:" in l]
    assert any("event 0: [R1-target] unknown router 'x; reboot'" in l for l in lines)
    assert any("event 1: [schema] unknown event type 'warp_drive'" in l for l in lines)
    malformed = tmp_path / "m.yaml"
    malformed.write_text("id: [")
    r = run("scenario", "validate", str(malformed))
    assert r.exit_code == 1 and r.output.startswith("error: ") and "malformed YAML" in r.output
