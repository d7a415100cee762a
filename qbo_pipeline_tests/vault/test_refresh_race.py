"""Sixteen processes find the same expired access token at once (QBO_API.md §9 pitfall 2).

Against the emulator in strict rotation, where a second refresh with the same refresh
token is an `invalid_grant` that would cost the connection, on both token stores.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from qbo_pipeline.vault import ConnectionStatus, EventKind, fingerprint
from qbo_pipeline_tests.emulator.conftest import refresh
from qbo_pipeline_tests.vault import race_worker
from qbo_pipeline_tests.vault.expiring import expire_access_token, token_stats

PROCESSES = 16


def database_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'tokens.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_sixteen_processes_refresh_once(connect, request, tmp_path, store_kind) -> None:
    company = connect(
        database_url=database_url(store_kind, request, tmp_path),
        rotation="strict",
        customers=5,
        invoices=5,
    )
    realm_id, store = company.realm_id, company.runtime.store
    original = store.decrypt(realm_id)
    expire_access_token(company)
    before = token_stats(company)

    started = time.monotonic()
    outcomes = race_worker.race(race_worker.fetch_and_use_token, (company.env, realm_id), PROCESSES)
    elapsed = time.monotonic() - started

    errors = [outcome[1] for outcome in outcomes if outcome[0] != "ok"]
    assert errors == []
    stats = token_stats(company)
    refreshes = stats["calls_by_grant_type"].get("refresh_token", 0) - before[
        "calls_by_grant_type"
    ].get("refresh_token", 0)
    burst = max(o[4] for o in outcomes) - min(o[3] for o in outcomes)
    print(
        f"\n[{store_kind}] {PROCESSES} processes: {refreshes} refresh call(s) at the emulator, "
        f"invalid_grant {stats['invalid_grant']}, injected failures "
        f"{stats['failures_injected']}, token burst {burst:.3f} s, spawn+race {elapsed:.2f} s"
    )
    assert refreshes == 1
    assert stats["refresh_successes"] == 1
    assert stats["invalid_grant"] == 0

    stored = store.decrypt(realm_id)
    assert stored.status is ConnectionStatus.ACTIVE
    assert {o[1] for o in outcomes} == {fingerprint(stored.access_token)}
    assert stored.access_token != original.access_token
    assert [o[2] for o in outcomes] == [200] * PROCESSES
    assert [e.kind for e in store.events(realm_id=realm_id)].count(EventKind.REFRESHED) == 1

    # Strict rotation: only the newest refresh token works, so the stored one must be it.
    auth = (company.env["QUICKBOOKS_CLIENT_ID"], company.env["QUICKBOOKS_CLIENT_SECRET"])
    with httpx.Client(base_url=company.emulator.base_url, timeout=10) as http:
        stale = refresh(http, original.refresh_token, auth=auth)
        assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
        assert refresh(http, stored.refresh_token, auth=auth).status_code == 200
