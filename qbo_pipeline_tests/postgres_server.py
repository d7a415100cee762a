"""The test session's PostgreSQL server: a throwaway one from the machine's binaries.

Tests run against a real server, not a mock. QBO_TEST_POSTGRES_URL points at an existing
server instead (each test session still creates its own databases there).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from qbo_pipeline import throwaway_postgres


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of a superuser connection to the session's server."""
    if existing := os.environ.get("QBO_TEST_POSTGRES_URL"):
        yield existing
        return
    with throwaway_postgres.postgres_server() as url:
        yield url


def create_database(server_url: str, name: str) -> str:
    """Create an empty database on the server and return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"
