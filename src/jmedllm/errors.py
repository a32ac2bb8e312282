"""Errors shared across layers."""


class UserError(Exception):
    """An error caused by the user's input or setup: the CLI prints its message alone (exit code 2)."""
