"""Errors meant for users: the CLI prints their message as one sentence, without a traceback."""


class InsidersError(Exception):
    """A problem the user can fix (bad input, missing configuration, a stopped database)."""
