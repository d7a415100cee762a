"""The variables analytics/profiles.yml reads, from the warehouse the sync writes, so dbt
builds its models next to the `qbo` tables with no profile of its own to keep in step.

The PostgreSQL password goes in a DBT_ENV_SECRET_ variable: dbt scrubs those from its
logs, and it never appears on a command line.
"""

from __future__ import annotations

from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from qbo_pipeline.warehouse.url import duckdb_path, warehouse_kind

TARGET = "QBO_DBT_TARGET"
DUCKDB_PATH = "QBO_DBT_DUCKDB_PATH"
PASSWORD = "DBT_ENV_SECRET_QBO_PG_PASSWORD"
_POSTGRES = {
    "host": "QBO_DBT_PG_HOST",
    "port": "QBO_DBT_PG_PORT",
    "user": "QBO_DBT_PG_USER",
    "dbname": "QBO_DBT_PG_DBNAME",
}
VARIABLES = (TARGET, DUCKDB_PATH, PASSWORD, *_POSTGRES.values())


def dbt_environment(url: str | None, default_path: Path) -> dict[str, str]:
    """The profile's variables for the warehouse `url` names (unset: `default_path`)."""
    text = (url or "").strip()
    if warehouse_kind(text) == "duckdb":
        path = duckdb_path(text) if text else default_path
        return {TARGET: "duckdb", DUCKDB_PATH: str(Path(path).resolve())}
    # libpq's own parser: URLs, key=value strings, percent-decoding and defaults alike
    parts = conninfo_to_dict(text)
    environment = {TARGET: "postgres", PASSWORD: str(parts.get("password") or "")}
    defaults = {"host": "localhost", "port": "5432", "user": "postgres", "dbname": "postgres"}
    for key, variable in _POSTGRES.items():
        environment[variable] = str(parts.get(key) or defaults[key])
    return environment
