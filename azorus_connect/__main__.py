"""``python -m azorus_connect`` is the ``azorus-connect`` command."""

from .cli import main

main()
