"""A rotated refresh token is never lost without a trace.

Once Intuit has answered a refresh, under strict rotation the stored refresh token is
dead: the new one exists only in memory until it is saved. These tests make the save
fail for real, inside the database (a trigger that refuses the write, as a full disk
would), and check what an operator gets: the save tried again, or else an ERROR log line
with fingerprints, a refresh_failed event, an alert, and a one-line error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from qbo_pipeline.alerts import AlertKind, alerts_from_events
from qbo_pipeline.vault import (
    ConnectionStatus,
    ConnectionStore,
    EventKind,
    KeyRing,
    RotatedTokenNotSaved,
    TokenProvider,
    fingerprint,
    open_database,
)
from qbo_pipeline.vault.database import SQLiteDatabase
from qbo_pipeline_tests.vault.intuit import Intuit
from qbo_pipeline_tests.vault.test_tokens import connect

DISK_FULL = "could not extend file: No space left on device"


def refuse_refresh_token_writes(store: ConnectionStore, *, times: int | None = None) -> None:
    """From now on the database refuses to change a stored refresh token, `times` times or
    for good. SQLite has nothing that counts across a rolled-back statement, so there
    the refusal is for good."""
    with store.db.transaction() as tx:
        if isinstance(store.db, SQLiteDatabase):
            assert times is None
            tx.execute(
                "CREATE TRIGGER refuse_tokens BEFORE UPDATE OF refresh_token ON qbo_connections "
                f"BEGIN SELECT RAISE(ABORT, '{DISK_FULL}'); END"
            )
            return
        # A sequence is not rolled back with the failed statement: it counts the refusals.
        limit = "TRUE" if times is None else f"nextval('qbo_test_refusals') <= {times}"
        tx.execute("CREATE SEQUENCE qbo_test_refusals")
        tx.execute(
            "CREATE FUNCTION qbo_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {limit} THEN RAISE EXCEPTION '{DISK_FULL}'; END IF; RETURN NEW; END $$"
        )
        tx.execute(
            "CREATE TRIGGER refuse_tokens BEFORE UPDATE OF refresh_token ON qbo_connections "
            "FOR EACH ROW EXECUTE FUNCTION qbo_test_refuse()"
        )


def test_a_save_that_fails_for_good_is_logged_recorded_alerted_and_raised(
    store: ConnectionStore, intuit: Intuit, realm: str, caplog: pytest.LogCaptureFixture
) -> None:
    used = connect(store, intuit, realm, expires_in=-60)
    refuse_refresh_token_writes(store)
    provider = TokenProvider(store, intuit.oauth())

    with caplog.at_level(logging.INFO), pytest.raises(RotatedTokenNotSaved) as caught:
        provider.access_token(realm)

    message = str(caught.value)
    assert "\n" not in message and f"realm {realm}" in message and "reconnect" in message
    assert fingerprint(used) in message  # which refresh token was used up
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(fingerprint(used) in r.getMessage() for r in errors), caplog.text
    assert not any("refreshed the QuickBooks tokens" in r.getMessage() for r in caplog.records)
    assert used not in caplog.text

    [event] = [e for e in store.events(realm_id=realm) if e.kind is EventKind.REFRESH_FAILED]
    assert "could not save" in (event.detail or "")
    [alert] = alerts_from_events(store.events(realm_id=realm))
    assert alert.kind is AlertKind.REFRESH_FAILED and alert.realm_id == realm
    assert store.get(realm).status is ConnectionStatus.ACTIVE  # nothing else was changed


def test_a_save_that_fails_for_a_moment_is_tried_again(
    postgres_url: str, keyring: KeyRing, intuit: Intuit, realm: str, tmp_path: Path
) -> None:
    """On PostgreSQL, whose sequences count the refusals (see refuse_refresh_token_writes)."""
    store = ConnectionStore(open_database(postgres_url, default_path=tmp_path), keyring)
    used = connect(store, intuit, realm, expires_in=-60)
    refuse_refresh_token_writes(store, times=2)

    token = TokenProvider(store, intuit.oauth()).access_token(realm)

    stored = store.decrypt(realm)
    assert stored.access_token == token and stored.refresh_token != used
    assert intuit.is_live(stored.refresh_token)  # the token Intuit rotated to is the one kept
    kinds = [e.kind for e in store.events(realm_id=realm)]
    assert EventKind.REFRESH_FAILED not in kinds and kinds.count(EventKind.REFRESHED) == 1
    store.db.close()
