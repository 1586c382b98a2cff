"""User errors versus bugs: a UserError is printed as one line plus a hint and exits 2; anything else is a bug."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, config, argument): shown as `error: ...` with a hint, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"
