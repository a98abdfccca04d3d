"""The one error type the command line catches: a refusal that is one line, with an exit code.

Every module's own error (`DataError`, `SpecError`, `ResumeError`, ...) derives from `JobError`, so the CLI
prints `error: <message>` and exits with `exit_code`, never a traceback.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2


class JobError(Exception):
    """A refusal the user can act on: the message names the file, key or option, and the fix."""

    exit_code = EXIT_BAD_INPUT
