"""open_database: URL forms, SQLite defaults, PostgreSQL, and messages that hide passwords."""

from __future__ import annotations

from pathlib import Path

import pytest

from qbo_pipeline.vault import PostgresDatabase, SQLiteDatabase, mask_url, open_database


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
    with pytest.raises(ValueError) as caught:
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
    with pytest.raises(ConnectionError) as caught, db.read():
        pass
    assert "sup3rsecretpw" not in str(caught.value)
    assert "QBO_DATABASE_URL=postgresql://qbo:***@127.0.0.1:1/qbo" in str(caught.value)
