"""Progress bars for the CLI: on standard error, and only when it is a terminal (stdout is
for data; a captured or piped run gets no bars)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import Progress


def progress_bar(*columns) -> Progress:
    return Progress(*columns, console=Console(stderr=True), disable=not sys.stderr.isatty())
