"""open_database: URL forms, SQLite defaults, PostgreSQL, and messages that hide passwords."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.postgres import PostgresUnavailable
from qbo_pipeline.urls import mask_url
from qbo_pipeline.vault import (
    ConnectionStore,
    KeyRing,
    SQLiteDatabase,
    database,
    open_database,
)
from qbo_pipeline.vault.postgres_database import PostgresDatabase


def test_unset_url_means_sqlite_at_default_path(tmp_path: Path) -> None:
    default = tmp_path / "deep" / "er" / "qbo.db"
    for url in (None, "", "  "):
        db = open_database(url, default_path=default)
        assert isinstance(db, SQLiteDatabase)
        with db.transaction() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    assert default.is_file()


def test_sqlite_urls_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_database("sqlite:///data/rel.db", default_path=tmp_path / "x.db")
    assert isinstance(relative, SQLiteDatabase)
    assert relative.path == Path("data/rel.db")
    absolute = open_database(f"sqlite:///{tmp_path}/abs.db", default_path=tmp_path / "x.db")
    assert isinstance(absolute, SQLiteDatabase)
    assert absolute.path == tmp_path / "abs.db"
    with relative.transaction() as tx:
        tx.execute("CREATE TABLE t (x INTEGER)")
    assert (tmp_path / "data" / "rel.db").is_file()


def test_postgres_url_forms_and_round_trip(postgres_url: str, tmp_path: Path) -> None:
    db = open_database(postgres_url, default_path=tmp_path / "x.db")
    assert isinstance(db, PostgresDatabase)
    with db.transaction() as tx:
        tx.execute("CREATE TABLE t (x INTEGER)")
        tx.execute("INSERT INTO t (x) VALUES (?)", (7,))
    with db.read() as tx:
        assert tx.one("SELECT x FROM t") == {"x": 7}
    db.close()
    for scheme in ("postgres", "postgresql+psycopg"):
        rest = postgres_url.partition(":")[2]
        alias = open_database(f"{scheme}:{rest}", default_path=tmp_path)
        assert isinstance(alias, PostgresDatabase)
        with alias.read() as tx:
            assert tx.one("SELECT count(*) AS n FROM t") == {"n": 1}
        alias.close()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:hunter2secret@db/qbo",
        "duckdb:///x.duckdb",
        "qbo.db",
        "sqlite://relative.db",
        "sqlite:///:memory:",
    ],
)
def test_bad_urls_name_the_variable_and_hide_passwords(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_database(url, default_path=tmp_path / "x.db")
    text = str(caught.value)
    assert text.startswith("QBO_DATABASE_URL=")
    assert "postgresql://" in text or "in-memory" in text
    assert "hunter2secret" not in text
    assert "\n" not in text


def test_mask_url() -> None:
    assert mask_url("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql://h/db") == "postgresql://h/db"


def test_unreachable_postgres_message_hides_password(tmp_path: Path) -> None:
    url = "postgresql://qbo:sup3rsecretpw@127.0.0.1:1/qbo"
    db = open_database(url, default_path=tmp_path / "x.db")
    assert "sup3rsecretpw" not in repr(db)
    with pytest.raises(PostgresUnavailable) as caught, db.read():
        pass
    assert "sup3rsecretpw" not in str(caught.value)
    assert "QBO_DATABASE_URL=postgresql://qbo:***@127.0.0.1:1/qbo" in str(caught.value)


def test_a_store_that_has_its_tables_is_opened_without_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sensors open the store every tick; creating the schema each time took SQLite's
    write lock, so a tick waited behind (and then failed on) any writer."""
    url = f"sqlite:///{tmp_path / 'tokens.sqlite'}"
    keys = KeyRing({"k1": os.urandom(32)})
    ConnectionStore(open_database(url, default_path=tmp_path), keys)
    monkeypatch.setattr(database, "_schemas_ready", set())  # as a new process would be
    writer = sqlite3.connect(tmp_path / "tokens.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        store = ConnectionStore(open_database(url, default_path=tmp_path, lock_timeout=0.2), keys)
        assert store.list() == [] and store.events() == []
    finally:
        writer.rollback()
        writer.close()
