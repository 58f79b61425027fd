"""``ani run`` and ``ani sweep``: run scenarios on a twin, sweep all link failures."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.output import json_option
from harness.kg import kg_from_ref
from harness.errors import ConfigError
from harness.fileio import atomic_write
from harness.mitigate import STRATEGIES
from harness.scenario import read_scenarios, validate_scenario
from harness.twin import KPIS, PHASES, make_twin
from harness.twin import sla

MITIGATIONS = ["none", *STRATEGIES]


def cascade_options(twin_name: str, alpha: float | None, links: bool, off: bool) -> dict:
    """The twin's options for the cascade rule's parameters given on the command line."""
    if off and (alpha is not None or links):
        raise ConfigError("--no-cascade excludes --alpha and --cascade-links")
    if twin_name == "flow":
        from harness.twin.flow.records import EngineConfig

        kw = {"cascade": not off, "cascade_links": links, **({"alpha": alpha} if alpha is not None else {})}
        return {"config": EngineConfig(**kw)} if (off or links or alpha is not None) else {}
    if twin_name == "emulation":
        return {**({"alpha": alpha} if alpha is not None else {}), **({"cascade_links": True} if links else {}),
                **({"max_cascade_rounds": 0} if off else {})}
    return {}


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
@click.option("--alpha", type=click.FloatRange(0, 100), default=None,
              help="Motter-Lai tolerance of the cascade rule (default 1.0, harness/twin/cascade.py); "
                   "larger: fewer cascades.")
@click.option("--cascade-links", is_flag=True, help="Links fail from load too, not only routers.")
@click.option("--no-cascade", is_flag=True, help="No overload cascades at all.")
@click.option("--fail-on", "fail_on", type=click.Choice(["sla"]),
              help="sla: exit 3 when a service's SLA is violated in the steady state (the mitigated phase, "
                   "or the failure phase with --mitigate none).")
@json_option("Print each result as one JSON line (the results.jsonl schema) instead of the tables.")
def run_cmd(scenario_files: tuple[str, ...], topology: str | None, twin_name: str, mitigation: str, seed: int,
            calibration: str | None, output: str | None, alpha: float | None, cascade_links: bool, no_cascade: bool,
            fail_on: str | None, as_json: bool) -> None:
    """Run each scenario in SCENARIO_FILES and print its KPI table and SLA verdicts.

    Exit status: 0, or 3 with --fail-on sla when a steady-state SLA is violated."""
    raws = [raw for f in scenario_files for raw in read_scenarios(f)]
    results = []
    graphs: dict = {}
    options = cascade_options(twin_name, alpha, cascade_links, no_cascade)
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
            if as_json:
                click.echo(json.dumps(json.loads(result.to_json())))
            else:
                _print_table(result)
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "results.jsonl", "".join(json.dumps(json.loads(r.to_json())) + "\n" for r in results))
        click.echo(f"wrote {out / 'results.jsonl'}", err=as_json)
    if fail_on == "sla":
        failed = [r for r in results if sla.violations(r)]
        if failed:
            from harness.cli.main import EXIT_SLA

            click.echo(f"SLA violated in the steady state of {len(failed)} of {len(results)} scenarios: "
                       + ", ".join(f"{r.scenario_id} ({sla.steady_phase(r)})" for r in failed), err=True)
            click.get_current_context().exit(EXIT_SLA)


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
    for line in sla_lines(result):
        click.echo(line)


def sla_lines(result) -> list[str]:
    """The SLA verdicts of ``result`` as text: a table (service and metric × phase: ``ok`` and
    the worst value, or ``FAIL`` and by how much), then the steady-state verdict and, for each
    of its violations, the flows; notes (not judged, partly measured) last."""
    if not result.sla:
        return ["  SLA: no verdicts in this result (no services in the knowledge graph, or an older result)"]
    phases = [p for p in PHASES if p in result.rows]
    cells = {(v.service, v.metric, v.phase): v for v in result.sla}
    keys = list(dict.fromkeys((v.service, v.metric) for v in result.sla))
    out = [f"  {'sla':<22}{'bound':>10}" + "".join(f"{p:>20}" for p in phases)]
    for service, metric in keys:
        bound = next(v.bound for v in result.sla if (v.service, v.metric) == (service, metric))
        out.append(f"  {service + ' ' + metric:<22}{bound:>10.4g}"
                   + "".join(f"{_sla_cell(cells.get((service, metric, p))):>20}" for p in phases))
    steady = sla.steady_phase(result)
    bad = sla.violations(result)
    out.append(f"  SLA in the steady state ({steady} phase): "
               + ("violated: " + ", ".join(f"{v.service} {v.metric}" for v in bad) if bad else "met"))
    out += [f"    {line}" for line in sla.summary(bad).splitlines()]
    notes = dict.fromkeys(f"{v.service} {v.metric}: {v.note}" for v in result.sla if v.note)
    out += [f"  note: {n}" for n in notes]
    return out


def _sla_cell(v) -> str:
    if v is None or v.violated is None:
        return "n/a"
    if not v.violated:
        return f"ok {v.worst:.4g}"
    if v.excess is not None and v.excess > 0:
        return f"FAIL {v.worst:.4g} ({v.excess:+.3g})"
    return f"FAIL {v.unreachable} unreach."


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


@click.command("sweep")
@click.option("--topology", required=True, help="Topology NAME|FILE.")
@click.option("--k", type=click.IntRange(1, 4), default=1, show_default=True,
              help="Elements failed at once: every combination of up to K (the attack budget).")
@click.option("--kinds", default="link", show_default=True, metavar="KIND[,KIND]",
              help="What fails: link, router, srlg (comma-separated).")
@click.option("--exactly", is_flag=True, help="Only combinations of exactly K elements.")
@click.option("--twin", "twin_name", type=click.Choice(["flow"]), default="flow", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--top", default=15, show_default=True, help="Rows to print.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write every row as JSONL.")
@json_option("Print the top rows as JSON lines instead of the table.")
def sweep_cmd(topology: str, k: int, kinds: str, exactly: bool, twin_name: str, seed: int, top: int,
              output: str | None, as_json: bool) -> None:
    """Every combination of up to K failed links (or routers, SRLGs), ranked by impact: the
    exhaustive worst case at that attack budget."""
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from harness.cli.progress import progress_bar
    from harness.twin.sweep import sweep

    kg = kg_from_ref(topology, seed=seed)
    with progress_bar(TextColumn("sweep"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("sweep", total=None)
        rows = sweep(kg, k, kinds=tuple(x.strip() for x in kinds.split(",") if x.strip()), exactly=exactly,
                     progress=lambda i, n: bar.update(task, completed=i, total=n))
    if as_json:
        for r in rows[:top]:
            click.echo(json.dumps(r))
    else:
        _print_sweep(rows, topology, top)
    if output:
        atomic_write(Path(output), "".join(json.dumps(r) + "\n" for r in rows))
        click.echo(f"wrote {output}", err=as_json)


def _print_sweep(rows: list[dict], topology: str, top: int) -> None:
    click.echo(f"{len(rows)} failure sets on {topology}, worst first")
    click.echo(f"  {'failed':<40}{'loss %':>9}{'unreach':>9}{'impacted':>9}{'max util':>9}{'cascade':>8}")
    for r in rows[:top]:
        click.echo(f"  {' + '.join(r['elements']):<40}{r['loss_pct']:>9.3f}{r['unreachable_pairs']:>9}"
                   f"{r['impacted_nodes']:>9}{r['max_link_util']:>9.3f}{r['cascade_depth']:>8}")
