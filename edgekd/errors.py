"""Exceptions that the CLI turns into exit codes.

`EdgekdError` is a user-facing problem (bad input, missing runtime): one line, exit 2.
`CheckFailed` is a gate or parity check that ran and failed: exit 1.
Anything else reaching the CLI is a bug: exit 3 (`INTERNAL_ERROR_EXIT`), see `edgekd.cli.common.guarded`.
"""


class EdgekdError(Exception):
    """Bad input or environment; the message is shown to the user as one line."""

    exit_code = 2


class CheckFailed(EdgekdError):
    """A check ran and its result is out of budget (parity, regression gate)."""

    exit_code = 1


class TrainingDiverged(EdgekdError):
    """The loss became NaN/Inf; the message names the step and the last good checkpoint."""

    exit_code = 1


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (or its type name): a one-line error quotes no more."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


INTERNAL_ERROR_EXIT = 3
"""Exit code of an unexpected exception (a bug in edgekd), distinct from 1 (a check failed) and 2 (bad input)."""


def describe_os_error(error: OSError) -> str:
    """'PATH: reason' for a failed file or network operation, one line, without Python's '[Errno N]' prefix."""
    reason = error.strerror or str(error) or type(error).__name__
    names = [str(name) for name in (error.filename, error.filename2) if name is not None]
    if not names:
        return reason
    return f"{names[0]}: {reason}" + (f" (-> {names[1]})" if len(names) > 1 else "")
