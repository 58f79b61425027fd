"""Adversarial power at an equal attack budget (issue 14 item 3): how close each generator gets to
the exhaustive worst case.

    .venv/bin/python benchmarks/adversarial.py [--topologies topozoo/Abilene,topozoo/Geant2012,topozoo/TataNld]
        [--budgets 25,50,100] [--seeds 3] [--first-seed 0] [--k 2] [--arms llm,llm+no-kg,...] [--json out.json]
        [--plot out.png]
    .venv/bin/python benchmarks/adversarial.py --merge seed0.json seed1.json ... [--json all.json] [--plot out.png] [--markdown]

The operator's scope is the same for every arm: ``event_types`` fiber_link_failure,
router_failure, srlg_failure and at most ``--k`` events per scenario (the attack budget), in a
campaign spec (proposals outside it are rejected with the rule ``scope``). The reference is
``ani sweep``'s exhaustive worst case over every combination of up to ``k`` failed links,
routers and SRLGs on the flow twin. Per topology and seed one campaign runs every arm side by
side (mutate works on what all arms found), ``ceil(max budget / 5)`` iterations of 5 proposals,
flow twin, no mitigation; an arm's evaluations are its flow-twin runs in order (plus the
flow-twin runs a best-of-n arm spends screening). Printed per arm, mean ± spread over seeds:
best found / exhaustive worst at each budget, the area under the best-so-far curve (as a share
of the worst, over the largest budget), the mean impact of the arm's scenarios (a share of the
worst), validity, distinct targets, mean cascade depth — and the
goals: the ``llm`` arm >= 90 % of the worst within 100 evaluations, above ``random`` and ``rule``
at every budget. ``--plot``: per topology, each arm's best-so-far curve (mean over seeds, a band
from the lowest to the highest seed) against the exhaustive worst. ``--markdown``: the tables as
the README has them. ``--merge``: the tables and plot of earlier ``--json`` runs together (seeds or
arms run apart, same budgets).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign import CampaignStore, parse_spec, run_campaign  # noqa: E402
from harness.kg import kg_from_ref  # noqa: E402
from harness.twin.sweep import sweep  # noqa: E402

ARMS = {"llm": {"generator": "llm"}, "llm+no-kg": {"generator": "llm", "no_kg": True},
        "llm+unconstrained": {"generator": "llm", "unconstrained": True},
        "llm+no-feedback": {"generator": "llm", "no_feedback": True},
        "llm+best4": {"generator": "llm", "screen": 4},
        "random": {"generator": "random"}, "rule": {"generator": "rule"}, "greedy": {"generator": "greedy"},
        "mutate": {"generator": "mutate"}, "replay": {"generator": "replay"}}
SCOPE = ["fiber_link_failure", "router_failure", "srlg_failure"]
KINDS = ("link", "router", "srlg")
PER_ITERATION = 5


def curves(store: CampaignStore) -> dict[str, dict]:
    """Per arm: the loss of each evaluation in order, and what the arm's scenarios were."""
    scen = {r["scenario"]["id"]: r for r in store.scenarios()}
    out: dict[str, dict] = {}
    rows = sorted(((m["iteration"], m["label"], r.scenario_id, r) for m, r in store.results() if r.twin == "flow"),
                  key=lambda x: (x[0], x[1], x[2]))
    for it, label, sid, r in rows:
        arm = out.setdefault(label, {"losses": [], "own": [], "cascade": [], "targets": set(), "accepted": 0})
        extra = scen[sid]["scenario"].get("provenance", {}).get("extra", {}) if sid in scen else {}
        spent = extra.get("screening", {}).get("flow_twin_evaluations", 1)
        f = r.row("failure")
        arm["losses"] += [0.0] * (spent - 1) + [f.loss_pct or 0.0]   # screening runs count as evaluations
        arm["own"] += [False] * (spent - 1) + [True]
        arm["cascade"].append(f.cascade_depth or 0)
        arm["targets"] |= {e["target"] for e in scen[sid]["scenario"]["events"]} if sid in scen else set()
        arm["accepted"] += 1
    for label in {r["label"] for r in store.rejected()} | set(out):
        arm = out.setdefault(label, {"losses": [], "own": [], "cascade": [], "targets": set(), "accepted": 0})
        arm["rejected"] = sum(1 for r in store.rejected() if r["label"] == label)
    return out


def best_so_far(losses: list[float], budget: int) -> list[float]:
    best, out = 0.0, []
    for x in losses[:budget]:
        best = max(best, x)
        out.append(best)
    return out + [best] * (budget - len(out))


def spread(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    m = statistics.mean(xs)
    return f"{m:.2f}" + (f" ± {statistics.pstdev(xs):.2f}" if len(xs) > 1 else "")


def run_topology(topo: str, args, arms: list[str], budgets: list[int], done=lambda data: None) -> dict:
    """One topology: the exhaustive reference, then one campaign per seed; per arm, a list per
    figure with one entry per seed (``curves``: the best-so-far share of the worst, per evaluation).
    ``done`` gets the figures so far after each seed (the benchmark saves them: a run cut short
    keeps its finished seeds)."""
    iterations = math.ceil(budgets[-1] / PER_ITERATION)
    kg = kg_from_ref(topo, seed=0)
    t0 = time.perf_counter()
    ref_rows = sweep(kg, args.k, kinds=KINDS)
    worst = ref_rows[0]
    print(f"\n{topo}: exhaustive worst at k={args.k}: {' + '.join(worst['elements'])} loses {worst['loss_pct']:.2f} % "
          f"({len(ref_rows)} evaluations, {time.perf_counter() - t0:.0f} s)", flush=True)
    per_arm: dict[str, dict] = {a: {"at": {str(b): [] for b in budgets}, "auc": [], "validity": [], "targets": [],
                                    "cascade": [], "mean": [], "curves": []} for a in arms}
    seeds = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        spec = parse_spec({"name": f"adv-{seed}", "topology": topo,
                           "generators": [{**ARMS[a], "label": a.replace("+", "_")} for a in arms],
                           "budget": {"iterations": iterations, "per_iteration": PER_ITERATION},
                           "mitigation": ["none"], "event_types": SCOPE, "max_events": args.k, "seed": seed})
        with tempfile.TemporaryDirectory(prefix="ani-adversarial-") as d:
            t1 = time.perf_counter()
            run_campaign(Path(d) / "c", spec)
            got = curves(CampaignStore(Path(d) / "c"))
        print(f"  seed {seed}: campaign {time.perf_counter() - t1:.0f} s", flush=True)
        seeds.append(seed)
        ref = worst["loss_pct"] or 1.0
        for a in arms:
            c = got.get(a.replace("+", "_"), {"losses": [], "own": [], "cascade": [], "targets": set(), "accepted": 0,
                                              "rejected": 0})
            curve = [x / ref for x in best_so_far(c["losses"], budgets[-1])]
            r = per_arm[a]
            r["curves"].append(curve)
            for b in budgets:
                r["at"][str(b)].append(curve[b - 1])
            r["auc"].append(sum(curve) / len(curve))
            tried = c["accepted"] + c.get("rejected", 0)
            r["validity"].append(c["accepted"] / tried if tried else 0.0)
            r["targets"].append(len(c["targets"]))
            r["cascade"].append(statistics.mean(c["cascade"]) if c["cascade"] else 0.0)
            # mean impact of the arm's own scenarios (screening runs left out), as a share of the worst
            own = [x for x, n in zip(c["losses"], c["own"]) if n]
            r["mean"].append(statistics.mean(own[:budgets[-1]]) / ref if own else 0.0)
        done({"worst": worst, "seeds": seeds, "arms": per_arm})
    return {"worst": worst, "seeds": seeds, "arms": per_arm}


def print_table(topo: str, data: dict, budgets: list[int]) -> None:
    per_arm = data["arms"]
    print(f"\n{topo}: exhaustive worst {data['worst']['loss_pct']:.2f} % ({' + '.join(data['worst']['elements'])}); "
          f"seeds {', '.join(map(str, data['seeds']))}")
    head = "".join(f"{'@' + str(b):>14}" for b in budgets)
    print(f"  {'arm':<20}{head}{'AUC':>14}{'mean impact':>14}{'validity':>14}{'targets':>10}{'cascade':>9}")
    for a, r in per_arm.items():
        print(f"  {a:<20}" + "".join(f"{spread(r['at'][str(b)]):>14}" for b in budgets)
              + f"{spread(r['auc']):>14}{spread(r['mean']):>14}{spread(r['validity']):>14}"
              + f"{statistics.mean(r['targets']):>10.1f}"
              + f"{statistics.mean(r['cascade']):>9.2f}")
    if "llm" in per_arm:
        at = {a: {b: statistics.mean(r["at"][str(b)]) for b in budgets} for a, r in per_arm.items()}
        top = at["llm"][budgets[-1]]
        behind = [f"{o} @{b} ({at['llm'][b]:.2f} vs {at[o][b]:.2f})" for o in ("random", "rule") if o in at
                  for b in budgets if at["llm"][b] <= at[o][b]]
        print(f"  goal: llm reaches >= 0.90 of the worst within {budgets[-1]}: {top:.2f} "
              f"({'met' if top >= 0.9 else f'short by {0.9 - top:.2f}'}); beats random and rule at every "
              f"budget: {'yes' if not behind else 'no, not above ' + ', '.join(behind)}")
    if "llm" in per_arm and "llm+no-kg" in per_arm:
        kg_arm, no_kg = per_arm["llm"], per_arm["llm+no-kg"]
        wins = [k for k in ("mean", "cascade") if statistics.mean(kg_arm[k]) > statistics.mean(no_kg[k])]
        print(f"  goal: the KG arm beats llm+no-kg on mean impact ({statistics.mean(kg_arm['mean']):.3f} vs "
              f"{statistics.mean(no_kg['mean']):.3f}) and cascade depth ({statistics.mean(kg_arm['cascade']):.3f} vs "
              f"{statistics.mean(no_kg['cascade']):.3f}): {'yes' if len(wins) == 2 else 'no'}")


def arm_label(arm: str, n: int, data: dict) -> str:
    """The arm's name, with its seed count where it ran over fewer seeds (n) than its topology."""
    return arm + (f" ({n} seed{'s' if n != 1 else ''})" if n != len(data["seeds"]) else "")


def markdown(report: dict) -> str:
    """The tables as Markdown (the README's): per topology and arm, the mean over seeds with the
    lowest and highest seed in brackets where they differ; arms in the benchmark's order, an arm
    run over fewer seeds than the topology's with its count."""
    budgets = report["budgets"]

    def cell(xs: list[float], ranged: bool = True) -> str:
        m = f"{statistics.mean(xs):.2f}"
        lo, hi = f"{min(xs):.2f}", f"{max(xs):.2f}"
        return m + (f" ({lo}–{hi})" if ranged and lo != hi else "")

    out = []
    for topo, data in report["topologies"].items():
        w = data["worst"]
        out += [f"**{topo.split('/')[-1]}** — exhaustive worst {w['loss_pct']:.1f} % lost "
                f"({' + '.join(w['elements'])}); seeds {', '.join(map(str, data['seeds']))}:", "",
                "| arm | " + " | ".join(f"@{b}" for b in budgets)
                + " | area under best-so-far | mean impact | cascade depth | validity |",
                "|---|" + "---|" * (len(budgets) + 4)]
        for a in sorted(data["arms"], key=lambda a: list(ARMS).index(a) if a in ARMS else len(ARMS)):
            r = data["arms"][a]
            out.append(f"| {arm_label(a, len(r['curves']), data)} | "
                       + " | ".join(cell(r["at"][str(b)]) for b in budgets)
                       + f" | {cell(r['auc'])} | {cell(r['mean'])} | {cell(r['cascade'], False)} "
                       f"| {cell(r['validity'], False)} |")
        out.append("")
    return "\n".join(out)


def plot(report: dict, path: str) -> None:
    """Per topology: each arm's best-so-far share of the exhaustive worst against evaluations —
    the mean over seeds, a band from the lowest to the highest seed — the worst (1.0) and the
    0.90 goal as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topos = list(report["topologies"])
    fig, axes = plt.subplots(1, len(topos), figsize=(5.2 * len(topos), 4.2), squeeze=False, sharey=True)
    for ax, topo in zip(axes[0], topos):
        data = report["topologies"][topo]
        for a, r in data["arms"].items():
            cs = [c for c in r["curves"] if c]
            if not cs:
                continue
            n = min(map(len, cs))
            x = list(range(1, n + 1))
            cols = list(zip(*(c[:n] for c in cs)))
            line, = ax.plot(x, [statistics.mean(v) for v in cols], label=arm_label(a, len(cs), data),
                            lw=2.2 if a == "llm" else 1.4)
            if len(cs) > 1:
                ax.fill_between(x, [min(v) for v in cols], [max(v) for v in cols], color=line.get_color(), alpha=0.15)
        ax.axhline(1.0, color="black", lw=1, ls="--", label="exhaustive worst")
        ax.axhline(0.9, color="grey", lw=0.8, ls=":", label="goal 0.90")
        ax.set_title(f"{topo} ({len(data['seeds'])} seed{'s' if len(data['seeds']) != 1 else ''})")
        ax.set_xlabel("evaluations")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best found / exhaustive worst")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"\nplotted {path}")


def merge(paths: list[str]) -> dict:
    """Earlier ``--json`` reports as one: each topology's per-seed figures gathered arm by arm (runs
    may cover other arms over the same seeds). An arm's seed met again is kept from the first run
    that has it, and the note says whether the later run agreed (the campaigns are seeded)."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    out = {"k": reports[0]["k"], "budgets": reports[0]["budgets"], "topologies": {}}
    seen: dict[tuple[str, str, int], list[float]] = {}
    for p, rep in zip(paths, reports):
        if rep["k"] != out["k"] or rep["budgets"] != out["budgets"]:
            raise SystemExit(f"error: {p} has k={rep['k']} budgets {rep['budgets']}, the first has "
                             f"k={out['k']} budgets {out['budgets']}")
        for topo, data in rep["topologies"].items():
            if "curves" not in next(iter(data["arms"].values()), {}):
                raise SystemExit(f"error: {p} was written before the benchmark kept its curves; run it again")
            have = out["topologies"].setdefault(topo, {"worst": data["worst"], "seeds": [], "arms": {}})
            have["seeds"] = sorted(set(have["seeds"]) | set(data["seeds"]))
            for a, r in data["arms"].items():
                acc = have["arms"].setdefault(a, {k: ({} if k == "at" else []) for k in r})
                for i, seed in enumerate(data["seeds"]):
                    curve = r["curves"][i]
                    if (topo, a, seed) in seen:
                        same = seen[(topo, a, seed)] == curve
                        print(f"note: {p} repeats arm {a} seed {seed} on {topo} "
                              f"({'identical' if same else 'different'} curve); kept the first")
                        continue
                    seen[(topo, a, seed)] = curve
                    for k, v in r.items():
                        if k == "at":
                            for b, xs in v.items():
                                acc["at"].setdefault(b, []).append(xs[i])
                        else:
                            acc[k].append(v[i])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--topologies", default="topozoo/Abilene,topozoo/Geant2012,topozoo/TataNld")
    ap.add_argument("--budgets", default="25,50,100")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--plot", help="draw the best-so-far curves into this PNG")
    ap.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="tables and plot of earlier --json runs together")
    args = ap.parse_args()
    if args.merge:
        report = merge(args.merge)
        budgets = report["budgets"]
    else:
        budgets = sorted(int(b) for b in args.budgets.split(","))
        arms = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            ap.error(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; k = {args.k}; scope "
              f"{', '.join(SCOPE)}; budgets {budgets}; {args.seeds} seed(s); arms {', '.join(arms)}", flush=True)
        report = {"k": args.k, "budgets": budgets, "topologies": {}}
        for topo in [t.strip() for t in args.topologies.split(",") if t.strip()]:
            def save(data, topo=topo):
                report["topologies"][topo] = data
                if args.json:
                    Path(args.json).write_text(json.dumps(report, indent=1, default=list))

            report["topologies"][topo] = run_topology(topo, args, arms, budgets, save)
            print_table(topo, report["topologies"][topo], budgets)
    if args.merge:
        for topo, data in report["topologies"].items():
            print_table(topo, data, budgets)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=list))
        print(f"\nwritten {args.json}")
    if args.markdown:
        print("\n" + markdown(report))
    if args.plot:
        plot(report, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
