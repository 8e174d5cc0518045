"""Errors that cross module boundaries."""


class LoadError(Exception):
    """A file could not be read as a model. The message is one line, fit to show a user."""


class Skip(Exception):
    """A file is deliberately not checked (e.g. a Git LFS pointer); not an error."""


class NotAModel(LoadError):
    """The bytes are no model format at all (a data file that shares a model's extension), as
    opposed to a model file that is truncated or corrupt."""


class Unsupported(Skip):
    """A file in a known format that paraminspect cannot check (TFLite, GGUF, ...): named, not
    skipped silently and not reported as unreadable."""

    def __init__(self, format_name: str) -> None:
        super().__init__(f"unsupported format: {format_name}")
        self.format_name = format_name
