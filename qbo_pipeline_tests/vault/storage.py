"""What a store has written to disk, for the tests that look for plaintext tokens."""

from __future__ import annotations

from qbo_pipeline.vault import ConnectionStore, SQLiteDatabase


def dump_storage(store: ConnectionStore) -> bytes:
    """Everything the store has persisted: SQLite file bytes (with WAL) or every row as text."""
    db = store.db
    if isinstance(db, SQLiteDatabase):
        files = sorted(db.path.parent.glob(db.path.name + "*"))
        assert files, "no SQLite files found"
        return b"".join(path.read_bytes() for path in files)
    with db.read() as tx:
        rows = [
            *tx.all("SELECT t::text AS row FROM qbo_connections t"),
            *tx.all("SELECT t::text AS row FROM qbo_token_events t"),
        ]
    return "\n".join(row["row"] for row in rows).encode()
