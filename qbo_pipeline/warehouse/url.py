"""QBO_WAREHOUSE_URL: which warehouse to open.

duckdb:///relative/path.duckdb and duckdb:////absolute/path.duckdb follow the SQLAlchemy
convention the token store's sqlite:/// URLs use; postgresql:// and postgres:// go to libpq
as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.urls import mask_url
from qbo_pipeline.warehouse.base import WAREHOUSE_URL_VARIABLE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qbo_pipeline.warehouse.base import Warehouse

DUCKDB_PREFIX = "duckdb:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def unsupported(url: str) -> ConfigurationError:
    return ConfigurationError(
        f"{WAREHOUSE_URL_VARIABLE}={mask_url(url)} is not supported; use unset (a DuckDB "
        "file in the project), duckdb:///path/to/file.duckdb or postgresql://user@host/db"
    )


def warehouse_kind(url: str | None) -> str:
    """ "postgres" for the URLs `connect_warehouse` opens with PostgreSQL, else "duckdb"."""
    return "postgres" if (url or "").strip().lower().startswith(POSTGRES_PREFIXES) else "duckdb"


def check_warehouse_url(url: str | None) -> None:
    """Raise ConfigurationError unless `url` is a form `connect_warehouse` accepts."""
    text = (url or "").strip()
    lowered = text.lower()
    if not text or lowered.startswith(POSTGRES_PREFIXES):
        return
    if not lowered.startswith(DUCKDB_PREFIX):
        raise unsupported(text)
    duckdb_path(text)


def duckdb_path(url: str) -> Path:
    path = url[len(DUCKDB_PREFIX) :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise unsupported(url)
    return Path(unquote(path))


def connect_warehouse(
    url: str | None, *, default_path: Path, entities: Sequence[Entity] = ENTITIES
) -> Warehouse:
    """Open (not yet create) the warehouse a URL names; unset means the local DuckDB file."""
    # Each backend is imported when named, not at the top: a process pays only for the one
    # it opens (psycopg and its pool cost a DuckDB run ~90 ms).
    text = (url or "").strip()
    lowered = text.lower()
    if not text or lowered.startswith(DUCKDB_PREFIX):
        from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(duckdb_path(text) if text else default_path, entities=entities)
    if lowered.startswith(POSTGRES_PREFIXES):
        from qbo_pipeline.warehouse.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(text, entities=entities)
    raise unsupported(text)
