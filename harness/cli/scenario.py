"""``ani scenario``: validate scenario files against a topology's knowledge graph."""

from __future__ import annotations

import click

from harness.kg import kg_from_ref
from harness.errors import AniError
from harness.scenario import check_scenario, read_scenarios
from harness.scenario.model import Scenario
from harness.scenario.validate import notes, renamed


@click.group()
def scenario() -> None:
    """Work with scenario files."""


@scenario.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--topology", "topology", help="Validate against this topology instead of each scenario's own.")
@click.option("--seed", default=0, show_default=True, help="Traffic seed of the knowledge graph.")
def validate_cmd(files: tuple[str, ...], topology: str | None, seed: int) -> None:
    """Check scenarios; exit 0 when all are valid, else 1 with one line per rejected event."""
    graphs: dict[str, object] = {}
    bad = total = 0
    for path in files:
        for raw in read_scenarios(path):
            total += 1
            sid = raw.get("id", "?")
            ref = topology or raw.get("topology")
            if not ref:
                click.echo(f"{path}: {sid}: no topology (give --topology or a 'topology' field)")
                bad += 1
                continue
            if ref not in graphs:
                graphs[ref] = kg_from_ref(ref, seed=seed)
            result = check_scenario(graphs[ref], raw)
            if isinstance(result, Scenario):
                click.echo(f"{path}: {sid}: valid ({len(result.events)} events)")
                for note in renamed(raw, result) + notes(graphs[ref], result):
                    click.echo(f"{path}: {sid}: note: {note}", err=True)
            else:
                bad += 1
                for reason in result:
                    click.echo(f"{path}: {sid}: {reason}")
    click.echo(f"{total - bad} of {total} scenarios valid")
    if bad:
        raise SystemExit(1)
