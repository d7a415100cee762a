"""PostgreSQL access for the token store and the warehouse: pooled connections, clear errors.

Both open their database through `Postgres`, so a connection is made, configured and
reported on in one place: psycopg_pool keeps a few connections per process (a Dagster
run, a sensor tick and the service each reuse theirs instead of reconnecting), every
session runs in UTC, and a database that cannot be reached is one line naming the
variable and the masked URL, never the password.

A pool's worker threads do not survive a fork, so a child process opens a pool of its
own rather than touching its parent's sockets.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from qbo_pipeline.errors import PipelineError
from qbo_pipeline.urls import mask_url, scrub

POOL_SIZE = 4
CONNECT_TIMEOUT_SECONDS = 10
# How long a caller waits for a pooled connection before the database counts as down.
WAIT_SECONDS = 30.0


class PostgresUnavailable(PipelineError):
    """The server refused or did not answer; it may be restarting, so worth a retry."""

    transient = True


def libpq_url(url: str) -> str:
    """SQLAlchemy's postgresql+psycopg:// spelling as libpq takes it."""
    scheme, _, rest = url.partition(":")
    return f"postgresql:{rest}" if scheme.lower() == "postgresql+psycopg" else url


class Postgres:
    """Pooled connections to the database one URL names, in autocommit mode."""

    def __init__(
        self,
        url: str,
        *,
        variable: str,
        pool_size: int = POOL_SIZE,
        connection_options: dict[str, Any] | None = None,
        wait: float = WAIT_SECONDS,
    ) -> None:
        self._url = libpq_url(url)
        self.variable = variable
        self.url_for_display = mask_url(url)
        self._pool_size = pool_size
        self._options = {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "qbo-pipeline",
            **(connection_options or {}),
        }
        self._wait = wait
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Postgres({self.variable}={self.url_for_display!r})"

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for the block; it returns to the pool afterwards (or is replaced
        when it broke)."""
        pool = self._pool_of_this_process()
        try:
            connection = pool.getconn(timeout=self._wait)
        except psycopg_pool.PoolTimeout:
            reason = self._connect_once() or f"no free connection within {self._wait:g} s"
            raise PostgresUnavailable(self._unreachable(reason)) from None
        try:
            yield connection
        finally:
            pool.putconn(connection)

    @contextmanager
    def dedicated(self, application_name: str) -> Iterator[psycopg.Connection]:
        """A connection of the block's own, outside the pool: for a session-level lock held
        for minutes, which would otherwise take one of the pool's few connections."""
        options = {**self._options, "application_name": application_name[:63]}
        try:
            connection = psycopg.connect(self._url, **options)
        except psycopg.Error:
            raise PostgresUnavailable(self._unreachable(self._connect_once() or "")) from None
        with connection:
            _in_utc(connection)
            yield connection

    def close(self) -> None:
        """Close this process's connections; the object reopens them on demand."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()

    def _pool_of_this_process(self) -> psycopg_pool.ConnectionPool:
        with self._lock:
            if self._pid != os.getpid():
                self._pool, self._pid = None, os.getpid()  # the parent's: left untouched
            if self._pool is None:
                # One direct attempt first: a wrong URL or a stopped server then fails at
                # once with the server's reason, instead of after the pool's wait.
                if reason := self._connect_once():
                    raise PostgresUnavailable(self._unreachable(reason))
                self._pool = psycopg_pool.ConnectionPool(
                    self._url,
                    kwargs=self._options,
                    min_size=0,
                    max_size=self._pool_size,
                    configure=_in_utc,
                    open=True,
                    name=self.variable,
                    num_workers=1,  # connections are made on demand, a few per process
                )
            return self._pool

    def _connect_once(self) -> str | None:
        """Why a direct connection fails (libpq's first line, password scrubbed), or None."""
        try:
            psycopg.connect(self._url, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
        except psycopg.Error as error:
            lines = str(error).strip().splitlines()
            return scrub(lines[0], self._url) if lines else type(error).__name__
        return None

    def _unreachable(self, reason: str) -> str:
        return (
            f"cannot connect to {self.variable}={self.url_for_display}: {reason}; check the "
            "URL and that the server is up"
        )


def _in_utc(connection: psycopg.Connection) -> None:
    connection.execute("SET TIME ZONE 'UTC'")
