"""The ``sightline`` command."""
