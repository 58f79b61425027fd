"""Entry point of the ``ani`` command: registers the command groups and turns errors into exit codes."""

from __future__ import annotations

import logging
import sys

import click

from harness.errors import AniError


#: Exit codes: 0 ok, 1 an error ani reports, 2 a usage error (click's), 3 a steady-state SLA
#: violated (``ani run --fail-on sla``, a campaign's ``fail_on: [sla]``: the run itself worked),
#: 130 interrupted (Ctrl-C, 128 + SIGINT, as shells report it).
EXIT_ERROR, EXIT_SLA, EXIT_INTERRUPTED = 1, 3, 130


class AniGroup(click.Group):
    """A click group that prints ``error: …`` for any :class:`AniError` and exits 1, and exits
    130 on Ctrl-C (click alone says "Aborted!" and exits 1)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AniError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_ERROR)
        except (KeyboardInterrupt, click.exceptions.Abort):
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


class _Formatter(logging.Formatter):
    def format(self, record):
        return f"{record.levelname.lower()}: {record.getMessage()}"


@click.group(cls=AniGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ani-harness", prog_name="ani")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(verbose: bool) -> None:
    """ani — find out how your network breaks before it breaks."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("harness")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def _register() -> None:
    from harness.cli import commands

    for command in commands.ALL:
        cli.add_command(command)


def main() -> None:
    _register()
    cli(prog_name="ani")
