"""Exceptions that the CLI turns into exit codes.

`EdgekdError` is a user-facing problem (bad input, missing runtime): one line, exit 2.
`CheckFailed` is a gate or parity check that ran and failed: exit 1.
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
