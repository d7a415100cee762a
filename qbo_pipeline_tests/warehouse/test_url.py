"""QBO_WAREHOUSE_URL: choosing the backend, and never showing a password."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.postgres import PostgresUnavailable
from qbo_pipeline.warehouse import connect_warehouse, mask_url
from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse
from qbo_pipeline.warehouse.postgres_warehouse import PostgresWarehouse
from qbo_pipeline.warehouse.url import check_warehouse_url


def test_unset_url_means_the_default_duckdb_file(tmp_path: Path) -> None:
    default = tmp_path / "state" / "nested" / "warehouse.duckdb"
    for url in (None, "", "  "):
        warehouse = connect_warehouse(url, default_path=default)
        assert isinstance(warehouse, DuckDBWarehouse)
        assert warehouse.path == default
    warehouse.ensure_schema()
    assert default.is_file()
    assert warehouse.url_for_display == f"duckdb:///{default}"


def test_duckdb_urls_follow_the_sqlalchemy_convention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = connect_warehouse("duckdb:///data/w.duckdb", default_path=Path("unused"))
    absolute = connect_warehouse(f"duckdb:///{tmp_path}/abs.duckdb", default_path=Path("x"))

    assert isinstance(relative, DuckDBWarehouse)
    assert relative.path == tmp_path / "data" / "w.duckdb"
    assert isinstance(absolute, DuckDBWarehouse)
    assert absolute.path == tmp_path / "abs.duckdb"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://reader:s3cret-pw@db.example/qbo",
        "sqlite:///warehouse.db",
        "duckdb://",
        "duckdb:///:memory:",
        "warehouse.duckdb",
    ],
)
def test_unsupported_urls_are_refused_in_one_line(url: str, tmp_path: Path) -> None:
    for refuse in (
        lambda: connect_warehouse(url, default_path=tmp_path / "w.duckdb"),
        lambda: check_warehouse_url(url),  # what Settings.from_env runs at start-up
    ):
        with pytest.raises(ConfigurationError) as raised:
            refuse()
        message = str(raised.value)
        assert message == (
            f"QBO_WAREHOUSE_URL={mask_url(url)} is not supported; use unset (a DuckDB file in "
            "the project), duckdb:///path/to/file.duckdb or postgresql://user@host/db"
        )
        assert "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://qbo:s3cret@db:5432/wh", "postgresql://qbo:***@db:5432/wh"),
        (
            "postgres://qbo:p@s/s:w@db/wh?sslmode=require",
            "postgres://qbo:***@db/wh?sslmode=require",
        ),
        (
            "postgresql://qbo:s3cret@db/wh?options=me@corp",
            "postgresql://qbo:***@db/wh?options=me@corp",
        ),
        ("postgresql://db/wh?user=qbo&password=s3cret", "postgresql://db/wh?user=qbo&password=***"),
        ("postgresql://qbo@db/wh", "postgresql://qbo@db/wh"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    warehouse = connect_warehouse(url, default_path=Path("unused"))
    assert isinstance(warehouse, PostgresWarehouse)
    assert warehouse.url_for_display == shown
    assert "s3cret" not in repr(warehouse)


def test_connection_errors_never_show_the_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    url = f"postgresql://qbo:s3cret-pw@127.0.0.1:{port}/wh?password=other-s3cret"
    warehouse = connect_warehouse(url, default_path=Path("unused"))

    with pytest.raises(PostgresUnavailable) as raised:
        warehouse.ensure_schema()

    assert "s3cret" not in str(raised.value)
    assert "cannot connect to QBO_WAREHOUSE_URL=postgresql://qbo:***@127.0.0.1" in str(raised.value)


def test_postgres_scheme_alias_reaches_the_same_server(postgres_url: str) -> None:
    alias = postgres_url.replace("postgresql://", "postgres://", 1)
    warehouse = connect_warehouse(alias, default_path=Path("unused"))
    try:
        warehouse.ensure_schema()
        assert warehouse.count("customers") == 0
    finally:
        warehouse.close()
