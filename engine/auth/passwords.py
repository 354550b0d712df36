"""Passwords: argon2id hashes (argon2-cffi) and the length policy.

The policy (docs/accounts.md): at least `MIN_LENGTH` characters, at most `MAX_LENGTH`, not the
person id itself. Any characters are allowed (Vietnamese passphrases included); no composition
rules (NIST SP 800-63B). Hashes are rehashed on the next successful sign-in when the
parameters below change.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine.exceptions import AuthError

MIN_LENGTH = 12
MAX_LENGTH = 1024

HASHER = PasswordHasher()  # argon2id, argon2-cffi's defaults (RFC 9106 "low memory" profile)


def check_policy(person: str, password: str) -> None:
    """AuthError saying what is wrong with a new password."""
    if len(password) < MIN_LENGTH:
        raise AuthError(f"password too short: at least {MIN_LENGTH} characters (got {len(password)})")
    if len(password) > MAX_LENGTH:
        raise AuthError(f"password too long: at most {MAX_LENGTH} characters")
    if password.strip().casefold() == person.casefold():
        raise AuthError("password must not be the person id")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """True when `password` matches; with no stored hash, a dummy one is checked so timing does not tell."""
    try:
        return HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return HASHER.check_needs_rehash(stored)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return HASHER.hash("coopflow: no such account")
