"""TokenProvider against a strict-rotation OAuth stub, on SQLite and PostgreSQL.

The race tests are the point: many threads or processes find the same expired token at
once, exactly one refresh may reach the token endpoint, and the newest refresh token must
be the one stored afterwards.
"""

from __future__ import annotations

import multiprocessing
import threading
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
from qbo_pipeline_tests.vault.oauth_stub import OAuthStub
from qbo_pipeline_tests.vault.storage import dump_storage

REALM = "9130350000000001"
REAUTH_MESSAGE = (
    f"QuickBooks connection for realm {REALM} needs to be reconnected (invalid_grant): "
    f"run `qbo-pipeline auth authorize --realm {REALM}` or open /quickbooks/auth/authorize"
)


def connect(store: ConnectionStore, stub: OAuthStub, *, expires_in: float) -> str:
    """Store a fresh grant whose access token expires in `expires_in` seconds."""
    tokens = stub.issue(REALM, access_expires_in=expires_in)
    store.save_tokens(REALM, tokens)
    return tokens.refresh_token


def test_valid_token_needs_no_network(store: ConnectionStore, oauth_stub: OAuthStub) -> None:
    connect(store, oauth_stub, expires_in=3600)
    provider = TokenProvider(store, oauth_stub.client())
    token = provider.access_token(REALM)
    assert token == store.decrypt(REALM).access_token
    assert oauth_stub.requests == 0


def test_expired_token_is_refreshed_once_and_rotation_persisted(
    store: ConnectionStore, oauth_stub: OAuthStub
) -> None:
    old_refresh = connect(store, oauth_stub, expires_in=-60)
    old_access = store.decrypt(REALM).access_token
    provider = TokenProvider(store, oauth_stub.client())

    token = provider.access_token(REALM)

    assert oauth_stub.refresh_calls == 1
    stored = store.decrypt(REALM)
    assert token == stored.access_token != old_access
    assert stored.refresh_token != old_refresh
    assert oauth_stub.is_live(stored.refresh_token)
    assert stored.access_valid(margin=timedelta(minutes=55))
    with pytest.raises(InvalidGrant):
        oauth_stub.client().refresh(old_refresh, REALM)  # the stub killed the old one
    connection = store.get(REALM)
    assert connection.last_refresh_at is not None
    assert connection.status is ConnectionStatus.ACTIVE
    refreshed = [e for e in store.events() if e.kind is EventKind.REFRESHED]
    assert len(refreshed) == 1
    assert f"{fingerprint(old_refresh)} -> {fingerprint(stored.refresh_token)}" in str(
        refreshed[0].detail
    )
    assert provider.access_token(REALM) == token
    assert oauth_stub.refresh_calls == 2  # 1 + the deliberate reuse above; none from us


def test_token_inside_the_margin_is_refreshed(
    store: ConnectionStore, oauth_stub: OAuthStub
) -> None:
    connect(store, oauth_stub, expires_in=120)
    TokenProvider(store, oauth_stub.client()).access_token(REALM)
    assert oauth_stub.refresh_calls == 1
    provider = TokenProvider(store, oauth_stub.client(), refresh_margin=timedelta(seconds=0))
    provider.access_token(REALM)
    assert oauth_stub.refresh_calls == 1


def test_force_refresh_only_when_the_stale_token_is_still_stored(
    store: ConnectionStore, oauth_stub: OAuthStub
) -> None:
    connect(store, oauth_stub, expires_in=3600)
    provider = TokenProvider(store, oauth_stub.client())
    stale = provider.access_token(REALM)
    fresh = provider.force_refresh(REALM, stale)
    assert fresh != stale
    assert oauth_stub.refresh_calls == 1
    assert provider.force_refresh(REALM, stale) == fresh  # someone already replaced it
    assert oauth_stub.refresh_calls == 1


def test_invalid_grant_needs_reauth_and_is_not_retried(
    store: ConnectionStore, oauth_stub: OAuthStub
) -> None:
    lost = connect(store, oauth_stub, expires_in=-60)
    oauth_stub.client().refresh(lost, REALM)  # rotated elsewhere; the new token is lost
    calls = oauth_stub.refresh_calls
    provider = TokenProvider(store, oauth_stub.client())

    with pytest.raises(ReauthorizationRequired) as caught:
        provider.access_token(REALM)

    assert str(caught.value) == REAUTH_MESSAGE
    assert oauth_stub.refresh_calls == calls + 1
    connection = store.get(REALM)
    assert connection.status is ConnectionStatus.NEEDS_REAUTH
    assert connection.last_error is not None and "invalid_grant" in connection.last_error
    assert [e.kind for e in store.events()][-1] is EventKind.INVALID_GRANT
    requests = oauth_stub.requests
    for call in (provider.access_token, lambda realm: provider.force_refresh(realm, "x")):
        with pytest.raises(ReauthorizationRequired, match="needs to be reconnected"):
            call(REALM)
    fresh_provider = TokenProvider(store, oauth_stub.client())
    with pytest.raises(ReauthorizationRequired):
        fresh_provider.access_token(REALM)
    assert oauth_stub.requests == requests


def test_revoked_connection_raises_without_network(
    store: ConnectionStore, oauth_stub: OAuthStub
) -> None:
    connect(store, oauth_stub, expires_in=3600)
    store.mark_revoked(REALM)
    with pytest.raises(ReauthorizationRequired, match=r"reconnected \(revoked\)"):
        TokenProvider(store, oauth_stub.client()).access_token(REALM)
    assert oauth_stub.requests == 0


def test_other_oauth_failures_are_recorded_and_raised(
    store: ConnectionStore, oauth_stub: OAuthStub
) -> None:
    connect(store, oauth_stub, expires_in=-60)
    oauth_stub.fail_next_refresh(401, "invalid_client")
    provider = TokenProvider(store, oauth_stub.client())
    with pytest.raises(InvalidClient):
        provider.access_token(REALM)
    connection = store.get(REALM)
    assert connection.status is ConnectionStatus.ACTIVE
    assert connection.last_error == "Intuit OAuth error invalid_client (HTTP 401)"
    assert store.events()[-1].kind is EventKind.REFRESH_FAILED
    provider.access_token(REALM)  # the grant itself is fine: the next call recovers
    assert store.get(REALM).last_error is None
    assert oauth_stub.refresh_calls == 2


def test_no_plaintext_after_save_and_refresh(store: ConnectionStore, oauth_stub: OAuthStub) -> None:
    old_refresh = connect(store, oauth_stub, expires_in=-60)
    old_access = store.decrypt(REALM).access_token
    provider = TokenProvider(store, oauth_stub.client())
    provider.access_token(REALM)
    new = store.decrypt(REALM)
    stored = dump_storage(store)
    for secret in (old_access, old_refresh, new.access_token, new.refresh_token):
        assert secret.encode() not in stored
        assert secret not in repr(provider)
        assert secret not in str(new)


def _expect_single_refresh(store: ConnectionStore, stub: OAuthStub, results: list) -> None:
    assert [status for status, _ in results] == ["ok"] * len(results), results
    stored = store.decrypt(REALM)
    assert {value for _, value in results} == {fingerprint(stored.access_token)}
    assert stub.refresh_calls == 1
    assert stub.invalid_grants == 0
    assert stub.is_live(stored.refresh_token)
    assert [e.kind for e in store.events()].count(EventKind.REFRESHED) == 1


def test_eight_threads_one_refresh(store: ConnectionStore, oauth_stub: OAuthStub) -> None:
    connect(store, oauth_stub, expires_in=-60)
    oauth_stub.refresh_delay = 0.3  # keep the lock held while the others pile up
    start = threading.Barrier(8)
    results: list[tuple[str, str]] = []

    def worker() -> None:
        # A provider per thread: only the database lock stands between them.
        provider = TokenProvider(store, oauth_stub.client())
        start.wait(timeout=10)
        try:
            results.append(("ok", fingerprint(provider.access_token(REALM))))
        except Exception as error:
            results.append(("error", f"{type(error).__name__}: {error}"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8
    _expect_single_refresh(store, oauth_stub, results)


def test_four_processes_one_refresh(
    store: ConnectionStore, oauth_stub: OAuthStub, database_url: str, keys_text: str
) -> None:
    connect(store, oauth_stub, expires_in=-60)
    oauth_stub.refresh_delay = 0.3
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    queue = context.Queue()
    processes = [
        context.Process(
            target=race_worker.fetch_access_token,
            args=(database_url, keys_text, oauth_stub.discovery_url, REALM, start, queue),
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    _expect_single_refresh(store, oauth_stub, results)


def test_reprs_hide_tokens(store: ConnectionStore, oauth_stub: OAuthStub) -> None:
    connect(store, oauth_stub, expires_in=3600)
    provider = TokenProvider(store, oauth_stub.client())
    token = provider.access_token(REALM)
    tokens = store.decrypt(REALM)
    for shown in (repr(provider), str(provider), repr(tokens), str(tokens)):
        assert token not in shown
        assert tokens.refresh_token not in shown
    assert "refresh_margin=0:05:00" in repr(provider)
    assert datetime.now(UTC) < tokens.access_expires_at
