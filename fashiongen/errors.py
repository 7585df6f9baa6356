"""The base of every error meant for a user: the CLI and jobs print its message (no traceback) and exit non-zero."""


class FashiongenError(Exception):
    """An error whose message names the record or setting at fault and what to do about it."""
