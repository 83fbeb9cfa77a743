"""The exception hierarchy and the exit-code contract shared with the Jenkinsfile."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of every `harness` command (DESIGN.md 4.1)."""

    OK = 0
    ERROR = 1  # the harness or its inputs are broken; the message says what to fix
    REGRESSION = 2  # it worked and found a regression (or a coverage drop)


class HarnessError(Exception):
    """Root of every error the harness reports to a user.

    Messages name the file, line or value and say how to fix it. `main()` prints the message and
    exits with ExitCode.ERROR; library code never exits.
    """


class ConfigError(HarnessError):
    """An experiment definition, scenario or flag is invalid."""


class ResultsFormatError(HarnessError):
    """A results.json or verdict.json cannot be read (wrong version, corrupt, missing keys)."""


class SubjectError(HarnessError):
    """The subject exited early, never became ready, or could not be stopped."""


class InvalidRunError(HarnessError):
    """The measurement itself is not trustworthy (driver fell behind, too many subject errors)."""


class ServiceError(HarnessError):
    """Jenkins or GitHub answered with an error or could not be reached."""


class SecretMissingError(HarnessError):
    """A required secret environment variable is not set."""
