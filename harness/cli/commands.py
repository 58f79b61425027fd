"""The list of command groups ``ani`` exposes (each lives in its own module)."""

from harness.cli.topo import topo

ALL = [topo]
