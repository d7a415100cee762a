"""QBO_WAREHOUSE_URL: which warehouse to open, and how to show its URL without a password.

duckdb:///relative/path.duckdb and duckdb:////absolute/path.duckdb follow the SQLAlchemy
convention the token store's sqlite:/// URLs use; postgresql:// and postgres:// go to libpq
as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qbo_pipeline.warehouse.base import Warehouse

DUCKDB_PREFIX = "duckdb:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")

# password=... among the query parameters (libpq accepts it there too).
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)


def _split_password(url: str) -> tuple[str, str, str] | None:
    """(before, password, after) when the authority holds user:password@, else None.

    The password ends at the last @ before the query string, so an unescaped @, / or :
    inside it is still masked (an unescaped ? cannot be told from the query's start).
    """
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    first_at = url.find("@", start)
    if first_at < 0:
        return None
    query = url.find("?", first_at)
    at = url.rfind("@", start, len(url) if query < 0 else query)
    colon = url.find(":", start, at)
    if colon < 0:
        return None
    return url[: colon + 1], url[colon + 1 : at], url[at:]


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, fit for logs, errors and the UI."""
    masked = url
    if parts := _split_password(url):
        before, _, after = parts
        masked = f"{before}***{after}"
    return _QUERY_PASSWORD.sub(r"\1***", masked)


def scrub(message: str, url: str) -> str:
    """Remove the URL's password from a message a driver produced, in case it echoed it."""
    message = message.replace(url, mask_url(url))
    for secret in sorted(_passwords(url), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def _passwords(url: str) -> set[str]:
    found = []
    if parts := _split_password(url):
        found.append(parts[1])
    found.extend(match.group(2) for match in _QUERY_PASSWORD.finditer(url))
    return {secret for value in found if value for secret in (value, unquote(value))}


def unsupported(url: str) -> ValueError:
    return ValueError(
        f"QBO_WAREHOUSE_URL {mask_url(url)!r} is not supported; "
        "use duckdb:///path/to/file.duckdb or postgresql://user@host/db"
    )


def duckdb_path(url: str) -> Path:
    path = url[len(DUCKDB_PREFIX) :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise unsupported(url)
    return Path(unquote(path))


def connect_warehouse(
    url: str | None, *, default_path: Path, entities: Sequence[Entity] = ENTITIES
) -> Warehouse:
    """Open (not yet create) the warehouse a URL names; unset means the local DuckDB file."""
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
