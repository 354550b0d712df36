"""Errors coopflow raises; each carries a message fit to show a user as is."""

from __future__ import annotations

from dataclasses import dataclass


class CoopflowError(Exception):
    """Base class: a user-facing problem, printed without a traceback."""


@dataclass(frozen=True, order=True)
class PolicyProblem:
    """One mistake in a policy file, located at `file:line:col` (1-based)."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PolicyError(CoopflowError):
    """The policy is invalid; `problems` lists every mistake found."""

    def __init__(self, problems: list[PolicyProblem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionError(CoopflowError):
    """An expression failed to parse or names something unknown; `col` is 0-based within it."""

    def __init__(self, message: str, col: int = 0):
        self.col = col
        super().__init__(message)


class AuthError(CoopflowError):
    """Authentication or authorisation refused: bad credentials, locked, disabled, expired, not granted."""
