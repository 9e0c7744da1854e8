"""PostgreSQL: the pool (embedded server or `database.url`), migrations, and per-table queries."""

from videoforge.db.migrations import Migration, MigrationError, load_migrations, migrate
from videoforge.db.pool import check_database, close_pool, database_ctx, open_database

__all__ = [
    "Migration",
    "MigrationError",
    "check_database",
    "close_pool",
    "database_ctx",
    "load_migrations",
    "migrate",
    "open_database",
]
