"""``python -m vaelab``: the same as the ``vaelab`` command."""

from vaelab.cli import main

main()
