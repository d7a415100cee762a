"""The token event log: what happened to each connection's credentials, and when.

An alert sensor reads it with a cursor (`after_id`), so ids must appear in commit order:
on PostgreSQL each insert first takes a transaction-scoped advisory lock, which makes a
later-committing transaction also draw the later id. Details never hold a token; at most
a fingerprint (first 8 hex digits of its SHA-256).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from qbo_pipeline.vault.database import Database, Row, Transaction, as_utc

EVENTS_TABLE = "qbo_token_events"
_DETAIL_LIMIT = 1000


class EventKind(StrEnum):
    CONNECTED = "connected"
    REFRESHED = "refreshed"
    REFRESH_FAILED = "refresh_failed"
    INVALID_GRANT = "invalid_grant"
    REVOKED = "revoked"
    KEY_ROTATED = "key_rotated"


@dataclass(frozen=True)
class TokenEvent:
    id: int
    realm_id: str
    occurred_at: datetime
    kind: EventKind
    detail: str | None

    @classmethod
    def from_row(cls, row: Row) -> TokenEvent:
        occurred_at = as_utc(row["occurred_at"])
        assert occurred_at is not None
        return cls(
            id=int(row["id"]),
            realm_id=row["realm_id"],
            occurred_at=occurred_at,
            kind=EventKind(row["kind"]),
            detail=row["detail"],
        )


def events_schema(db: Database) -> list[str]:
    kinds = ", ".join(f"'{kind.value}'" for kind in EventKind)
    return [
        f"""CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
            id {db.identity_column},
            realm_id TEXT NOT NULL,
            occurred_at {db.timestamp_type} NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ({kinds})),
            detail TEXT
        )""",
        f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_realm ON {EVENTS_TABLE} (realm_id, id)",
    ]


def record_event(
    tx: Transaction,
    realm_id: str,
    kind: EventKind,
    detail: str | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Append an event inside the caller's transaction, so it commits with the change."""
    tx.advisory_lock(EVENTS_TABLE)
    tx.execute(
        f"INSERT INTO {EVENTS_TABLE} (realm_id, occurred_at, kind, detail) VALUES (?, ?, ?, ?)",
        (realm_id, at or datetime.now(UTC), kind.value, _clip(detail)),
    )


def read_events(
    tx: Transaction, *, after_id: int = 0, realm_id: str | None = None, limit: int = 1000
) -> list[TokenEvent]:
    where, params = "id > ?", [after_id]
    if realm_id is not None:
        where += " AND realm_id = ?"
        params.append(realm_id)
    rows = tx.all(
        f"SELECT id, realm_id, occurred_at, kind, detail FROM {EVENTS_TABLE} "
        f"WHERE {where} ORDER BY id LIMIT ?",
        (*params, limit),
    )
    return [TokenEvent.from_row(row) for row in rows]


def _clip(detail: str | None) -> str | None:
    if detail is None:
        return None
    detail = " ".join(detail.split())
    return detail if len(detail) <= _DETAIL_LIMIT else detail[: _DETAIL_LIMIT - 1] + "…"
