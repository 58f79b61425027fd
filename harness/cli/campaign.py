"""``ani campaign``: run and resume closed-loop campaigns, then inspect them."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from harness.cli.output import json_option, print_json
from harness.campaign import load_spec, run_campaign
from harness.errors import CampaignError


@click.group()
def campaign() -> None:
    """Closed-loop campaigns: run, resume, fidelity, report."""


@campaign.command("run")
@click.argument("target", type=click.Path())
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Campaign directory (default: campaigns/NAME).")
@click.option("--resume", is_flag=True, help="Continue the campaign in TARGET (a campaign directory).")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Run the twins as tasks on this Dask scheduler's workers (default: in this process).")
@json_option("Print the summary (counts, runs, time, SLA check) as one JSON document.")
def run_cmd(target: str, output: str | None, resume: bool, scheduler: str | None, as_json: bool) -> None:
    """Run the campaign SPEC (YAML) into a directory, or --resume the one in DIR.

    Exit status: 0, or 3 when the spec has ``fail_on: [sla]`` and a result's steady state
    violates a service's SLA."""
    from contextlib import nullcontext

    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from harness.cli.progress import progress_bar

    path = Path(target)
    if resume:
        if output:
            raise CampaignError("with --resume, TARGET is the campaign directory; drop -o")
        root, spec = path, None
    else:
        if path.is_dir():
            raise CampaignError(f"{path} is a directory; to continue a campaign use `ani campaign run {path} --resume`")
        spec = load_spec(path)
        root = Path(output) if output else Path("campaigns") / spec.name
    with progress_bar(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn()) as bar:
        overall = bar.add_task("campaign", total=None)
        step = bar.add_task("", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            if stage.endswith("proposes") or stage == "done":
                bar.update(overall, completed=done, total=total)
            bar.update(step, description=stage, completed=done, total=total)

        runner = None
        if scheduler:
            from harness.remote.dask_dispatch import DaskRunner

            runner = DaskRunner(scheduler, logs_dir=root / "logs")
        with runner or nullcontext():
            try:
                summary = run_campaign(root, spec, resume=resume, progress=progress, runner=runner)
            except KeyboardInterrupt:
                if (root / "spec.yaml").is_file():   # what is written is kept; say how to go on
                    click.echo(f"interrupted; continue with: ani campaign run {root} --resume", err=True)
                raise
    runs = ", ".join(f"{n} on {t}" for t, n in summary.runs.items()) or "nothing new"
    held = sum(1 for _ in (summary.root / "results").glob("*.json"))
    if as_json:
        print_json({"root": str(summary.root), "iterations": summary.iterations, "proposed": summary.proposed,
                    "accepted": summary.accepted, "rejected": summary.rejected, "runs": summary.runs,
                    "results_held": held, "elapsed_s": summary.elapsed_s, "twin_s": summary.twin_s,
                    "sla": summary.sla})
    say = functools.partial(click.echo, err=as_json)
    say(f"campaign in {summary.root}: {summary.accepted} accepted, {summary.rejected} rejected of "
               f"{summary.proposed} proposed; runs: {runs}; {held} results in the directory; "
               f"{summary.elapsed_s:.1f} s")
    if summary.sla is not None:
        check = summary.sla
        if check["unjudged"]:
            click.echo(f"SLA: {check['unjudged']} of {check['results']} results carry no SLA verdicts "
                       "(written before verdicts existed) and are not judged", err=True)
        if not check["violations"]:
            say(f"SLA met in the steady state of all {check['results'] - check['unjudged']} judged results")
        else:
            from harness.cli.main import EXIT_SLA

            click.echo(f"SLA violated in the steady state of {len(check['violations'])} of {check['results']} "
                       "results (fail_on: [sla]):", err=True)
            for v in check["violations"]:
                click.echo(f"  {v['scenario_id']} ({v['label']}, {v['twin']} twin, mitigation {v['mitigation']}, "
                           f"{v['phase']} phase): {', '.join(v['violated'])}", err=True)
            click.get_current_context().exit(EXIT_SLA)


@campaign.command("fidelity")
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.option("--calibrate", is_flag=True, help="Fit the flow twin's reroute-time constants to the emulation.")
@json_option("Print the rows, the summary and the calibration as one JSON document.")
def fidelity_cmd(root: str, calibrate: bool, as_json: bool) -> None:
    """Flow twin vs emulation, scenario by scenario."""
    from harness.campaign import CampaignStore
    from harness.campaign.fidelity import calibrate as fit, fidelity_rows, summarise

    store = CampaignStore(root)
    rows = fidelity_rows(store)
    if not rows:
        raise CampaignError(f"{root}: no scenario ran on both twins; add twins.emulation to the spec")
    if as_json:
        model = fit(store) if calibrate else None
        print_json({"rows": rows, "summary": summarise(rows),
                    "calibration": None if model is None else
                    {"points": [{"switches": m.switches, "detection_ms": m.detection_ms,
                                 "computation_ms": m.computation_ms, "install_per_switch_ms": m.install_per_switch_ms}
                                for m in (model, *model.sizes)],
                     "source": model.source, "written": str(Path(root) / "calibration.json")}})
        return
    click.echo(f"  {'scenario':<24}{'impacted':>9}{'loss flow':>11}{'loss emu':>10}{'util flow':>10}{'util emu':>9}"
               f"{'reroute flow':>13}{'reroute emu':>12}")
    for r in rows:
        click.echo(f"  {r['scenario_id'][:23]:<24}{'same' if r['impacted_agree'] else 'DIFF':>9}"
                   f"{_f(r['loss_pct_flow']):>11}{_f(r['loss_pct_emulation']):>10}{_f(r['max_link_util_flow']):>10}"
                   f"{_f(r['max_link_util_emulation']):>9}{_f(r['reroute_time_ms_mean_flow']):>13}"
                   f"{_f(r['reroute_time_ms_mean_emulation']):>12}")
    s = summarise(rows)
    click.echo(f"{s['scenarios']} scenarios ({s['healthy']} healthy): impacted sets agree in {s['impacted_agree_pct'] or 0:.0f} %; median relative "
               f"error loss {_f(s['loss_pct_relerr_median'])}, utilisation {_f(s['max_link_util_relerr_median'])}, "
               f"reroute time differs by a median {_f(s['reroute_diff_ms_median'])} ms")
    if calibrate:
        model = fit(store)
        for m in (model, *model.sizes):
            click.echo(f"calibrated reroute model{'' if m.switches is None else f' at {m.switches} switches'}: "
                       f"detection {m.detection_ms:.1f} ms, computation {m.computation_ms:.1f} ms, "
                       f"{m.install_per_switch_ms:.1f} ms per switch")
        click.echo(f"(written to {Path(root) / 'calibration.json'})")


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


@campaign.command("report")
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.option("--check", is_flag=True,
              help="Open every page in headless chromium at 1280 px: overflow, images, table widths.")
@json_option("Print the report's path, its pages and the check's rows as one JSON document.")
def report_cmd(root: str, check: bool, as_json: bool) -> None:
    """Write report/report.html (the index, figures inline), a page per scenario, PNGs and CSVs."""
    from harness.campaign.report import build_report

    say = functools.partial(click.echo, err=as_json)
    path = build_report(root)
    pages = sorted(str(p) for p in (path.parent / "scenarios").glob("*.html"))
    say(f"report: {path} ({len(pages)} scenario pages)")
    rows = None
    if check:
        from harness.campaign.report.browser import check_report

        rows = check_report(path.parent)
    if as_json:
        print_json({"report": str(path), "scenario_pages": pages, "check": rows})
    if check:
        bad = [r for r in rows if r["problems"]]
        for r in bad:
            say(f"  {r['page']}: {'; '.join(r['problems'])}")
        if bad:
            raise CampaignError(f"{len(bad)} of {len(rows)} report pages do not read well at 1280 px")
        say(f"checked {len(rows)} pages in chromium at 1280 px: no overflow, every image loaded")
