"""The ``dedup`` command: parser, commands and output (thin: the work is in the stages)."""

from dedup.cli.commands import main

__all__ = ["main"]
