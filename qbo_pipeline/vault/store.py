"""The connections table: one row per QuickBooks company (realm), tokens encrypted at rest.

Plaintext tokens exist only in memory, inside `DecryptedTokens`, whose repr and str hide
them. Every change to a row and the event describing it commit in one transaction, and
every change that reads tokens before writing them does so under the realm's row lock
(`ConnectionStore.locked`), the same lock the single-flight refresh takes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from qbo_pipeline.quickbooks.oauth import TokenSet
from qbo_pipeline.vault.crypto import KeyRing
from qbo_pipeline.vault.database import (
    Database,
    DatabaseLockTimeout,
    Row,
    Transaction,
    as_utc,
)
from qbo_pipeline.vault.errors import RefreshLockTimeout, UnknownRealm, VaultError
from qbo_pipeline.vault.events import (
    EventKind,
    TokenEvent,
    events_schema,
    read_events,
    record_event,
)

CONNECTIONS_TABLE = "qbo_connections"
ACCESS_TOKEN = "access_token"
REFRESH_TOKEN = "refresh_token"
_ERROR_LIMIT = 1000


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    REVOKED = "revoked"


def fingerprint(token: str) -> str:
    """A short, irreversible tag for a token (first 8 hex digits of its SHA-256).

    Lets operators and logs tell tokens apart, e.g. which refresh token a refresh used,
    without ever showing one.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class Connection:
    """A connection's metadata: everything but the tokens, safe to show anywhere."""

    id: int
    realm_id: str
    organization_id: str | None
    status: ConnectionStatus
    key_id: str
    expires_at: datetime
    refresh_expires_at: datetime | None
    refresh_hard_expires_at: datetime | None
    last_refresh_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Connection:
        return cls(
            id=int(row["id"]),
            realm_id=row["realm_id"],
            organization_id=row["organization_id"],
            status=ConnectionStatus(row["status"]),
            key_id=row["key_id"],
            expires_at=_required_time(row["expires_at"]),
            refresh_expires_at=as_utc(row["refresh_expires_at"]),
            refresh_hard_expires_at=as_utc(row["refresh_hard_expires_at"]),
            last_refresh_at=as_utc(row["last_refresh_at"]),
            last_error=row["last_error"],
            created_at=_required_time(row["created_at"]),
            updated_at=_required_time(row["updated_at"]),
        )


@dataclass(frozen=True)
class DecryptedTokens:
    """A connection's tokens in plaintext; repr and str show only expiries and status."""

    realm_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None
    refresh_hard_expires_at: datetime | None
    status: ConnectionStatus

    def access_valid(self, *, margin: timedelta, now: datetime | None = None) -> bool:
        """True when the access token outlives `now` by more than `margin`."""
        return self.access_expires_at - margin > (now or datetime.now(UTC))


def _required_time(value: datetime | str | None) -> datetime:
    converted = as_utc(value)
    if converted is None:
        raise VaultError(f"{CONNECTIONS_TABLE} holds a NULL in a NOT NULL timestamp column")
    return converted


def _clip_error(error: str) -> str:
    error = " ".join(error.split())
    return error if len(error) <= _ERROR_LIMIT else error[: _ERROR_LIMIT - 1] + "…"


def connections_schema(db: Database) -> list[str]:
    statuses = ", ".join(f"'{status.value}'" for status in ConnectionStatus)
    ts = db.timestamp_type
    return [
        f"""CREATE TABLE IF NOT EXISTS {CONNECTIONS_TABLE} (
            id {db.identity_column},
            organization_id TEXT,
            realm_id TEXT NOT NULL UNIQUE,
            access_token TEXT NOT NULL,
            refresh_token TEXT NOT NULL,
            key_id TEXT NOT NULL,
            expires_at {ts} NOT NULL,
            refresh_expires_at {ts},
            refresh_hard_expires_at {ts},
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ({statuses})),
            last_refresh_at {ts},
            last_error TEXT,
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL
        )""",
        *events_schema(db),
    ]


class LockedConnection:
    """A connection row held under its lock inside an open transaction.

    Whatever is written through it commits together when the `ConnectionStore.locked`
    block ends normally, and before the lock is released.
    """

    def __init__(self, store: ConnectionStore, tx: Transaction, row: Row) -> None:
        self._store = store
        self._tx = tx
        self._row = row
        self.connection = Connection.from_row(row)

    def __repr__(self) -> str:
        return f"LockedConnection(realm_id={self.connection.realm_id!r})"

    def tokens(self) -> DecryptedTokens:
        return self._store._decrypt_row(self._row)

    def save_refreshed(self, tokens: TokenSet, *, previous_refresh_token: str) -> None:
        """Store rotated tokens from a refresh, and a 'refreshed' event."""
        realm_id = self.connection.realm_id
        now = datetime.now(UTC)
        access, refresh = self._store._encrypt_pair(realm_id, tokens)
        self._tx.execute(
            f"""UPDATE {CONNECTIONS_TABLE} SET access_token = ?, refresh_token = ?, key_id = ?,
                expires_at = ?, refresh_expires_at = COALESCE(?, refresh_expires_at),
                refresh_hard_expires_at = COALESCE(?, refresh_hard_expires_at),
                status = ?, last_refresh_at = ?, last_error = NULL, updated_at = ?
                WHERE realm_id = ?""",
            (
                access,
                refresh,
                self._store.keyring.primary_kid,
                tokens.access_expires_at,
                tokens.refresh_expires_at,
                tokens.refresh_hard_expires_at,
                ConnectionStatus.ACTIVE.value,
                now,
                now,
                realm_id,
            ),
        )
        rotated = "rotated" if tokens.refresh_token != previous_refresh_token else "unchanged"
        record_event(
            self._tx,
            realm_id,
            EventKind.REFRESHED,
            f"access token valid until {tokens.access_expires_at.isoformat(timespec='seconds')}; "
            f"refresh token {rotated} ({fingerprint(previous_refresh_token)} -> "
            f"{fingerprint(tokens.refresh_token)})",
            at=now,
        )

    def mark_needs_reauth(self, error: str, kind: EventKind = EventKind.INVALID_GRANT) -> None:
        self._set_status(ConnectionStatus.NEEDS_REAUTH, error, kind)

    def mark_revoked(self, reason: str = "revoked") -> None:
        self._set_status(ConnectionStatus.REVOKED, reason, EventKind.REVOKED)

    def record_refresh_failure(self, error: str) -> None:
        """Keep the error on the row and in a 'refresh_failed' event; the status stays."""
        now = datetime.now(UTC)
        self._tx.execute(
            f"UPDATE {CONNECTIONS_TABLE} SET last_error = ?, updated_at = ? WHERE realm_id = ?",
            (_clip_error(error), now, self.connection.realm_id),
        )
        record_event(self._tx, self.connection.realm_id, EventKind.REFRESH_FAILED, error, at=now)

    def reencrypt(self) -> bool:
        """Re-encrypt under the primary key; False when it already was."""
        ring = self._store.keyring
        old_kid = self.connection.key_id
        tokens = self.tokens()
        if (
            old_kid == ring.primary_kid
            and KeyRing.key_id_of(self._row[ACCESS_TOKEN]) == ring.primary_kid
            and KeyRing.key_id_of(self._row[REFRESH_TOKEN]) == ring.primary_kid
        ):
            return False
        realm_id = self.connection.realm_id
        now = datetime.now(UTC)
        self._tx.execute(
            f"""UPDATE {CONNECTIONS_TABLE} SET access_token = ?, refresh_token = ?, key_id = ?,
                updated_at = ? WHERE realm_id = ?""",
            (
                ring.encrypt(tokens.access_token, realm_id=realm_id, field=ACCESS_TOKEN),
                ring.encrypt(tokens.refresh_token, realm_id=realm_id, field=REFRESH_TOKEN),
                ring.primary_kid,
                now,
                realm_id,
            ),
        )
        record_event(
            self._tx,
            realm_id,
            EventKind.KEY_ROTATED,
            f"re-encrypted under key id {ring.primary_kid} (was {old_kid})",
            at=now,
        )
        return True

    def _set_status(self, status: ConnectionStatus, error: str, kind: EventKind) -> None:
        now = datetime.now(UTC)
        self._tx.execute(
            f"""UPDATE {CONNECTIONS_TABLE} SET status = ?, last_error = ?, updated_at = ?
                WHERE realm_id = ?""",
            (status.value, _clip_error(error), now, self.connection.realm_id),
        )
        record_event(self._tx, self.connection.realm_id, kind, error, at=now)


class ConnectionStore:
    """Saves, reads and re-keys QuickBooks connections; decrypts only on request."""

    def __init__(self, db: Database, keyring: KeyRing, *, create_schema: bool = True) -> None:
        self.db = db
        self.keyring = keyring
        if create_schema:
            db.create_schema(connections_schema(db))

    def __repr__(self) -> str:
        return f"ConnectionStore(db={self.db!r}, keyring={self.keyring!r})"

    def save_tokens(
        self, realm_id: str, tokens: TokenSet, organization_id: str | None = None
    ) -> Connection:
        """Insert or replace a realm's tokens (a new connection or a reconnect): active again."""
        if tokens.realm_id is not None and tokens.realm_id != realm_id:
            raise VaultError(
                f"tokens issued for realm {tokens.realm_id} cannot be saved for realm {realm_id}"
            )
        now = datetime.now(UTC)
        access, refresh = self._encrypt_pair(realm_id, tokens)
        with self._write(realm_id) as tx:
            tx.execute(
                f"""INSERT INTO {CONNECTIONS_TABLE} (organization_id, realm_id, access_token,
                    refresh_token, key_id, expires_at, refresh_expires_at,
                    refresh_hard_expires_at, status, last_refresh_at, last_error, created_at,
                    updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)
                ON CONFLICT (realm_id) DO UPDATE SET
                    organization_id = COALESCE(excluded.organization_id,
                                               {CONNECTIONS_TABLE}.organization_id),
                    access_token = excluded.access_token,
                    refresh_token = excluded.refresh_token,
                    key_id = excluded.key_id,
                    expires_at = excluded.expires_at,
                    refresh_expires_at = excluded.refresh_expires_at,
                    refresh_hard_expires_at = excluded.refresh_hard_expires_at,
                    status = excluded.status,
                    last_error = NULL,
                    updated_at = excluded.updated_at""",
                (
                    organization_id,
                    realm_id,
                    access,
                    refresh,
                    self.keyring.primary_kid,
                    tokens.access_expires_at,
                    tokens.refresh_expires_at,
                    tokens.refresh_hard_expires_at,
                    ConnectionStatus.ACTIVE.value,
                    now,
                    now,
                ),
            )
            detail = (
                "tokens saved; access token valid until "
                f"{tokens.access_expires_at.isoformat(timespec='seconds')}"
            )
            record_event(tx, realm_id, EventKind.CONNECTED, detail, at=now)
            row = tx.one(f"SELECT * FROM {CONNECTIONS_TABLE} WHERE realm_id = ?", (realm_id,))
        assert row is not None
        return Connection.from_row(row)

    def find(self, realm_id: str) -> Connection | None:
        with self.db.read() as tx:
            row = tx.one(f"SELECT * FROM {CONNECTIONS_TABLE} WHERE realm_id = ?", (realm_id,))
        return Connection.from_row(row) if row else None

    def get(self, realm_id: str) -> Connection:
        connection = self.find(realm_id)
        if connection is None:
            raise UnknownRealm(realm_id)
        return connection

    def decrypt(self, realm_id: str) -> DecryptedTokens:
        with self.db.read() as tx:
            row = tx.one(f"SELECT * FROM {CONNECTIONS_TABLE} WHERE realm_id = ?", (realm_id,))
        if row is None:
            raise UnknownRealm(realm_id)
        return self._decrypt_row(row)

    def list(self) -> list[Connection]:
        with self.db.read() as tx:
            rows = tx.all(f"SELECT * FROM {CONNECTIONS_TABLE} ORDER BY realm_id")
        return [Connection.from_row(row) for row in rows]

    def mark_needs_reauth(self, realm_id: str, error: str) -> None:
        """The grant is unusable (invalid_grant): stop refreshing until someone reconnects."""
        with self.locked(realm_id) as locked:
            locked.mark_needs_reauth(error)

    def mark_revoked(self, realm_id: str) -> None:
        """The app was disconnected from the company; tokens stay encrypted but unused."""
        with self.locked(realm_id) as locked:
            locked.mark_revoked()

    def events(
        self, after_id: int = 0, *, realm_id: str | None = None, limit: int = 1000
    ) -> list[TokenEvent]:
        with self.db.read() as tx:
            return read_events(tx, after_id=after_id, realm_id=realm_id, limit=limit)

    def rotate_keys(self) -> int:
        """Re-encrypt every connection under the primary key; returns how many changed.

        One transaction per realm under its lock, so a refresh running meanwhile is never
        overwritten, and a failure part-way leaves finished realms done: run it again.
        """
        changed = 0
        for realm_id in self._realm_ids():
            with self.locked(realm_id) as locked:
                changed += locked.reencrypt()
        return changed

    @contextmanager
    def locked(self, realm_id: str) -> Iterator[LockedConnection]:
        """Hold the realm's row lock (SQLite: the database write lock) for the block.

        Writes made through the yielded object commit when the block ends normally and
        roll back if it raises.
        """
        with self._write(realm_id) as tx:
            row = tx.one(
                f"SELECT * FROM {CONNECTIONS_TABLE} WHERE realm_id = ?{self.db.for_update}",
                (realm_id,),
            )
            if row is None:
                raise UnknownRealm(realm_id)
            yield LockedConnection(self, tx, row)

    @contextmanager
    def _write(self, realm_id: str) -> Iterator[Transaction]:
        try:
            with self.db.transaction() as tx:
                yield tx
        except DatabaseLockTimeout:
            raise RefreshLockTimeout(realm_id, self.db.lock_timeout) from None

    def _realm_ids(self) -> list[str]:
        with self.db.read() as tx:
            rows = tx.all(f"SELECT realm_id FROM {CONNECTIONS_TABLE} ORDER BY realm_id")
        return [row["realm_id"] for row in rows]

    def _encrypt_pair(self, realm_id: str, tokens: TokenSet) -> tuple[str, str]:
        return (
            self.keyring.encrypt(tokens.access_token, realm_id=realm_id, field=ACCESS_TOKEN),
            self.keyring.encrypt(tokens.refresh_token, realm_id=realm_id, field=REFRESH_TOKEN),
        )

    def _decrypt_row(self, row: Row) -> DecryptedTokens:
        realm_id = row["realm_id"]
        return DecryptedTokens(
            realm_id=realm_id,
            access_token=self.keyring.decrypt(
                row[ACCESS_TOKEN], realm_id=realm_id, field=ACCESS_TOKEN
            ),
            refresh_token=self.keyring.decrypt(
                row[REFRESH_TOKEN], realm_id=realm_id, field=REFRESH_TOKEN
            ),
            access_expires_at=_required_time(row["expires_at"]),
            refresh_expires_at=as_utc(row["refresh_expires_at"]),
            refresh_hard_expires_at=as_utc(row["refresh_hard_expires_at"]),
            status=ConnectionStatus(row["status"]),
        )
