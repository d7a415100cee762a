"""The pipeline's side of the token lifecycle against the emulator: an access token dying
mid-sync, and the token endpoint failing for a moment or for longer."""

from __future__ import annotations

import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.faults import OAuthError
from qbo_pipeline.quickbooks.limiter import Limits
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.sync.engine import SyncOptions, sync_entity
from qbo_pipeline.vault import ConnectionStatus
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals
from qbo_pipeline_tests.vault.expiring import (
    emulator_delete,
    emulator_post,
    expire_access_token,
    token_stats,
)

QUERY = {"query": "select * from Customer maxresults 1", "minorversion": "75"}


def test_access_token_expiring_in_the_middle_of_a_sync(connect) -> None:
    company = connect(customers=120, invoices=240, rotation="strict")
    realm_id = company.realm_id
    # Two readers and tiny pages, so most pages are still to come when the first batch lands.
    runtime = Runtime(Settings.from_env(), limits=Limits(max_in_flight=2))
    expired: list[str] = []

    def expire_after_first_batch(entity: str):
        def on_batch(rows: int, lines: int) -> None:
            if entity not in expired:
                expired.append(entity)
                emulator_post(company, "tokens/expire")

        return on_batch

    try:
        with runtime.client(realm_id) as client, runtime.warehouse() as warehouse:
            results = [
                sync_entity(
                    client,
                    warehouse,
                    entity,
                    SyncOptions(page_size=10, batch_rows=10),
                    on_batch=expire_after_first_batch(entity.name),
                )
                for entity in (CUSTOMER, INVOICE)
            ]
            assert_warehouse_equals(warehouse, realm_id, company.entities)
    finally:
        runtime.close()

    assert [r.rows for r in results] == [120, 240]
    assert expired == ["Customer", "Invoice"]
    by_status = company.admin("stats")["realms"][realm_id]["by_status"]  # type: ignore[index]
    assert by_status.get("401", 0) >= 2  # pages really were refused mid-sync
    stats = token_stats(company)
    assert stats["refresh_successes"] == len(expired)  # one refresh per expiry, not per page
    assert stats["invalid_grant"] == 0
    assert company.runtime.store.get(realm_id).status is ConnectionStatus.ACTIVE


def test_one_transient_token_endpoint_failure_is_retried(connect) -> None:
    company = connect(customers=5, invoices=5, rotation="strict")
    realm_id, store = company.realm_id, company.runtime.store
    original = store.decrypt(realm_id)
    expire_access_token(company)
    emulator_post(company, "oauth/failures", {"status": 503, "count": 1})

    token = company.runtime.tokens.access_token(realm_id)

    stats = token_stats(company)
    assert stats["calls_by_grant_type"]["refresh_token"] == 2
    assert stats["failures_injected"] == 1
    assert stats["refresh_successes"] == 1
    stored = store.decrypt(realm_id)
    assert stored.access_token == token
    assert stored.refresh_token != original.refresh_token
    assert stored.status is ConnectionStatus.ACTIVE
    assert company.api("GET", "query", params=QUERY).status_code == 200


@pytest.mark.slow
def test_a_token_endpoint_outage_fails_the_call_but_keeps_the_connection(connect) -> None:
    company = connect(customers=5, invoices=5, rotation="strict")
    realm_id, store = company.realm_id, company.runtime.store
    expire_access_token(company)
    emulator_post(company, "oauth/failures", {"status": 503})

    with pytest.raises(OAuthError, match="temporarily_unavailable") as failure:
        company.runtime.tokens.access_token(realm_id)
    assert failure.value.status == 503
    connection = store.get(realm_id)
    assert connection.status is ConnectionStatus.ACTIVE  # an outage is not invalid_grant
    assert "503" in (connection.last_error or "")

    emulator_delete(company, "oauth/failures")
    company.runtime.tokens.access_token(realm_id)
    stats = token_stats(company)
    assert stats["failures_injected"] == stats["calls_by_grant_type"]["refresh_token"] - 1
    assert stats["refresh_successes"] == 1
    assert stats["invalid_grant"] == 0
    assert company.api("GET", "query", params=QUERY).status_code == 200
