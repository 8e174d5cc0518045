"""Errors that cross module boundaries."""


class LoadError(Exception):
    """A file could not be read as a model. The message is one line, fit to show a user."""


class Skip(Exception):
    """A file is deliberately not checked (e.g. a Git LFS pointer); not an error."""
