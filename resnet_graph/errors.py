"""The errors the library raises for bad input; the command lines turn each into one stderr line and exit 2."""


class UsageError(Exception):
    """A problem with the user's input (flags, files, data); its message says what was wrong and what to do."""


def require(condition, message):
    """Raises UsageError(message) unless condition holds."""
    if not condition:
        raise UsageError(message)
