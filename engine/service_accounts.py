"""The service layer's account and token commands (`coopflow user|token`, the API's login and logout).

`Deployment` (engine/service.py) has them from `AccountCommands`; the CLI and the HTTP API call
them and never the stores of engine/auth themselves. engine.auth is imported when one runs
(argon2 is not loaded by the other commands).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.exceptions import UserError

if TYPE_CHECKING:
    from engine.auth.people import Principal
    from engine.execution.runtime import Runtime


class BadLifetime(UserError):
    """A token lifetime that is not one (`90d`, `12h`, `4w` or `never`), or longer than the maximum."""


class AccountCommands:
    """Accounts of the people config.yaml lists, their API tokens, and checking either as a sign-in does."""

    runtime: Runtime

    def person_roles(self, person: str) -> tuple[str, ...]:
        """The `party.role`s config.yaml grants `person`; AuthError (with the closest names) when it lists no such person."""
        from engine.auth import people

        return people.require_person(self.runtime.policy.config, person)

    def add_user(self, person: str, password: str) -> tuple[str, ...]:
        """Create the account of a person config.yaml lists; their roles."""
        from engine.auth import accounts

        accounts.add_user(self.runtime.store, self.runtime.policy.config, person, password)
        return self.person_roles(person)

    def set_password(self, person: str, password: str) -> None:
        """A new password for an existing account (the same length rules as a new one)."""
        from engine.auth import accounts

        accounts.set_password(self.runtime.store, person, password)

    def set_disabled(self, person: str, disabled: bool) -> bool:
        """Disable (or enable) an account: its password and tokens are refused; False when it already was so."""
        from engine.auth import accounts

        return accounts.set_disabled(self.runtime.store, person, disabled)

    def unlock_user(self, person: str, client: str) -> None:
        """Lift the lockout after too many failed sign-ins (`client`: who lifted it, recorded)."""
        from engine.auth import accounts

        accounts.unlock(self.runtime.store, person, client)

    def users(self) -> list[dict[str, Any]]:
        """Every person of config.yaml and every account, with roles and status (engine.auth.accounts.list_users)."""
        from engine.auth import accounts

        return accounts.list_users(self.runtime.store, self.runtime.policy.config)

    def check_password(self, person: str, password: str, client: str) -> Principal:
        """The Principal behind a password, checked (recorded, throttled) exactly as a sign-in; AuthError otherwise."""
        from engine.auth import authenticate_password

        return authenticate_password(self.runtime.store, person, password, client, config=self.runtime.policy.config)

    def check_token(self, token: str, client: str) -> Principal:
        """The Principal behind an API token, checked exactly as the HTTP API does; AuthError otherwise."""
        from engine.auth import authenticate_token

        return authenticate_token(self.runtime.store, token, client, config=self.runtime.policy.config)

    def issue_token(self, person: str, expires: str = "90d", read_only: bool = False,
                    name: str | None = None) -> tuple[str, str]:
        """A new token for a person with an enabled account: (id, token), the token shown once.
        `expires`: 90d, 12h, 4w or never (BadLifetime otherwise)."""
        from engine.auth import tokens

        try:
            lifetime = tokens.parse_expires(expires)
        except ValueError as exc:
            raise BadLifetime(str(exc)) from None
        return tokens.issue(self.runtime.store, self.runtime.policy.config, person, lifetime, read_only, name)

    def tokens(self, person: str | None = None) -> list[dict[str, Any]]:
        """Tokens (of one person), oldest first, with their state: active, expired or revoked."""
        from engine.auth import tokens

        return tokens.list_tokens(self.runtime.store, person)

    def revoke_token(self, token_id: str) -> tuple[str, bool]:
        """Revoke a token by its id (`ID` or `cft_ID`): (the id, False when it already was revoked)."""
        from engine.auth import tokens

        changed = tokens.revoke(self.runtime.store, token_id)
        return tokens.token_id(token_id), changed

