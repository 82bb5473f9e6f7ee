"""``python -m gateway.cli``: the same as the ``sightline`` command."""

from gateway.cli.main import main

raise SystemExit(main())
