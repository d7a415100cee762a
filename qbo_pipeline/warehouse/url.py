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
    # Imported here, not at the top: the DuckDB writer brings pandas and pyarrow (~0.6 s),
    # which a process that imports the warehouse package but opens none should not pay.
    from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse
    from qbo_pipeline.warehouse.postgres_warehouse import PostgresWarehouse

    text = (url or "").strip()
    if not text:
        return DuckDBWarehouse(default_path, entities=entities)
    lowered = text.lower()
    if lowered.startswith(DUCKDB_PREFIX):
        return DuckDBWarehouse(duckdb_path(text), entities=entities)
    if lowered.startswith(POSTGRES_PREFIXES):
        return PostgresWarehouse(text, entities=entities)
    raise unsupported(text)
