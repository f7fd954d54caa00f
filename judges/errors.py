"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or configuration: the message says what is wrong and how to fix it."""

    exit_code = 2


class JudgeSetupError(UserError):
    """The judge cannot be used at all: bad key, unknown model, missing package.

    Raised at the first request so a run stops before it spends anything more."""


class JudgeServerDied(JudgeSetupError):
    """The server a judge runs as its child died during the run: the run stops, its answers so
    far stay in the cache, and the same command resumes."""
