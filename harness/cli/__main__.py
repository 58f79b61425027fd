"""``python -m harness.cli`` runs the ``ani`` command."""

from harness.cli.main import main

main()
