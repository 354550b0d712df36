"""Errors coopflow raises; each carries a message fit to show a user as is.

One tree, two branches, and what each one means for the code that catches it:

    CoopflowError                 any problem with a message for people (never a traceback)
    ├── UserError                 the user's to fix: a mistake or a refusal (CLI exit 1, HTTP 4xx)
    │   ├── PolicyError           policy files that do not validate (every problem listed)
    │   ├── ExpressionError       a guard or value expression that does not parse
    │   ├── SettingError          a COOPFLOW_* environment variable with a bad value
    │   ├── AuthError             credentials refused, or not granted
    │   └── Refusal               an event that must change nothing, with its code (engine/execution/executor.py)
    └── InfrastructureError       the deployment's to fix, or wait out: retried, NEVER a refusal
        └── StoreError            the store cannot be used now (unreachable, full, read-only)
            └── StoreRefused      the store must not be used (waiting will not help: stop)
                └── StoreGone     the SQLite file was deleted or replaced under a running process

Code that turns errors into refusals catches `Refusal` and `UserError`, never `CoopflowError`
as a whole: an `InfrastructureError` must propagate so that the event stays pending and is
retried. `CoopflowError` raised directly is a user-facing message of neither kind (kept for
the CLI's own messages); new code raises one of the two branches.
"""

from __future__ import annotations

from dataclasses import dataclass


class CoopflowError(Exception):
    """Base class: a user-facing problem, printed without a traceback."""


class UserError(CoopflowError):
    """A mistake or refusal the user can correct (bad input, unknown name, not allowed)."""


class InfrastructureError(CoopflowError):
    """The store or another part of the deployment failed: retry later; never refuse an event for it."""


@dataclass(frozen=True, order=True)
class PolicyProblem:
    """One mistake in a policy file, located at `file:line:col` (1-based)."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PolicyError(UserError):
    """The policy is invalid; `problems` lists every mistake found."""

    def __init__(self, problems: list[PolicyProblem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionError(UserError):
    """An expression failed to parse or names something unknown; `col` is 0-based within it."""

    def __init__(self, message: str, col: int = 0):
        self.col = col
        super().__init__(message)


class SettingError(UserError):
    """An environment variable (engine.settings) holds a value coopflow cannot use."""


class AuthError(UserError):
    """Authentication or authorisation refused: bad credentials, locked, disabled, expired, not granted."""


class StoreError(InfrastructureError):
    """The store cannot be used (unreachable, written by a newer coopflow, bad URL)."""


class StoreRefused(StoreError):
    """The store is there but must not be used (missing folder, 0-byte file, drill on real
    history): waiting will not help, so the daemon stops (exit 1) instead of retrying."""


class StoreGone(StoreRefused):
    """The SQLite file a running process opened was deleted or replaced: stop, do not recreate it."""
