"""``ani topo``: list and show topologies."""

from __future__ import annotations

import json

import click

from harness.topology import list_topologies, load_topology


@click.group()
def topo() -> None:
    """List and inspect topologies."""


@topo.command("list")
@click.option("--source", type=click.Choice(["topozoo", "caida", "sndlib", "backbone", "gabriel", "shipped"]),
              help="Only this source.")
def list_cmd(source: str | None) -> None:
    """Names with node and link counts."""
    for row in list_topologies(source):
        click.echo(f"{row['name']:<40} {row['nodes']:>6} nodes {row['links']:>6} links")
