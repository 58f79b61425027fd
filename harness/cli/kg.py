"""``ani kg``: build and query knowledge graphs."""

from __future__ import annotations

import click

from harness.cli.output import json_option, print_json
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
@json_option("Print the summary (counts, busiest links) as one JSON document.")
def build_cmd(ref: str, output: str | None, traffic: str, seed: int, incidents: str | None, as_json: bool) -> None:
    """Build the knowledge graph of NAME|FILE and print a summary."""
    graph = kg_from_ref(ref, traffic, seed, incidents)
    s = graph.summary()
    links = sorted(graph.links, key=lambda l: -graph.attrs("link", l)["utilisation"])[:5]
    if output:
        save_kg(graph, output)
    if as_json:
        print_json({**s, "busiest_links": [{"id": l, "utilisation": graph.attrs("link", l)["utilisation"]}
                                           for l in links], "written": output})
        return
    click.echo(f"knowledge graph of {s['topology']} (traffic {s['traffic']}, seed {s['seed']})")
    click.echo("  nodes: " + ", ".join(f"{n} {k}" for k, n in s["nodes"].items()))
    click.echo("  edges: " + ", ".join(f"{n} {r}" for r, n in s["edges"].items()))
    click.echo("  busiest links: " + ", ".join(f"{l} {graph.attrs('link', l)['utilisation']:.0%}" for l in links))
    if output:
        click.echo(f"  written to {output}")


@kg.command("query")
@click.argument("ref")
@click.option("--dependents", "dep", metavar="X", help="Everything that depends on X (kind:name or a unique name).")
@click.option("--blast-radius", "events_file", type=click.Path(dir_okay=False),
              help="A scenario file whose events' blast radius to compute.")
@click.option("--traffic", type=click.Choice(MODELS), default="gravity", show_default=True)
@click.option("--seed", default=0, show_default=True)
@json_option("--dependents as one JSON document (--blast-radius always prints JSON).")
def query_cmd(ref: str, dep: str | None, events_file: str | None, traffic: str, seed: int, as_json: bool) -> None:
    """Query the knowledge graph of NAME|FILE: --dependents prints one name per line,
    --blast-radius a JSON document."""
    from harness.errors import ConfigError
    from harness.scenario import read_scenarios, validate_scenario

    if (dep is None) == (events_file is None):
        raise ConfigError("give exactly one of --dependents X or --blast-radius EVENTS_FILE")
    graph = kg_from_ref(ref, traffic, seed)
    if dep is not None:
        names = sorted(dependents(graph, dep))
        if as_json:
            print_json({"of": dep, "dependents": names})
            return
        for n in names:
            click.echo(n)
        return
    events = [e for raw in read_scenarios(events_file) for e in validate_scenario(graph, raw).events]
    print_json(blast_radius(graph, events))
