"""TokenProvider against the emulator's OAuth server in strict rotation, on SQLite and
PostgreSQL.

The race tests are the point: many threads or processes find the same expired token at
once, exactly one refresh may reach the token endpoint, and the newest refresh token must
be the one stored afterwards. Then what must never happen to a rotated token: a save that
fails silently, an expiry that moves, a lock held while Intuit hangs.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from qbo_pipeline.quickbooks.faults import InvalidClient, InvalidGrant
from qbo_pipeline.vault import (
    ConnectionStatus,
    ConnectionStore,
    EventKind,
    ReauthorizationRequired,
    TokenProvider,
    fingerprint,
)
from qbo_pipeline_tests.vault import race_worker
from qbo_pipeline_tests.vault.intuit import CLIENT_ID, CLIENT_SECRET, Intuit
from qbo_pipeline_tests.vault.storage import dump_storage


def reauth_message(realm: str) -> str:
    return (
        f"QuickBooks connection for realm {realm} needs to be reconnected (invalid_grant): "
        f"run `qbo-pipeline auth authorize --realm {realm}` or open /quickbooks/auth/authorize"
    )


def connect(store: ConnectionStore, intuit: Intuit, realm: str, *, expires_in: float) -> str:
    """Store a fresh grant whose access token expires in `expires_in` seconds."""
    tokens = intuit.grant(realm, access_expires_in=expires_in)
    store.save_tokens(realm, tokens)
    return tokens.refresh_token


def test_valid_token_needs_no_network(store: ConnectionStore, intuit: Intuit, realm: str) -> None:
    connect(store, intuit, realm, expires_in=3600)
    calls = intuit.token_stats()["calls"]
    with intuit.oauth() as oauth:
        token = TokenProvider(store, oauth).access_token(realm)
    assert token == store.decrypt(realm).access_token
    assert intuit.token_stats()["calls"] == calls


def test_expired_token_is_refreshed_once_and_rotation_persisted(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    old_refresh = connect(store, intuit, realm, expires_in=-60)
    old_access = store.decrypt(realm).access_token
    calls = intuit.refresh_calls()
    provider = TokenProvider(store, intuit.oauth())

    token = provider.access_token(realm)

    assert intuit.refresh_calls() == calls + 1
    stored = store.decrypt(realm)
    assert token == stored.access_token != old_access
    assert stored.refresh_token != old_refresh
    assert intuit.is_live(stored.refresh_token)
    assert not intuit.is_live(old_refresh)  # strict rotation killed it
    assert stored.access_valid(margin=timedelta(minutes=55))
    connection = store.get(realm)
    assert connection.last_refresh_at is not None
    assert connection.status is ConnectionStatus.ACTIVE
    refreshed = [e for e in store.events(realm_id=realm) if e.kind is EventKind.REFRESHED]
    assert len(refreshed) == 1
    assert f"{fingerprint(old_refresh)} -> {fingerprint(stored.refresh_token)}" in str(
        refreshed[0].detail
    )
    assert provider.access_token(realm) == token
    assert intuit.refresh_calls() == calls + 1


def test_token_inside_the_margin_is_refreshed(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    connect(store, intuit, realm, expires_in=120)
    calls = intuit.refresh_calls()
    TokenProvider(store, intuit.oauth()).access_token(realm)
    assert intuit.refresh_calls() == calls + 1
    provider = TokenProvider(store, intuit.oauth(), refresh_margin=timedelta(seconds=0))
    provider.access_token(realm)
    assert intuit.refresh_calls() == calls + 1


def test_a_short_lived_token_is_not_refreshed_before_every_request(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    """A 40 s token under a 5-minute margin was refreshed before nearly every request
    (131 refreshes for 151 requests): the margin is capped at half the token's life."""
    now = datetime.now(UTC).replace(microsecond=0)
    granted = intuit.grant(realm)
    store.save_tokens(
        realm, replace(granted, access_expires_at=now + timedelta(seconds=40), issued_at=now)
    )
    calls = intuit.refresh_calls()
    provider = TokenProvider(store, intuit.oauth(), refresh_margin=timedelta(minutes=5))
    tokens = {provider.access_token(realm) for _ in range(150)}
    assert len(tokens) == 1
    assert intuit.refresh_calls() == calls


def test_force_refresh_only_when_the_stale_token_is_still_stored(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    connect(store, intuit, realm, expires_in=3600)
    calls = intuit.refresh_calls()
    provider = TokenProvider(store, intuit.oauth())
    stale = provider.access_token(realm)
    fresh = provider.force_refresh(realm, stale)
    assert fresh != stale
    assert intuit.refresh_calls() == calls + 1
    assert provider.force_refresh(realm, stale) == fresh  # someone already replaced it
    assert intuit.refresh_calls() == calls + 1


def test_invalid_grant_needs_reauth_and_is_not_retried(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    lost = connect(store, intuit, realm, expires_in=-60)
    with intuit.oauth() as elsewhere:
        elsewhere.refresh(lost, realm)  # rotated elsewhere; the new token is lost
    calls = intuit.refresh_calls()
    provider = TokenProvider(store, intuit.oauth())

    with pytest.raises(ReauthorizationRequired) as caught:
        provider.access_token(realm)

    assert str(caught.value) == reauth_message(realm)
    assert intuit.refresh_calls() == calls + 1
    connection = store.get(realm)
    assert connection.status is ConnectionStatus.NEEDS_REAUTH
    assert connection.last_error is not None and "invalid_grant" in connection.last_error
    assert [e.kind for e in store.events(realm_id=realm)][-1] is EventKind.INVALID_GRANT
    requests = intuit.token_stats()["calls"]
    for call in (provider.access_token, lambda realm: provider.force_refresh(realm, "x")):
        with pytest.raises(ReauthorizationRequired, match="needs to be reconnected"):
            call(realm)
    fresh_provider = TokenProvider(store, intuit.oauth())
    with pytest.raises(ReauthorizationRequired):
        fresh_provider.access_token(realm)
    assert intuit.token_stats()["calls"] == requests


def test_a_reconnect_during_a_refused_refresh_is_not_undone(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    """invalid_grant for the old grant must not mark the company's new grant needs_reauth:
    the write compares with the refresh token the refresh started from."""
    lost = connect(store, intuit, realm, expires_in=-60)
    read = store.decrypt(realm)
    intuit.revoke(lost)
    store.save_tokens(realm, intuit.grant(realm))  # the user reconnects meanwhile
    assert not store.mark_needs_reauth(realm, "invalid_grant", read=read)
    assert store.get(realm).status is ConnectionStatus.ACTIVE


def test_revoked_connection_raises_without_network(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    connect(store, intuit, realm, expires_in=3600)
    store.mark_revoked(realm)
    calls = intuit.token_stats()["calls"]
    with pytest.raises(ReauthorizationRequired, match=r"reconnected \(revoked\)"):
        TokenProvider(store, intuit.oauth()).access_token(realm)
    assert intuit.token_stats()["calls"] == calls


def test_other_oauth_failures_are_recorded_and_raised(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    connect(store, intuit, realm, expires_in=-60)
    wrong_keys = TokenProvider(store, intuit.oauth(client_secret=CLIENT_SECRET[::-1]))
    with pytest.raises(InvalidClient):
        wrong_keys.access_token(realm)
    connection = store.get(realm)
    assert connection.status is ConnectionStatus.ACTIVE
    error = connection.last_error or ""
    assert error.startswith("Intuit OAuth error invalid_client (HTTP 401)")
    assert "(intuit_tid 1-" in error  # what Intuit's support asks for
    assert store.events(realm_id=realm)[-1].kind is EventKind.REFRESH_FAILED
    TokenProvider(store, intuit.oauth()).access_token(realm)  # the grant itself is fine
    assert store.get(realm).last_error is None


def test_a_callers_own_refused_refresh_token_records_nothing(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    """Intuit refusing a token an operator pasted says nothing about the stored grant: no
    refresh_failed event (which would alert that the company's syncs fail), no error."""
    connect(store, intuit, realm, expires_in=3600)
    events = len(store.events(realm_id=realm))
    with pytest.raises(InvalidGrant):
        TokenProvider(store, intuit.oauth()).refresh_now(realm, "RT1-someone-elses")
    assert len(store.events(realm_id=realm)) == events
    connection = store.get(realm)
    assert connection.status is ConnectionStatus.ACTIVE and connection.last_error is None


def test_a_refresh_never_moves_the_hard_expiry(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    """Intuit counts x_refresh_token_hard_expires_in from each answer; recomputed at every
    refresh, the expiry moved by the answer's time and re-armed its alert each time."""
    connect(store, intuit, realm, expires_in=-60)
    first = store.get(realm).refresh_hard_expires_at
    assert first is not None and first.microsecond == 0
    provider = TokenProvider(store, intuit.oauth())
    for _ in range(3):
        provider.refresh_now(realm)
    assert store.get(realm).refresh_hard_expires_at == first


def test_no_plaintext_after_save_and_refresh(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    old_refresh = connect(store, intuit, realm, expires_in=-60)
    old_access = store.decrypt(realm).access_token
    provider = TokenProvider(store, intuit.oauth())
    provider.access_token(realm)
    new = store.decrypt(realm)
    stored = dump_storage(store)
    for secret in (old_access, old_refresh, new.access_token, new.refresh_token):
        assert secret.encode() not in stored
        assert secret not in repr(provider)
        assert secret not in str(new)


def _expect_single_refresh(
    store: ConnectionStore, intuit: Intuit, realm: str, results: list, calls: int, invalid: int
) -> None:
    assert [status for status, _ in results] == ["ok"] * len(results), results
    stored = store.decrypt(realm)
    assert {value for _, value in results} == {fingerprint(stored.access_token)}
    assert intuit.refresh_calls() == calls + 1
    assert intuit.invalid_grants() == invalid
    assert intuit.is_live(stored.refresh_token)
    assert [e.kind for e in store.events(realm_id=realm)].count(EventKind.REFRESHED) == 1


def test_eight_threads_one_refresh(store: ConnectionStore, intuit: Intuit, realm: str) -> None:
    connect(store, intuit, realm, expires_in=-60)
    calls, invalid = intuit.refresh_calls(), intuit.invalid_grants()
    intuit.stall(seconds=0.3)  # keep the lease held while the others pile up
    start = threading.Barrier(8)
    results: list[tuple[str, str]] = []

    def worker() -> None:
        # A provider per thread: only the store's lease stands between them.
        provider = TokenProvider(store, intuit.oauth())
        start.wait(timeout=10)
        try:
            results.append(("ok", fingerprint(provider.access_token(realm))))
        except Exception as error:
            results.append(("error", f"{type(error).__name__}: {error}"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        intuit.release()
    assert len(results) == 8
    _expect_single_refresh(store, intuit, realm, results, calls, invalid)


def test_four_processes_one_refresh(
    store: ConnectionStore, intuit: Intuit, realm: str, database_url: str, keys_text: str
) -> None:
    connect(store, intuit, realm, expires_in=-60)
    calls, invalid = intuit.refresh_calls(), intuit.invalid_grants()
    intuit.stall(seconds=0.3)
    try:
        results = race_worker.race(
            race_worker.fetch_access_token,
            (database_url, keys_text, intuit.discovery_url, realm),
            4,
            timeout=60,
        )
    finally:
        intuit.release()
    _expect_single_refresh(store, intuit, realm, results, calls, invalid)


def test_a_lease_its_holder_never_gave_back_lapses(
    store: ConnectionStore, intuit: Intuit, realm: str
) -> None:
    """A worker killed while refreshing leaves its lease; it blocks the realm only until
    it lapses, and then the next refresh takes it over."""
    connect(store, intuit, realm, expires_in=-60)
    with store.db.transaction() as tx:
        tx.execute(
            "UPDATE qbo_connections SET lease_holder = ?, lease_expires_at = ? WHERE realm_id = ?",
            ("a-dead-worker", datetime.now(UTC) - timedelta(seconds=1), realm),
        )
    provider = TokenProvider(store, intuit.oauth())
    assert provider.access_token(realm) == store.decrypt(realm).access_token
    with store.db.read() as tx:
        row = tx.one("SELECT lease_holder FROM qbo_connections WHERE realm_id = ?", (realm,))
    assert row == {"lease_holder": None}


def test_reprs_hide_tokens(store: ConnectionStore, intuit: Intuit, realm: str) -> None:
    connect(store, intuit, realm, expires_in=3600)
    provider = TokenProvider(store, intuit.oauth())
    token = provider.access_token(realm)
    tokens = store.decrypt(realm)
    for shown in (repr(provider), str(provider), repr(tokens), str(tokens)):
        assert token not in shown
        assert tokens.refresh_token not in shown
    assert "refresh_margin=0:05:00" in repr(provider)
    assert datetime.now(UTC) < tokens.access_expires_at
    assert CLIENT_ID not in repr(provider.oauth)
