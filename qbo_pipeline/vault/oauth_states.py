"""The OAuth `state` values handed out with authorize URLs: single use, ten minutes, hashed.

The state is the callback's CSRF check: only a callback carrying a state we issued, not
yet used and not yet expired, may connect a company. It lives in the token-store database
(table `qbo_oauth_states`) rather than in memory, so a URL printed by
`qbo-pipeline auth authorize` in one process is accepted by the service's callback in
another, and a restart of the service does not void the links it handed out. Only a
SHA-256 of each state is stored: reading the table does not let anyone forge a callback.

A state issued to reconnect one company carries its realm id, and the callback completes
only for that company.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from qbo_pipeline.vault.database import Database, as_utc
from qbo_pipeline.vault.errors import VaultError

STATES_TABLE = "qbo_oauth_states"
STATE_TTL = timedelta(minutes=10)
# Used and expired states are kept this long, so a replay is reported as a replay rather
# than as an unknown state, then purged.
_RETENTION = timedelta(days=1)
_RESTART_HINT = "start again from /quickbooks/auth/authorize or `qbo-pipeline auth authorize`"


class InvalidState(VaultError):
    """The callback's state was never issued, was used already, or has expired."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        messages = {
            "missing": "the callback carries no state",
            "unknown": "the callback's state was not issued by this service",
            "used": "the callback's state was used already (a replayed or reloaded callback)",
            "expired": "the callback's state has expired (they last 10 minutes)",
        }
        super().__init__(f"{messages[reason]}; {_RESTART_HINT}")


@dataclass(frozen=True)
class IssuedState:
    value: str
    expires_at: datetime
    realm_id: str | None = None  # the company the link reconnects; None: any new one

    def __repr__(self) -> str:
        return f"IssuedState(expires_at={self.expires_at.isoformat()}, realm_id={self.realm_id!r})"


def state_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def states_schema(db: Database) -> list[str]:
    ts = db.timestamp_type
    return [
        f"""CREATE TABLE IF NOT EXISTS {STATES_TABLE} (
            state_hash TEXT PRIMARY KEY,
            created_at {ts} NOT NULL,
            expires_at {ts} NOT NULL,
            used_at {ts},
            realm_id TEXT
        )""",
    ]


class OAuthStates:
    """Issues and consumes OAuth states in the token-store database (SQLite or PostgreSQL)."""

    def __init__(
        self, db: Database, *, ttl: timedelta = STATE_TTL, create_schema: bool = True
    ) -> None:
        self.db = db
        self.ttl = ttl
        if create_schema:
            db.create_schema(
                states_schema(db),
                tables=(STATES_TABLE,),
                columns={STATES_TABLE: {"realm_id": "TEXT"}},
            )

    def __repr__(self) -> str:
        return f"OAuthStates(db={self.db!r}, ttl={self.ttl})"

    def issue(self, *, realm_id: str | None = None, now: datetime | None = None) -> IssuedState:
        """A fresh random state, recorded by its hash; old rows are purged on the way."""
        now = now or datetime.now(UTC)
        value = secrets.token_urlsafe(32)
        expires_at = now + self.ttl
        with self.db.transaction() as tx:
            tx.execute(f"DELETE FROM {STATES_TABLE} WHERE expires_at < ?", (now - _RETENTION,))
            tx.execute(
                f"INSERT INTO {STATES_TABLE} (state_hash, created_at, expires_at, used_at, "
                "realm_id) VALUES (?, ?, ?, NULL, ?)",
                (state_hash(value), now, expires_at, realm_id),
            )
        return IssuedState(value=value, expires_at=expires_at, realm_id=realm_id)

    def consume(self, value: str | None, *, now: datetime | None = None) -> IssuedState:
        """Accept a state once: raises `InvalidState` unless it is known, unused and live.

        Marking it used is a compare-and-swap on `used_at`, so of two callbacks racing
        with the same state only one passes.
        """
        if not value:
            raise InvalidState("missing")
        now = now or datetime.now(UTC)
        digest = state_hash(value)
        with self.db.transaction() as tx:
            row = tx.one(
                f"SELECT expires_at, used_at, realm_id FROM {STATES_TABLE} WHERE state_hash = ?",
                (digest,),
            )
            if row is None:
                raise InvalidState("unknown")
            claimed = tx.execute(
                f"UPDATE {STATES_TABLE} SET used_at = ? WHERE state_hash = ? AND used_at IS NULL",
                (now, digest),
            )
            if not claimed:
                raise InvalidState("used")
            expires_at = as_utc(row["expires_at"])
            expired = expires_at is None or expires_at <= now
        # Marked used even when expired (committed above), so it is never accepted later.
        if expired:
            raise InvalidState("expired")
        return IssuedState(value=value, expires_at=expires_at, realm_id=row["realm_id"])
