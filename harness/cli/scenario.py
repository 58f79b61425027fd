"""``ani scenario``: validate scenario files against a topology's knowledge graph."""

from __future__ import annotations

import click

from harness.cli.output import json_option, print_json_lines
from harness.kg import kg_from_ref
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
@json_option("Print one JSON object per scenario (file, id, valid, events, reasons, notes), one per line.")
def validate_cmd(files: tuple[str, ...], topology: str | None, seed: int, as_json: bool) -> None:
    """Check scenarios; exit 0 when all are valid, else 1 with one line per rejected event."""
    graphs: dict[str, object] = {}
    bad = total = 0
    for path in files:
        for raw in read_scenarios(path):
            total += 1
            sid = raw.get("id", "?")
            ref = topology or raw.get("topology")
            row = {"file": path, "id": sid, "valid": False, "events": None, "reasons": [], "notes": []}
            if not ref:
                message = "no topology (give --topology or a 'topology' field)"
                row["reasons"] = [{"index": None, "rule": "topology", "message": message}]
                lines = [message]
            else:
                if ref not in graphs:
                    graphs[ref] = kg_from_ref(ref, seed=seed)
                result = check_scenario(graphs[ref], raw)
                if isinstance(result, Scenario):
                    row.update(valid=True, events=len(result.events),
                               notes=renamed(raw, result) + notes(graphs[ref], result))
                else:
                    row["reasons"] = [r.to_dict() for r in result]
                    lines = [str(r) for r in result]
            bad += not row["valid"]
            if as_json:
                print_json_lines([row])
            elif row["valid"]:
                click.echo(f"{path}: {sid}: valid ({row['events']} events)")
            else:
                for line in lines:
                    click.echo(f"{path}: {sid}: {line}")
            if not as_json:
                for note in row["notes"]:
                    click.echo(f"{path}: {sid}: note: {note}", err=True)
    click.echo(f"{total - bad} of {total} scenarios valid", err=as_json)
    if bad:
        raise SystemExit(1)
