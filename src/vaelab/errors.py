"""User-facing errors.

A :class:`VaelabError` is a mistake the user can fix (bad data, bad config, a
missing file). The CLI prints its message on one line and exits with status 2,
without a traceback. Anything else that escapes is a bug and may raise.
"""


class VaelabError(Exception):
    """An error caused by the user's input; its message names the problem and the fix."""


class DataError(VaelabError):
    """A data set is missing, corrupt or malformed."""


class ConfigError(VaelabError):
    """A configuration value or file is invalid."""


class RunError(VaelabError):
    """A run directory is missing, incomplete or incompatible."""


class TrainingDiverged(VaelabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def notice(message: str) -> None:
    """Tell the user something worth knowing that is not an error: one line on stderr, prefixed ``note:``."""
    import sys

    print(f"note: {message}", file=sys.stderr, flush=True)
