"""Local user accounts: the only module with SQL for the `users` table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from videoforge.errors import Conflict


@dataclass(frozen=True)
class User:
    id: str
    username: str
    is_admin: bool
    created_at: datetime


@dataclass(frozen=True)
class Credentials:
    """An account and the hash its password is checked against."""

    user: User
    password_hash: str


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        is_admin=row["is_admin"],
        created_at=row["created_at"],
    )


# What a user id can own, other than its account: a name that owns any of these exists already,
# through tokens (`videoforge token --user NAME`, or an identity provider's), and whoever
# registered it would get that identity's videos, jobs, uploads in flight and webhooks. Caption
# tracks, assets, chunks and deliveries hang off these rows; a webhook event is written only while
# an endpoint of its owner exists, and is reachable only through that endpoint.
_OWNS_NOTHING = """
    NOT EXISTS (SELECT 1 FROM gallery_videos WHERE user_id = $1)
    AND NOT EXISTS (SELECT 1 FROM jobs WHERE user_id = $1)
    AND NOT EXISTS (SELECT 1 FROM uploads WHERE user_id = $1)
    AND NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE user_id = $1)
"""


async def create_user(
    pool: asyncpg.Pool,
    *,
    user_id: str,
    username: str,
    password_hash: str,
    is_admin: bool = False,
) -> User:
    """Insert a local account; `Conflict` when the username is taken, whatever its case, or
    when `user_id` already owns anything (it is somebody's identity without an account)."""
    try:
        # One statement: the check and the insert see the same snapshot, and two registrations
        # of one name race on the unique indexes.
        row = await pool.fetchrow(
            f"""
            INSERT INTO users (id, username, password_hash, is_admin)
            SELECT $1, $2, $3, $4
            WHERE {_OWNS_NOTHING}
            RETURNING id, username, is_admin, created_at
            """,
            user_id,
            username,
            password_hash,
            is_admin,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "users_pkey":
            raise Conflict("User already exists") from None
        raise Conflict("Username already taken") from None
    if row is None:
        raise Conflict("User already exists")
    return _user(row)


async def get_credentials(pool: asyncpg.Pool, username: str) -> Credentials | None:
    """The account and its password hash, matching the username case-insensitively."""
    row = await pool.fetchrow(
        """
        SELECT id, username, is_admin, created_at, password_hash
        FROM users
        WHERE lower(username) = lower($1)
        """,
        username,
    )
    return None if row is None else Credentials(_user(row), row["password_hash"])


async def get_user(pool: asyncpg.Pool, user_id: str) -> User | None:
    """The account with this id, if any."""
    row = await pool.fetchrow(
        "SELECT id, username, is_admin, created_at FROM users WHERE id = $1", user_id
    )
    return None if row is None else _user(row)


async def set_admin(pool: asyncpg.Pool, username: str, is_admin: bool) -> User | None:
    """Grant or withdraw admin rights (case-insensitive name); None if there is no such user."""
    row = await pool.fetchrow(
        """
        UPDATE users SET is_admin = $2
        WHERE lower(username) = lower($1)
        RETURNING id, username, is_admin, created_at
        """,
        username,
        is_admin,
    )
    return None if row is None else _user(row)
