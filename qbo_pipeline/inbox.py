"""The webhook inbox: every event Intuit delivered, stored before the delivery is answered.

It is the table `qbo_webhook_events` in the token store's database (SQLite or
PostgreSQL), because the service that receives deliveries already holds that database and
it is the one store every part of a deployment shares. An event is stored once (its
`event_id` is unique, so Intuit's redeliveries change nothing), pending until a run has
committed what it reports, and then processed. Events that can never be synced are kept
with the reason: `rejected` (not understood), `unconnected` (a company with no
connection) and `ignored` (an entity the warehouse has no table for).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from qbo_pipeline.quickbooks.catalog import ENTITIES
from qbo_pipeline.quickbooks.webhooks import KNOWN_OPERATIONS, RejectedEvent, WebhookEvent
from qbo_pipeline.vault.database import Database, Row, Transaction, as_utc
from qbo_pipeline.vault.store import CONNECTIONS_TABLE

log = logging.getLogger(__name__)

EVENTS_TABLE = "qbo_webhook_events"
_SYNCED_ENTITIES = {entity.name.lower() for entity in ENTITIES}
_DETAIL_LIMIT = 500
_MARK_CHUNK = 500  # ids per UPDATE, well under SQLite's limit on parameters


class EventStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    REJECTED = "rejected"
    UNCONNECTED = "unconnected"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Receipt:
    """What storing one delivery did, as the receiver answers it."""

    stored: int
    duplicates: int
    rejected: int


@dataclass(frozen=True)
class PendingWork:
    """A realm's pending events for one entity: how many, and the newest row id."""

    realm_id: str
    entity: str
    events: int
    through_id: int


def inbox_schema(db: Database) -> list[str]:
    ts = db.timestamp_type
    statuses = ", ".join(f"'{status.value}'" for status in EventStatus)
    return [
        f"""CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
            id {db.identity_column},
            event_id TEXT NOT NULL UNIQUE,
            realm_id TEXT,
            entity TEXT,
            entity_id TEXT,
            operation TEXT,
            deleted_id TEXT,
            occurred_at {ts},
            received_at {ts} NOT NULL,
            processed_at {ts},
            status TEXT NOT NULL CHECK (status IN ({statuses})),
            run_id TEXT,
            detail TEXT
        )""",
        f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_work "
        f"ON {EVENTS_TABLE} (status, realm_id, entity, id)",
    ]


class WebhookInbox:
    def __init__(self, db: Database, *, create_schema: bool = True) -> None:
        self.db = db
        # Deliveries arriving together wait here in turn, not in SQLite's busy handler,
        # whose growing sleeps made one of eight concurrent deliveries wait 3 s and more.
        self._store_lock = threading.Lock()
        if create_schema:
            db.create_schema(inbox_schema(db), tables=(EVENTS_TABLE,))

    def __repr__(self) -> str:
        return f"WebhookInbox(db={self.db!r})"

    def store(
        self,
        events: Sequence[WebhookEvent | RejectedEvent],
        *,
        received_at: datetime | None = None,
    ) -> Receipt:
        """Store a delivery's events in one transaction; a known event_id is skipped.

        One batched INSERT per kind of row (one round trip on PostgreSQL), so a delivery
        of a thousand events is stored in milliseconds.
        """
        received_at = received_at or datetime.now(UTC)
        with self._store_lock, self.db.transaction() as tx:
            connected = _connected_realms(tx)
            rows: dict[bool, list[tuple]] = {True: [], False: []}
            for event in events:
                status, detail = _triage(event, connected)
                rows[status is EventStatus.REJECTED].append(
                    _row(event, status, detail, received_at)
                )
            rejected = tx.execute_many(_INSERT, _unique(rows[True]))
            accepted = tx.execute_many(_INSERT, _unique(rows[False]))
        return Receipt(
            stored=rejected + accepted, duplicates=len(events) - rejected - accepted,
            rejected=rejected,
        )  # fmt: skip

    def pending_work(self, limit: int = 10_000) -> list[PendingWork]:
        """Pending events grouped by realm and entity, oldest realms first."""
        with self.db.read() as tx:
            rows = tx.all(
                f"SELECT realm_id, entity, count(*) AS events, max(id) AS through_id "
                f"FROM {EVENTS_TABLE} WHERE status = ? GROUP BY realm_id, entity "
                "ORDER BY min(id) LIMIT ?",
                (EventStatus.PENDING.value, limit),
            )
        return [
            PendingWork(row["realm_id"], row["entity"], int(row["events"]), int(row["through_id"]))
            for row in rows
        ]

    def pending_events(
        self, realm_id: str, entity: str, through_id: int
    ) -> list[tuple[int, WebhookEvent]]:
        """The pending events (row id, event) of one realm's entity up to a row id, in the
        order received."""
        with self.db.read() as tx:
            rows = tx.all(
                f"SELECT * FROM {EVENTS_TABLE} WHERE status = ? AND realm_id = ? AND entity = ? "
                "AND id <= ? ORDER BY id",
                (EventStatus.PENDING.value, realm_id, entity.lower(), through_id),
            )
        return [(int(row["id"]), _event(row)) for row in rows]

    def mark_processed(self, row_ids: Sequence[int], *, run_id: str | None = None) -> int:
        """Mark the events a committed run applied, by the row ids it read; returns how many.

        By id, not by range: on PostgreSQL a delivery still committing can hold a lower id
        than one already read, and a range would mark it processed unread.
        """
        marked = 0
        now = datetime.now(UTC)
        with self.db.transaction() as tx:
            for start in range(0, len(row_ids), _MARK_CHUNK):
                chunk = list(row_ids[start : start + _MARK_CHUNK])
                marks = ", ".join("?" for _ in chunk)
                marked += tx.execute(
                    f"UPDATE {EVENTS_TABLE} SET status = ?, processed_at = ?, run_id = ? "
                    f"WHERE status = ? AND id IN ({marks})",
                    (EventStatus.PROCESSED.value, now, run_id, EventStatus.PENDING.value, *chunk),
                )
        return marked

    def forget(self, realm_id: str) -> int:
        """Delete every event of a company whose data is purged; returns how many."""
        with self.db.transaction() as tx:
            return tx.execute(f"DELETE FROM {EVENTS_TABLE} WHERE realm_id = ?", (realm_id,))

    def count_for(self, realm_id: str) -> int:
        with self.db.read() as tx:
            row = tx.one(
                f"SELECT count(*) AS n FROM {EVENTS_TABLE} WHERE realm_id = ?", (realm_id,)
            )
        return int(row["n"]) if row else 0

    def counts(self) -> dict[str, int]:
        """Events per status, for status pages and tests."""
        with self.db.read() as tx:
            rows = tx.all(
                f"SELECT status, count(*) AS n FROM {EVENTS_TABLE} GROUP BY status ORDER BY status"
            )
        return {row["status"]: int(row["n"]) for row in rows}


def _connected_realms(tx: Transaction) -> set[str]:
    return {row["realm_id"] for row in tx.all(f"SELECT realm_id FROM {CONNECTIONS_TABLE}")}


def _triage(
    event: WebhookEvent | RejectedEvent, connected: set[str]
) -> tuple[EventStatus, str | None]:
    if isinstance(event, RejectedEvent):
        return EventStatus.REJECTED, event.reason
    if event.realm_id not in connected:
        return EventStatus.UNCONNECTED, f"no connection for realm {event.realm_id}"
    if event.entity not in _SYNCED_ENTITIES:
        return EventStatus.IGNORED, f"the warehouse has no table for {event.entity}"
    if event.operation not in KNOWN_OPERATIONS:
        # A verb Intuit added since: the entity is read again by Id all the same.
        log.warning(
            "webhook event %s: unknown operation %r on %s; its entity will be read again",
            event.event_id,
            event.operation,
            event.entity,
        )
    return EventStatus.PENDING, None


_INSERT = (
    f"INSERT INTO {EVENTS_TABLE} (event_id, realm_id, entity, entity_id, operation, "
    "deleted_id, occurred_at, received_at, status, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)


def _row(
    event: WebhookEvent | RejectedEvent,
    status: EventStatus,
    detail: str | None,
    received_at: datetime,
) -> tuple:
    if isinstance(event, RejectedEvent):
        values = (event.event_id, event.realm_id, None, None, None, None, None)
    else:
        values = (
            event.event_id,
            event.realm_id,
            event.entity,
            event.entity_id,
            event.operation,
            event.deleted_id,
            event.occurred_at,
        )
    return (*values, received_at, status.value, (detail or "")[:_DETAIL_LIMIT] or None)


def _unique(rows: list[tuple]) -> list[tuple]:
    """The first row of each event_id: a delivery may repeat an event within itself."""
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            unique.append(row)
    return unique


def _event(row: Row) -> WebhookEvent:
    return WebhookEvent(
        event_id=row["event_id"],
        realm_id=row["realm_id"],
        entity=row["entity"],
        entity_id=row["entity_id"],
        operation=row["operation"],
        occurred_at=as_utc(row["occurred_at"]),
        deleted_id=row["deleted_id"],
    )
