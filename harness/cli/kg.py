"""``ani kg``: build and query knowledge graphs."""

from __future__ import annotations

import json

import click

from harness.kg import dependents, kg_from_ref, save_kg
from harness.scenario.causal import blast_radius
from harness.kg.traffic import MODELS


@click.group()
def kg() -> None:
    """Build and query the knowledge graph."""


@kg.command("build")
@click.argument("ref")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the KG as JSON (name it *.kg.json).")
@click.option("--traffic", type=click.Choice(MODELS), default="gravity", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--incidents", type=click.Path(exists=True, dir_okay=False), help="JSONL incident log to attach.")
def build_cmd(ref: str, output: str | None, traffic: str, seed: int, incidents: str | None) -> None:
    """Build the knowledge graph of NAME|FILE and print a summary."""
    graph = kg_from_ref(ref, traffic, seed, incidents)
    s = graph.summary()
    click.echo(f"knowledge graph of {s['topology']} (traffic {s['traffic']}, seed {s['seed']})")
    click.echo("  nodes: " + ", ".join(f"{n} {k}" for k, n in s["nodes"].items()))
    click.echo("  edges: " + ", ".join(f"{n} {r}" for r, n in s["edges"].items()))
    links = sorted(graph.links, key=lambda l: -graph.attrs("link", l)["utilisation"])[:5]
    click.echo("  busiest links: " + ", ".join(f"{l} {graph.attrs('link', l)['utilisation']:.0%}" for l in links))
    if output:
        save_kg(graph, output)
        click.echo(f"  written to {output}")


@kg.command("query")
@click.argument("ref")
@click.option("--dependents", "dep", metavar="X", help="Everything that depends on X (kind:name or a unique name).")
@click.option("--blast-radius", "events_file", type=click.Path(dir_okay=False),
              help="A scenario file whose events' blast radius to compute.")
@click.option("--traffic", type=click.Choice(MODELS), default="gravity", show_default=True)
@click.option("--seed", default=0, show_default=True)
def query_cmd(ref: str, dep: str | None, events_file: str | None, traffic: str, seed: int) -> None:
    """Query the knowledge graph of NAME|FILE."""
    from harness.errors import ConfigError
    from harness.scenario import read_scenarios, validate_scenario

    if (dep is None) == (events_file is None):
        raise ConfigError("give exactly one of --dependents X or --blast-radius EVENTS_FILE")
    graph = kg_from_ref(ref, traffic, seed)
    if dep is not None:
        for n in sorted(dependents(graph, dep)):
            click.echo(n)
        return
    events = [e for raw in read_scenarios(events_file) for e in validate_scenario(graph, raw).events]
    click.echo(json.dumps(blast_radius(graph, events), indent=2))
