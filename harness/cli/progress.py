"""Progress bars for the CLI: on standard error, and only when it is a terminal (stdout is
for data; a captured or piped run gets no bars)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import Progress


def progress_bar(*columns, **options) -> Progress:
    """A :class:`rich.progress.Progress` on stderr, disabled when stderr is not a terminal."""
    return Progress(*columns, console=Console(stderr=True), disable=not sys.stderr.isatty(), **options)
