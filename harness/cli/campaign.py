"""``ani campaign``: run and resume closed-loop campaigns, then inspect them."""

from __future__ import annotations

from pathlib import Path

import click

from harness.campaign import load_spec, run_campaign
from harness.errors import CampaignError


@click.group()
def campaign() -> None:
    """Closed-loop campaigns: run, resume, fidelity, report."""


@campaign.command("run")
@click.argument("target", type=click.Path())
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Campaign directory (default: campaigns/NAME).")
@click.option("--resume", is_flag=True, help="Continue the campaign in TARGET (a campaign directory).")
def run_cmd(target: str, output: str | None, resume: bool) -> None:
    """Run the campaign SPEC (YAML) into a directory, or --resume the one in DIR."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn()) as bar:
        overall = bar.add_task("campaign", total=None)
        step = bar.add_task("", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            if stage.endswith("proposes") or stage == "done":
                bar.update(overall, completed=done, total=total)
            bar.update(step, description=stage, completed=done, total=total)

        summary = run_campaign(root, spec, resume=resume, progress=progress)
    runs = ", ".join(f"{n} on {t}" for t, n in summary.runs.items()) or "nothing new"
    click.echo(f"campaign in {summary.root}: {summary.accepted} accepted, {summary.rejected} rejected of "
               f"{summary.proposed} proposed; runs: {runs}; {summary.elapsed_s:.1f} s")
