"""``python -m framework``: the ``framework`` command."""

from framework.cli import main

raise SystemExit(main())
