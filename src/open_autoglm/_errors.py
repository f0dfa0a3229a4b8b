"""Errors shared by every subcommand."""


class UsageError(Exception):
    """A mistake in the command line or its inputs: the CLI prints one line and exits 2."""
