"""Command-line commands of this layer, registered on the `sagin-hil` app (heavy imports stay inside commands)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this layer's commands to `app`."""
