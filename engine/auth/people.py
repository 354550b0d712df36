"""The people config.yaml lists (parties → roles → people) and the `Principal` they sign in as."""

from __future__ import annotations

import difflib
import getpass
from dataclasses import dataclass, replace

from engine.exceptions import AuthError
from engine.policy.spec import ConfigSpec

PASSWORD_SESSION = "password-session"
LOCAL_CLI = "local-cli"


def grants(config: ConfigSpec, person: str) -> tuple[str, ...]:
    """Every `party.role` whose people list names `person`, in config order."""
    return tuple(
        f"{party_id}.{role_id}"
        for party_id, party in config.parties.items()
        for role_id, role in party.roles.items()
        if person in role.people
    )


def known_people(config: ConfigSpec) -> list[str]:
    """Every person listed under some role, sorted."""
    return sorted({p for party in config.parties.values() for role in party.roles.values() for p in role.people})


def require_person(config: ConfigSpec, person: str) -> tuple[str, ...]:
    """The grants of `person`; AuthError (with the closest names) when config.yaml does not list them."""
    granted = grants(config, person)
    if not granted:
        close = difflib.get_close_matches(person, known_people(config), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else "; add them to a role's people in config.yaml"
        raise AuthError(f"'{person}' is not listed in the people of any role in config.yaml{hint}")
    return granted


@dataclass(frozen=True)
class Principal:
    """Who is authenticated, what config.yaml grants them, and how they proved it.

    `roles` are the `party.role` grants; `party` is their party when all grants are in one
    (else the party of `acting_role`, else None). `method` is `password-session`,
    `token:<id>` or `local-cli:<os user>`.
    """

    person: str
    party: str | None
    roles: tuple[str, ...]
    method: str
    client: str
    acting_role: str | None = None
    read_only: bool = False
    is_admin: bool = False

    def grant(self, role: str | None = None) -> str:
        """The `party.role` meant by `role` (`party.role` or a bare role held in one party only).

        Without `role`: the acting role, else the only grant. AuthError when not granted or ambiguous.
        """
        role = role or self.acting_role
        if role is None:
            if len(self.roles) == 1:
                return self.roles[0]
            raise AuthError(f"{self.person} holds several roles ({', '.join(self.roles)}): choose one")
        if "." in role:
            if role in self.roles:
                return role
        else:
            matching = [g for g in self.roles if g.split(".", 1)[1] == role]
            if len(matching) == 1:
                return matching[0]
            if matching:
                raise AuthError(f"{self.person} is {role} in several parties ({', '.join(matching)}): name the party")
        raise AuthError(f"{self.person} is not granted {role} (granted: {', '.join(self.roles)})")

    def with_role(self, role: str) -> Principal:
        """The same principal acting in `role` (refused when config.yaml does not grant it)."""
        chosen = self.grant(role)
        return replace(self, acting_role=chosen, party=chosen.split(".", 1)[0])

    def act_as(self, role: str | None = None) -> str:
        """The actor string `party.role:person` this principal submits events as.

        Refused for a role not granted, and for a read-only principal (it may only read).
        """
        chosen = self.grant(role)
        if self.read_only:
            raise AuthError(f"{self.person} is signed in read-only ({self.method}) and cannot act as {chosen}")
        return f"{chosen}:{self.person}"

    def as_dict(self) -> dict:
        return {
            "person": self.person, "party": self.party, "roles": list(self.roles), "acting_role": self.acting_role,
            "method": self.method, "client": self.client, "read_only": self.read_only, "is_admin": self.is_admin,
        }


def principal_for(config: ConfigSpec, person: str, method: str, client: str, read_only: bool = False) -> Principal:
    """Build the principal of a person config.yaml lists (AuthError otherwise)."""
    roles = require_person(config, person)
    parties = {g.split(".", 1)[0] for g in roles}
    return Principal(
        person=person, party=parties.pop() if len(parties) == 1 else None, roles=roles, method=method,
        client=client, read_only=read_only, is_admin=person in config.administrators,
    )


def local_cli_principal(config: ConfigSpec, person: str) -> Principal:
    """The principal of someone at this machine's shell (trusted by the OS account, not a password)."""
    user = getpass.getuser()
    return principal_for(config, person, f"{LOCAL_CLI}:{user}", f"local:{user}")
