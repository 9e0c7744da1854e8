"""What query functions run on: the pool, or a connection (inside a transaction)."""

from asyncpg import Connection, Pool
from asyncpg.pool import PoolConnectionProxy

Executor = Pool | Connection | PoolConnectionProxy
