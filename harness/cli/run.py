"""``ani run`` and ``ani sweep``: run scenarios on a twin, sweep all link failures."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.kg import kg_from_ref
from harness.errors import ConfigError
from harness.fileio import atomic_write
from harness.mitigate import STRATEGIES
from harness.scenario import read_scenarios, validate_scenario
from harness.twin import KPIS, PHASES, make_twin

MITIGATIONS = ["none", *STRATEGIES]


@click.command("run")
@click.argument("scenario_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--topology", help="Topology NAME|FILE (default: the scenario's own).")
@click.option("--twin", "twin_name", default="flow", show_default=True, help="flow or emulation.")
@click.option("--mitigate", "mitigation", type=click.Choice(MITIGATIONS), default="auto", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Traffic seed of the knowledge graph.")
@click.option("--calibration", type=click.Path(dir_okay=False, exists=True),
              help="Flow twin: reroute-time constants from `ani campaign fidelity --calibrate` (calibration.json).")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Directory for results.jsonl (one result per line, however many scenarios).")
def run_cmd(scenario_files: tuple[str, ...], topology: str | None, twin_name: str, mitigation: str, seed: int,
            calibration: str | None, output: str | None) -> None:
    """Run each scenario in SCENARIO_FILES and print its KPI table."""
    raws = [raw for f in scenario_files for raw in read_scenarios(f)]
    results = []
    graphs: dict = {}
    options = {}
    if calibration:
        if twin_name != "flow":
            raise ConfigError("--calibration applies to the flow twin")
        from harness.campaign.fidelity import load_calibration

        options["reroute"] = load_calibration(calibration)
    with make_twin(twin_name, **options) as twin:
        for raw in raws:
            ref = topology or raw.get("topology")
            if not ref:
                raise ConfigError(f"scenario {raw.get('id', '?')!r} names no topology; pass --topology")
            if ref not in graphs:
                graphs[ref] = kg_from_ref(ref, seed=seed)
            scenario = validate_scenario(graphs[ref], raw)
            result = twin.run(graphs[ref], scenario, None if mitigation == "none" else mitigation)
            results.append(result)
            _print_table(result)
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "results.jsonl", "".join(json.dumps(json.loads(r.to_json())) + "\n" for r in results))
        click.echo(f"wrote {out / 'results.jsonl'}")


def _print_table(result) -> None:
    phases = [p for p in PHASES if p in result.rows]
    click.echo(f"\n{result.scenario_id} on the {result.twin} twin")
    click.echo(f"  {'kpi':<22}" + "".join(f"{p:>14}" for p in phases))
    for k in KPIS:
        vals = [result.rows[p].kpis()[k] for p in phases]
        click.echo(f"  {k:<22}" + "".join(f"{_fmt(v):>14}" for v in vals))
    impacted = result.rows["failure"].impacted_node_names
    if impacted:
        click.echo(f"  impacted (failure): {', '.join(impacted)}")
    if result.mitigation:
        acts = ", ".join(a["action"] + (f" {a.get('router') or a.get('link') or ''}".rstrip()) for a in result.mitigation["actions"])
        click.echo(f"  mitigation {result.mitigation['strategy']}: {acts or 'no action'}")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


@click.command("sweep")
@click.option("--topology", required=True, help="Topology NAME|FILE.")
@click.option("--k", type=click.Choice(["1", "2"]), default="1", show_default=True, help="Links cut at once.")
@click.option("--twin", "twin_name", type=click.Choice(["flow"]), default="flow", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--top", default=15, show_default=True, help="Rows to print.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write every row as JSONL.")
def sweep_cmd(topology: str, k: str, twin_name: str, seed: int, top: int, output: str | None) -> None:
    """All single (or pair) link failures, ranked by impact."""
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from harness.cli.progress import progress_bar
    from harness.twin.sweep import sweep

    kg = kg_from_ref(topology, seed=seed)
    with progress_bar(TextColumn("sweep"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("sweep", total=None)
        rows = sweep(kg, int(k), progress=lambda i, n: bar.update(task, completed=i, total=n))
    click.echo(f"{len(rows)} failure sets on {topology}, worst first")
    click.echo(f"  {'links':<40}{'loss %':>9}{'unreach':>9}{'impacted':>9}{'max util':>9}{'cascade':>8}")
    for r in rows[:top]:
        click.echo(f"  {' + '.join(r['links']):<40}{r['loss_pct']:>9.3f}{r['unreachable_pairs']:>9}"
                   f"{r['impacted_nodes']:>9}{r['max_link_util']:>9.3f}{r['cascade_depth']:>8}")
    if output:
        atomic_write(Path(output), "".join(json.dumps(r) + "\n" for r in rows))
        click.echo(f"wrote {output}")
