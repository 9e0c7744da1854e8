"""Job queue: one interface, a PostgreSQL table (default) or SQS, and the worker pool."""
