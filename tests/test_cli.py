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


def test_version_and_count_ranges_and_mutate_needs_parents(tmp_path):
    from importlib.metadata import version

    r = run("--version")
    assert r.exit_code == 0 and r.output.strip() == f"ani, version {version('ani-harness')}"
    r = run("generate", "--topology", "topozoo/Abilene", "--generator", "rule", "--count", "-3",
            "-o", str(tmp_path / "x.jsonl"))
    assert r.exit_code == 2 and "-3 is not in the range x>=1" in r.output
    r = run("generate", "--topology", "topozoo/Abilene", "--generator", "mutate", "-o", str(tmp_path / "x.jsonl"))
    assert r.exit_code == 1 and "error: --generator mutate needs --from FILE" in r.output
    assert not (tmp_path / "x.jsonl").exists()


def test_duplicates_are_reported_as_such(tmp_path):
    # Abilene has 14 links and 11 routers: rule proposals repeat after 36 (with power outages)
    r = run("generate", "--topology", "topozoo/Abilene", "--generator", "rule", "--count", "40",
            "-o", str(tmp_path / "r.jsonl"))
    assert r.exit_code == 0, r.output
    assert "40 valid of 40 attempted" in r.output and "36 distinct, 4 duplicates of earlier ones" in r.output


def test_ctrl_c_exits_130_and_a_campaign_says_how_to_resume(tmp_path):
    """SIGINT once the campaign has written its first units: exit 130, a hint to resume."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    spec = {"name": "ctrlc", "topology": "topozoo/Abilene", "generators": [{"generator": "rule"}, {"generator": "random"}],
            "budget": {"iterations": 200, "per_iteration": 3}, "mitigation": ["auto", "none"], "seed": 1}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    root = tmp_path / "c"
    # the child restores Python's SIGINT handler: a background job (`make test &`) inherits it ignored
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from harness.cli.main import main; sys.argv = ['ani'] + sys.argv[1:]; main()")
    proc = subprocess.Popen([sys.executable, "-c", code, "campaign", "run", str(tmp_path / "spec.yaml"), "-o", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(root.glob("results/*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = err.decode(errors="replace")
    assert proc.returncode == 130, err[-2000:]
    assert f"interrupted; continue with: ani campaign run {root} --resume" in err
    assert "Traceback" not in err and "Aborted!" not in err


def test_generate_writes_scenarios_to_stdout_and_refuses_unknown_extensions(tmp_path):
    import subprocess
    import sys

    code = "from harness.cli.main import main; import sys; sys.argv = ['ani'] + sys.argv[1:]; main()"
    p = subprocess.run([sys.executable, "-c", code, "generate", "--topology", "topozoo/Abilene", "--generator", "rule",
                        "--count", "3", "-o", "-"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in p.stdout.splitlines()]      # stdout holds the scenarios only
    assert len(records) == 3 and all(r["events"] for r in records)
    assert "3 valid of 3 attempted" in p.stderr and not (tmp_path / "-").exists()
    assert "━" not in p.stdout + p.stderr          # no progress bar when stderr is not a terminal
    r = run("generate", "--topology", "topozoo/Abilene", "--generator", "rule", "--count", "2",
            "-o", str(tmp_path / "out.txt"))
    assert r.exit_code == 1 and "unknown scenario file type .txt" in r.output
    assert not (tmp_path / "out.txt").exists()


def test_run_takes_several_files_and_writes_one_result_per_line(tmp_path):
    r = run("run", "scenarios/abilene/fiber_cut.yaml", "scenarios/abilene/power_outage.yaml", "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["scenario_id"] for line in lines] == ["abilene-fiber-cut", "abilene-power-outage"]
    r = run("run", "scenarios/abilene/fiber_cut.yaml", "-o", str(tmp_path / "one"))
    lines = (tmp_path / "one" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["rows"]["failure"]["loss_pct"] >= 0   # same schema for one


def test_campaign_summary_says_what_the_directory_holds_after_a_resume(tmp_path):
    import yaml

    spec = {"name": "tiny", "topology": "topozoo/Abilene", "generators": [{"generator": "rule"}],
            "budget": {"iterations": 1, "per_iteration": 2}, "mitigation": ["auto", "none"], "seed": 1}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    r = run("campaign", "run", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "c"))
    assert r.exit_code == 0 and "runs: 4 on flow; 4 results in the directory" in r.output, r.output
    r = run("campaign", "run", str(tmp_path / "c"), "--resume")
    assert r.exit_code == 0 and "runs: nothing new; 4 results in the directory" in r.output, r.output


def test_kg_query_reads_forgiving_names():
    r = run("kg", "query", "topozoo/Abilene", "--dependents", "KansasCity-Denver")
    assert r.exit_code == 0 and "flow:" in r.output
    assert run("kg", "query", "topozoo/Abilene", "--dependents", "Denver-KansasCity").output == r.output
    r = run("kg", "query", "topozoo/Abilene", "--dependents", "kansas citty")
    assert r.exit_code == 1 and "did you mean KansasCity" in r.output


def test_sweep_prints_and_writes_rows(tmp_path):
    r = run("sweep", "--topology", "topozoo/Abilene", "--k", "1", "--top", "3", "-o", str(tmp_path / "s.jsonl"))
    assert r.exit_code == 0, r.output
    assert "14 failure sets on topozoo/Abilene, worst first" in r.output
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 14


def test_topo_show_lists_routers_links_and_json_orientation():
    r = run("topo", "show", "topozoo/Abilene")
    assert "routers: 11" in r.output and "KansasCity (Kansas City)" in r.output
    assert "links: 14" in r.output and "Denver-KansasCity" in r.output and "4.460" in r.output
    data = json.loads(run("topo", "show", "topozoo/Abilene", "--json").output)
    assert all(l["id"] == f"{l['u']}-{l['v']}" for l in data["links"])     # never the other orientation
    big = run("topo", "show", "as:300")
    assert big.exit_code == 0 and "… and 240 more" in big.output


def test_generate_with_nothing_valid_exits_1_and_keeps_every_rejection(tmp_path, monkeypatch):
    """A generator whose one scenario the validator refuses and whose other output could not
    be read at all (as the unconstrained LLM's can be): both rejections are written with
    their reasons, and the command exits 1 unless --min-valid 0 (a test seam beside the real
    generators, which test_readme runs)."""
    from harness.generate import registry
    from harness.scenario.model import Scenario

    class Broken:
        def __init__(self):
            self.records = []

        def propose(self, kg, state, feedback, n, seed):
            if seed % 2:
                self.records.append({"id": None, "reason": "the model's output could not be read as an event"})
                return []
            s = Scenario.model_validate({"id": f"bad-{seed}", "events": [
                {"event_type": "fiber_link_failure", "target": "Gotham-Metropolis", "timestamp": 1.0}]})
            self.records.append({"id": s.id, "reason": None})
            return [s]

    monkeypatch.setitem(registry.GENERATORS._factories, "broken", lambda **kw: Broken())
    out = tmp_path / "x.jsonl"
    r = run("generate", "--topology", "topozoo/Abilene", "--generator", "broken", "--count", "2", "-o", str(out))
    assert r.exit_code == 1 and "0 valid scenarios, fewer than --min-valid 1" in r.output
    lines = [json.loads(x) for x in (tmp_path / "x.rejected.jsonl").read_text().splitlines()]
    assert [x["reasons"][0]["rule"] for x in lines] == ["R1-target", "unreadable"]
    assert lines[1]["scenario"] is None and "could not be read" in lines[1]["reasons"][0]["message"]
    assert "2 rejected proposals" in r.output and out.read_text() == ""
    r = run("generate", "--topology", "topozoo/Abilene", "--generator", "broken", "--count", "2",
            "--min-valid", "0", "-o", str(out))
    assert r.exit_code == 0


def test_run_cascade_options_change_the_outcome(tmp_path):
    """--alpha / --no-cascade reach the twin: on Abilene's fiber cut the default rule fails
    routers (depth 1); --no-cascade leaves only the cut's own congestion; a larger alpha loses
    no more than the default."""
    import json

    def failure(*opts):
        out = tmp_path / "-".join(o.strip("-") for o in opts) if opts else tmp_path / "default"
        r = run("run", "scenarios/abilene/fiber_cut.yaml", "--mitigate", "none", *opts, "-o", str(out))
        assert r.exit_code == 0, r.output
        return json.loads((out / "results.jsonl").read_text())["rows"]["failure"]

    base, off, loose = failure(), failure("--no-cascade"), failure("--alpha", "2")
    assert base["cascade_depth"] >= 1 and off["cascade_depth"] == 0
    assert off["loss_pct"] < base["loss_pct"] and loose["loss_pct"] <= base["loss_pct"]
    r = run("run", "scenarios/abilene/fiber_cut.yaml", "--no-cascade", "--alpha", "2")
    assert r.exit_code == 1 and "--no-cascade excludes --alpha" in r.output


def test_generate_llm_only_options_are_refused_for_other_generators(tmp_path):
    for opt in (["--screen", "2"], ["--feedback-from", str(tmp_path)]):
        r = run("generate", "--topology", "topozoo/Abilene", "--generator", "random", *opt, "-o", str(tmp_path / "x.jsonl"))
        assert r.exit_code == 1 and "apply to --generator llm" in r.output


def test_json_output_is_data_on_stdout(tmp_path):
    """--json: one JSON document per result on stdout (the results.jsonl schema), messages on
    stderr — so `ani run … --json | jq` sees data only."""
    import json

    r = CliRunner().invoke(cli, ["run", "scenarios/abilene/fiber_cut.yaml", "scenarios/geant/srlg_failure.yaml",
                                 "--json", "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["scenario_id"] for x in lines] == ["abilene-fiber-cut", "geant-srlg-failure"]
    assert lines == [json.loads(l) for l in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert "wrote" in r.stderr and "wrote" not in r.stdout
    r = CliRunner().invoke(cli, ["sweep", "--topology", "topozoo/Abilene", "--top", "3", "--json"])
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 0 and len(rows) == 3 and rows[0]["loss_pct"] >= rows[-1]["loss_pct"]
    r = CliRunner().invoke(cli, ["doctor", "--json"])
    doc = json.loads(r.stdout)
    assert {c["name"] for c in doc["checks"]} >= {"root", "netem qdisc"}
    assert r.exit_code == (1 if doc["missing"] else 0)


def test_every_result_command_speaks_json(tmp_path):
    """--json on the commands that print results: stdout parses as JSON (a document, or one
    object per line), the messages are on stderr, and the data is the command's."""
    import yaml

    def js(*args, lines=False, code=0):
        r = CliRunner().invoke(cli, list(args))
        assert r.exit_code == code, (args, r.output)
        return [json.loads(l) for l in r.stdout.splitlines()] if lines else json.loads(r.stdout), r

    rows, _ = js("topo", "list", "--source", "topozoo", "--json", lines=True)
    assert any(x["name"] == "topozoo/Abilene" and x["nodes"] == 11 for x in rows)
    doc, r = js("kg", "build", "topozoo/Abilene", "--json", "-o", str(tmp_path / "a.kg.json"))
    assert doc["nodes"]["router"] == 11 and len(doc["busiest_links"]) == 5 and (tmp_path / "a.kg.json").is_file()
    assert doc["busiest_links"][0]["utilisation"] >= doc["busiest_links"][-1]["utilisation"]
    doc, _ = js("kg", "query", "topozoo/Abilene", "--dependents", "Denver-KansasCity", "--json")
    assert doc["of"] == "Denver-KansasCity" and doc["dependents"] and all(isinstance(x, str) for x in doc["dependents"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"id": "bad", "topology": "topozoo/Abilene",
                                   "events": [{"event_type": "fiber_link_failure", "target": "Nowhere-Denver",
                                               "timestamp": 1}]}))
    rows, r = js("scenario", "validate", "scenarios/abilene/fiber_cut.yaml", str(bad), "--json", lines=True, code=1)
    assert [(x["id"], x["valid"]) for x in rows] == [("abilene-fiber-cut", True), ("bad", False)]
    assert rows[0]["events"] == 1 and rows[1]["reasons"][0]["rule"] and "1 of 2 scenarios valid" in r.stderr
    doc, r = js("generate", "--topology", "topozoo/Abilene", "--generator", "rule", "--count", "3", "--json",
                "-o", str(tmp_path / "g.jsonl"))
    assert doc["valid"] == len((tmp_path / "g.jsonl").read_text().splitlines()) == 3 and doc["validity"] == 1.0
    assert "valid of" in r.stderr and doc["diversity"]["distinct_pairs"] >= 1
    r = CliRunner().invoke(cli, ["generate", "--topology", "topozoo/Abilene", "--generator", "rule", "--json", "-o", "-"])
    assert r.exit_code == 1 and "--json" in r.output
    spec = {"name": "tiny", "topology": "topozoo/Abilene", "generators": [{"generator": "rule"}],
            "budget": {"iterations": 1, "per_iteration": 2}, "mitigation": ["auto"], "seed": 1}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    doc, r = js("campaign", "run", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "c"), "--json")
    assert doc["accepted"] == doc["runs"]["flow"] == doc["results_held"] == 2 and doc["root"] == str(tmp_path / "c")
    assert "campaign in" in r.stderr
