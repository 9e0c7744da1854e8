"""Password hashing for local accounts (argon2id), off the event loop because it is CPU heavy."""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    """Hash a password with argon2id (in a thread)."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches the hash; False for a mismatch, a garbage hash or None."""
    return await asyncio.to_thread(_verify, password_hash, password)


@functools.cache
def _dummy_hash() -> str:
    # Verified against when an account does not exist, so a login for an unknown user costs the
    # same time as one for a known user (no account enumeration by timing).
    return _hasher.hash("videoforge-no-such-account")


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None
