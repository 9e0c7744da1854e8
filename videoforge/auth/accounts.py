"""Local accounts: register, and sign in with a password (in JWKS mode, the identity provider's
job). A local account's id is its lower-case name, readable in keys such as `gallery/alice/`."""

from __future__ import annotations

import asyncpg

from videoforge.auth.passwords import hash_password, verify_password
from videoforge.db import users
from videoforge.db.users import User
from videoforge.errors import Conflict, Unauthorized

__all__ = ["User", "register", "sign_in"]


async def register(pool: asyncpg.Pool, username: str, password: str) -> User:
    """A new account; Conflict if the name is taken."""
    try:
        return await users.create_user(
            pool, user_id=username, username=username, password_hash=await hash_password(password)
        )
    except Conflict:
        raise Conflict("Username already taken") from None


async def sign_in(pool: asyncpg.Pool, username: str, password: str) -> User:
    """The account these credentials open; Unauthorized otherwise."""
    found = await users.get_credentials(pool, username)
    # An unknown user is checked against a dummy hash: the timing does not reveal who exists.
    password_ok = await verify_password(found.password_hash if found else None, password)
    if found is None or not password_ok:
        raise Unauthorized("Invalid username or password")
    return found.user
