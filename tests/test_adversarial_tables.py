"""benchmarks/adversarial.py's --merge and --markdown, which write the README's tables: runs of
different arms over the same seeds merge arm by arm, a repeated arm and seed is kept once, and
an arm with fewer seeds than its topology is labelled with its count."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("adversarial_bench", ROOT / "benchmarks" / "adversarial.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _arm(curves: list[list[float]]) -> dict:
    """Per-seed figures of one arm, as run_topology writes them (budgets 2 and 4)."""
    return {"at": {"2": [max(c[:2]) for c in curves], "4": [max(c[:4]) for c in curves]},
            "auc": [sum(c) / len(c) for c in curves], "validity": [1.0] * len(curves),
            "targets": [3] * len(curves), "cascade": [0.5] * len(curves), "mean": [c[0] for c in curves],
            "curves": curves}


def _report(seeds: list[int], arms: dict) -> dict:
    return {"k": 2, "budgets": [2, 4],
            "topologies": {"topozoo/Abilene": {"worst": {"loss_pct": 95.2, "elements": ["router:A", "router:B"]},
                                               "seeds": seeds, "arms": arms}}}


def test_merge_gathers_arms_by_seed_and_keeps_a_repeat_once(tmp_path, capsys):
    adv = _bench()
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps(_report([0, 1], {"random": _arm([[0.2, 0.4, 0.4, 0.9], [0.1, 0.1, 0.6, 0.6]]),
                                             "mutate": _arm([[0.5, 0.5, 0.5, 0.5], [0.3, 0.3, 0.3, 0.3]])})))
    # seed 2 of both arms, and random's seed 1 again with another curve
    b.write_text(json.dumps(_report([1, 2], {"random": _arm([[0.9, 0.9, 0.9, 0.9], [0.3, 0.3, 0.3, 0.8]])})))
    merged = adv.merge([str(a), str(b)])
    out = capsys.readouterr().out
    assert "repeats arm random seed 1" in out and "different curve" in out
    data = merged["topologies"]["topozoo/Abilene"]
    assert data["seeds"] == [0, 1, 2]
    assert data["arms"]["random"]["curves"] == [[0.2, 0.4, 0.4, 0.9], [0.1, 0.1, 0.6, 0.6], [0.3, 0.3, 0.3, 0.8]]
    assert data["arms"]["random"]["at"]["4"] == [0.9, 0.6, 0.8]
    assert len(data["arms"]["mutate"]["curves"]) == 2

    md = adv.markdown(merged)
    rows = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| ")}
    assert "random" in rows and "mutate (2 seeds)" in rows          # fewer seeds than the topology's 3
    assert rows["random"].startswith("| random | 0.27 (0.10–0.40) | 0.77 (0.60–0.90) |")
    assert list(rows)[1:] == ["random", "mutate (2 seeds)"]          # the benchmark's arm order
    assert adv.arm_label("llm", 1, data) == "llm (1 seed)" and adv.arm_label("llm", 3, data) == "llm"
