"""PostgreSQL fixtures shared with the core database tests."""

from tests.core.test_database_postgres import pg_url, server  # noqa: F401 - fixtures
