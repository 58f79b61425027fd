"""The scripting contract: with ``--json`` a command prints its data on standard output as JSON
(one document, or one JSON object per line for rows), and every message on standard error."""

from __future__ import annotations

import json
from typing import Iterable

import click


def json_option(help: str = "Print the result as one JSON document on stdout (messages go to stderr)."):
    return click.option("--json", "as_json", is_flag=True, help=help)


def print_json(data) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def print_json_lines(rows: Iterable) -> None:
    """One JSON object per line on stdout."""
    for row in rows:
        click.echo(json.dumps(row, default=str))
