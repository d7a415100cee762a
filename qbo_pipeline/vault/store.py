"""The connections table: one row per QuickBooks company (realm), tokens encrypted at rest.

Plaintext tokens exist only in memory, inside `DecryptedTokens`, whose repr and str hide
them. Every change to a row and the event describing it commit in one short transaction.

Work that must call Intuit between reading tokens and writing new ones (a refresh, a
revoke) holds the realm's lease instead of a database lock: a row's `lease_holder` and
`lease_expires_at`, taken and given back in their own short transactions, so no lock
waits on the network and a worker that dies holding a lease blocks its realm only until
the lease lapses. What such work writes back is a compare-and-swap on the refresh token
it read, so it can never overwrite a connection that changed meanwhile (a reconnect).
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from qbo_pipeline.quickbooks.oauth import REFRESH_DEADLINE, TokenSet
from qbo_pipeline.quickbooks.realms import check_realm_id
from qbo_pipeline.vault.crypto import KeyRing
from qbo_pipeline.vault.database import Database, Row, as_utc
from qbo_pipeline.vault.errors import (
    DecryptionError,
    RefreshLockTimeout,
    UnknownKeyId,
    UnknownRealm,
    VaultError,
)
from qbo_pipeline.vault.events import (
    EVENTS_TABLE,
    EventKind,
    TokenEvent,
    events_schema,
    read_events,
    record_event,
)

CONNECTIONS_TABLE = "qbo_connections"
ACCESS_TOKEN = "access_token"
REFRESH_TOKEN = "refresh_token"
# Longer than a whole refresh may take (Intuit's answer, retries included), with room to
# save the result; a lease older than this belongs to a worker that died.
LEASE_DURATION = timedelta(seconds=REFRESH_DEADLINE * 2)
_LEASE_POLL = (0.05, 0.5)  # seconds between looks at a held lease: first, at most
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
    """A connection's tokens in plaintext; repr and str show only expiries and status.

    `stored_refresh` is the refresh token's ciphertext as read: the value a later write
    compares against, so it only lands on the row it was computed from.
    """

    realm_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None
    refresh_hard_expires_at: datetime | None
    status: ConnectionStatus
    access_issued_at: datetime | None = None
    stored_refresh: str = field(default="", repr=False)

    @property
    def access_lifetime(self) -> timedelta | None:
        if self.access_issued_at is None:
            return None
        return self.access_expires_at - self.access_issued_at

    def access_valid(self, *, margin: timedelta, now: datetime | None = None) -> bool:
        """True when the access token outlives `now` by more than `margin`, which is capped
        at half the token's lifetime: a token that lives shorter than the margin would
        otherwise be refreshed before nearly every request."""
        lifetime = self.access_lifetime
        if lifetime is not None and lifetime > timedelta(0):
            margin = min(margin, lifetime / 2)
        return self.access_expires_at - margin > (now or datetime.now(UTC))


@dataclass(frozen=True)
class Lease:
    """This worker's hold on a realm: no other refresh, revoke or re-key runs meanwhile."""

    realm_id: str
    holder: str


@dataclass
class RotationReport:
    """What `keys rotate` did to each realm."""

    primary_kid: str
    reencrypted: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)  # already under the primary key
    unreadable: dict[str, str] = field(default_factory=dict)  # realm: why

    @property
    def total(self) -> int:
        return len(self.reencrypted) + len(self.current) + len(self.unreadable)


def _required_time(value: datetime | str | None) -> datetime:
    converted = as_utc(value)
    if converted is None:
        raise VaultError(f"{CONNECTIONS_TABLE} holds a NULL in a NOT NULL timestamp column")
    return converted


def _clip_error(error: str) -> str:
    error = " ".join(error.split())
    return error if len(error) <= _ERROR_LIMIT else error[: _ERROR_LIMIT - 1] + "…"


def _new_holder() -> str:
    """Names a lease's holder: the process and a random part (threads share a process)."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


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
            updated_at {ts} NOT NULL,
            access_issued_at {ts},
            lease_holder TEXT,
            lease_expires_at {ts}
        )""",
        *events_schema(db),
    ]


def _added_columns(db: Database) -> dict[str, dict[str, str]]:
    """Columns stores created by earlier releases lack."""
    ts = db.timestamp_type
    return {
        CONNECTIONS_TABLE: {
            "access_issued_at": ts,
            "lease_holder": "TEXT",
            "lease_expires_at": ts,
        }
    }


class ConnectionStore:
    """Saves, reads, leases and re-keys QuickBooks connections; decrypts only on request."""

    def __init__(self, db: Database, keyring: KeyRing, *, create_schema: bool = True) -> None:
        self.db = db
        self.keyring = keyring
        if create_schema:
            db.create_schema(
                connections_schema(db),
                tables=(CONNECTIONS_TABLE, EVENTS_TABLE),
                columns=_added_columns(db),
            )

    def __repr__(self) -> str:
        return f"ConnectionStore(db={self.db!r}, keyring={self.keyring!r})"

    # --- reads ---------------------------------------------------------------------------

    def find(self, realm_id: str) -> Connection | None:
        row = self._row(realm_id)
        return Connection.from_row(row) if row else None

    def get(self, realm_id: str) -> Connection:
        connection = self.find(realm_id)
        if connection is None:
            raise UnknownRealm(realm_id)
        return connection

    def decrypt(self, realm_id: str) -> DecryptedTokens:
        row = self._row(realm_id)
        if row is None:
            raise UnknownRealm(realm_id)
        return self._decrypt_row(row)

    def list(self) -> list[Connection]:
        with self.db.read() as tx:
            rows = tx.all(f"SELECT * FROM {CONNECTIONS_TABLE} ORDER BY realm_id")
        return [Connection.from_row(row) for row in rows]

    def forget(self, realm_id: str) -> bool:
        """Delete a revoked connection's record (its tokens are dead already); the event log
        keeps its history. An active or broken connection is refused: revoke it first."""
        check_realm_id(realm_id)
        with self.db.transaction() as tx:
            row = tx.one(f"SELECT status FROM {CONNECTIONS_TABLE} WHERE realm_id = ?", (realm_id,))
            if row is None:
                return False
            if row["status"] != ConnectionStatus.REVOKED:
                raise VaultError(
                    f"realm {realm_id} is still connected ({row['status']}); revoke it first: "
                    f"`qbo-pipeline auth revoke --realm {realm_id}`"
                )
            tx.execute(f"DELETE FROM {CONNECTIONS_TABLE} WHERE realm_id = ?", (realm_id,))
        return True

    def events(
        self, after_id: int = 0, *, realm_id: str | None = None, limit: int = 1000
    ) -> list[TokenEvent]:
        with self.db.read() as tx:
            return read_events(tx, after_id=after_id, realm_id=realm_id, limit=limit)

    # --- connecting ----------------------------------------------------------------------

    def save_tokens(
        self, realm_id: str, tokens: TokenSet, organization_id: str | None = None
    ) -> Connection:
        """Insert or replace a realm's tokens (a new connection or a reconnect): active again.

        The caller has made sure the tokens open that company (`quickbooks.identity`).
        """
        check_realm_id(realm_id)
        if tokens.realm_id is not None and tokens.realm_id != realm_id:
            raise VaultError(
                f"tokens issued for realm {tokens.realm_id} cannot be saved for realm {realm_id}"
            )
        now = datetime.now(UTC)
        access, refresh = self._encrypt_pair(realm_id, tokens)
        with self.db.transaction() as tx:
            tx.execute(
                f"""INSERT INTO {CONNECTIONS_TABLE} (organization_id, realm_id, access_token,
                    refresh_token, key_id, expires_at, refresh_expires_at,
                    refresh_hard_expires_at, status, last_refresh_at, last_error, created_at,
                    updated_at, access_issued_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)
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
                    updated_at = excluded.updated_at,
                    access_issued_at = excluded.access_issued_at""",
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
                    tokens.issued_at,
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

    # --- the lease ------------------------------------------------------------------------

    def lease(
        self,
        realm_id: str,
        *,
        wait: timedelta = LEASE_DURATION,
        satisfied: Callable[[DecryptedTokens], bool] | None = None,
    ) -> Lease | DecryptedTokens:
        """Take the realm's lease, waiting up to `wait` for its holder to give it back.

        While waiting, the stored tokens are looked at: once `satisfied` accepts them (the
        holder's refresh produced what we needed) they are returned instead of a lease.
        A lease its holder did not give back is taken over once it lapses.
        """
        holder = _new_holder()
        deadline = time.monotonic() + wait.total_seconds()
        pause = _LEASE_POLL[0]
        while True:
            if self._take_lease(realm_id, holder):
                return Lease(realm_id, holder)
            if satisfied is not None:
                current = self.decrypt(realm_id)
                if satisfied(current):
                    return current
            if time.monotonic() >= deadline:
                raise RefreshLockTimeout(realm_id, wait.total_seconds())
            time.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, _LEASE_POLL[1])

    def release(self, lease: Lease) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                f"""UPDATE {CONNECTIONS_TABLE} SET lease_holder = NULL, lease_expires_at = NULL
                    WHERE realm_id = ? AND lease_holder = ?""",
                (lease.realm_id, lease.holder),
            )

    @contextmanager
    def leased(self, realm_id: str) -> Iterator[Lease]:
        """Hold the realm's lease for the block (see `lease`)."""
        lease = self.lease(realm_id)
        assert isinstance(lease, Lease)
        try:
            yield lease
        finally:
            self.release(lease)

    def _take_lease(self, realm_id: str, holder: str) -> bool:
        now = datetime.now(UTC)
        with self.db.transaction() as tx:
            taken = tx.execute(
                f"""UPDATE {CONNECTIONS_TABLE} SET lease_holder = ?, lease_expires_at = ?
                    WHERE realm_id = ? AND (lease_holder IS NULL OR lease_expires_at < ?)""",
                (holder, now + LEASE_DURATION, realm_id, now),
            )
            if (
                not taken
                and tx.one(
                    f"SELECT 1 AS found FROM {CONNECTIONS_TABLE} WHERE realm_id = ?", (realm_id,)
                )
                is None
            ):
                raise UnknownRealm(realm_id)
        return taken == 1

    # --- writes under a lease, compared with what was read ------------------------------

    def save_refreshed(
        self, read: DecryptedTokens, tokens: TokenSet, *, used_refresh_token: str
    ) -> bool:
        """Store the tokens a refresh returned, and a 'refreshed' event, in one transaction.

        Only if the row still holds the refresh token `read` came from; False when it no
        longer does (the company was reconnected meanwhile), and nothing is written. The
        hard expiry is kept as first stored: Intuit's answer counts it from the moment
        of each response, which would move it by the response time at every refresh.
        """
        realm_id = read.realm_id
        now = datetime.now(UTC)
        access, refresh = self._encrypt_pair(realm_id, tokens)
        with self.db.transaction() as tx:
            saved = tx.execute(
                f"""UPDATE {CONNECTIONS_TABLE} SET access_token = ?, refresh_token = ?,
                    key_id = ?, expires_at = ?, access_issued_at = ?,
                    refresh_expires_at = COALESCE(?, refresh_expires_at),
                    refresh_hard_expires_at = COALESCE(refresh_hard_expires_at, ?),
                    status = ?, last_refresh_at = ?, last_error = NULL, updated_at = ?
                    WHERE realm_id = ? AND refresh_token = ?""",
                (
                    access,
                    refresh,
                    self.keyring.primary_kid,
                    tokens.access_expires_at,
                    tokens.issued_at,
                    tokens.refresh_expires_at,
                    tokens.refresh_hard_expires_at,
                    ConnectionStatus.ACTIVE.value,
                    now,
                    now,
                    realm_id,
                    read.stored_refresh,
                ),
            )
            if saved:
                rotated = "rotated" if tokens.refresh_token != used_refresh_token else "unchanged"
                record_event(
                    tx,
                    realm_id,
                    EventKind.REFRESHED,
                    "access token valid until "
                    f"{tokens.access_expires_at.isoformat(timespec='seconds')}; refresh token "
                    f"{rotated} ({fingerprint(used_refresh_token)} -> "
                    f"{fingerprint(tokens.refresh_token)})",
                    at=now,
                )
        return bool(saved)

    def mark_needs_reauth(
        self, realm_id: str, error: str, *, read: DecryptedTokens | None = None
    ) -> bool:
        """The grant is unusable (invalid_grant): stop refreshing until someone reconnects.

        With `read`, only while the row still holds that refresh token: a reconnect made
        while the refused refresh was in flight is not undone by it.
        """
        return self._set_status(
            realm_id, ConnectionStatus.NEEDS_REAUTH, error, EventKind.INVALID_GRANT, read
        )

    def mark_revoked(self, realm_id: str, reason: str = "revoked") -> bool:
        """The app was disconnected from the company; tokens stay encrypted but unused."""
        return self._set_status(realm_id, ConnectionStatus.REVOKED, reason, EventKind.REVOKED)

    def record_refresh_failure(self, realm_id: str, error: str) -> None:
        """Keep the error on the row and in a 'refresh_failed' event; the status stays."""
        now = datetime.now(UTC)
        with self.db.transaction() as tx:
            tx.execute(
                f"UPDATE {CONNECTIONS_TABLE} SET last_error = ?, updated_at = ? WHERE realm_id = ?",
                (_clip_error(error), now, realm_id),
            )
            record_event(tx, realm_id, EventKind.REFRESH_FAILED, error, at=now)

    def _set_status(
        self,
        realm_id: str,
        status: ConnectionStatus,
        error: str,
        kind: EventKind,
        read: DecryptedTokens | None = None,
    ) -> bool:
        now = datetime.now(UTC)
        sql = (
            f"UPDATE {CONNECTIONS_TABLE} SET status = ?, last_error = ?, updated_at = ? "
            "WHERE realm_id = ?"
        )
        params: list[object] = [status.value, _clip_error(error), now, realm_id]
        if read is not None:
            sql += " AND refresh_token = ?"
            params.append(read.stored_refresh)
        with self.db.transaction() as tx:
            changed = tx.execute(sql, params)
            if changed:
                record_event(tx, realm_id, kind, error, at=now)
            elif read is None:
                raise UnknownRealm(realm_id)
        return bool(changed)

    # --- keys -----------------------------------------------------------------------------

    def rotate_keys(self) -> RotationReport:
        """Re-encrypt every connection under the primary key, one realm at a time.

        Each realm under its lease, so a refresh running meanwhile is never overwritten.
        A realm whose tokens no key of the ring opens is reported and skipped; the rest
        are still done, and running it again finishes what is left.
        """
        report = RotationReport(self.keyring.primary_kid)
        for realm_id in self._realm_ids():
            with self.leased(realm_id):
                try:
                    changed = self._reencrypt(realm_id)
                except (DecryptionError, UnknownKeyId) as error:
                    report.unreadable[realm_id] = str(error)
                    continue
            (report.reencrypted if changed else report.current).append(realm_id)
        return report

    def _reencrypt(self, realm_id: str) -> bool:
        """Re-encrypt one realm under the primary key; False when it already was."""
        row = self._row(realm_id)
        if row is None:
            return False
        ring = self.keyring
        old_kid = row["key_id"]
        tokens = self._decrypt_row(row)
        if old_kid == ring.primary_kid and all(
            KeyRing.key_id_of(row[column]) == ring.primary_kid
            for column in (ACCESS_TOKEN, REFRESH_TOKEN)
        ):
            return False
        now = datetime.now(UTC)
        with self.db.transaction() as tx:
            changed = tx.execute(
                f"""UPDATE {CONNECTIONS_TABLE} SET access_token = ?, refresh_token = ?,
                    key_id = ?, updated_at = ? WHERE realm_id = ? AND refresh_token = ?""",
                (
                    ring.encrypt(tokens.access_token, realm_id=realm_id, field=ACCESS_TOKEN),
                    ring.encrypt(tokens.refresh_token, realm_id=realm_id, field=REFRESH_TOKEN),
                    ring.primary_kid,
                    now,
                    realm_id,
                    tokens.stored_refresh,
                ),
            )
            if changed:
                record_event(
                    tx,
                    realm_id,
                    EventKind.KEY_ROTATED,
                    f"re-encrypted under key id {ring.primary_kid} (was {old_kid})",
                    at=now,
                )
        return bool(changed)

    # --- rows ---------------------------------------------------------------------------

    def _row(self, realm_id: str) -> Row | None:
        with self.db.read() as tx:
            return tx.one(f"SELECT * FROM {CONNECTIONS_TABLE} WHERE realm_id = ?", (realm_id,))

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
            access_issued_at=as_utc(row.get("access_issued_at")),
            stored_refresh=row[REFRESH_TOKEN],
        )
