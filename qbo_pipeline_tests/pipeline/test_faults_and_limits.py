"""Every fault QBO throws, at a high rate, and QBO's limits enforced: the sync still ends
with the warehouse equal to the source, and never breaks the limits itself."""

from __future__ import annotations

import httpx
import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.limiter import Limits, RealmLimiter
from qbo_pipeline.sync.engine import SyncOptions, sync_entity
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals

OPTIONS = SyncOptions(page_size=40, batch_rows=150)
# Short timeouts and many quick retries: a 25% fault rate costs seconds, not minutes.
PATIENT = {"timeout": 1.0, "max_attempts": 12, "backoff_max": 0.2}


def realm_stats(company) -> dict:
    document = httpx.get(f"{company.emulator.base_url}/_emulator/stats").json()
    return document["realms"][company.realm_id]


@pytest.mark.parametrize(
    "kind", ["429", "500", "503", "timeout", "reset", "truncate", "xml", "fault200"]
)
def test_each_fault_at_a_high_rate_loses_nothing(connect, kind):
    company = connect(customers=120, invoices=200, timeout_seconds=2.0, fault_seed=3)
    httpx.post(
        f"{company.emulator.base_url}/_emulator/faults", json={"rates": {kind: 0.25}}
    ).raise_for_status()
    with (
        company.quick_client(timeout=1.0, max_attempts=12, backoff_max=0.2) as client,
        company.runtime.warehouse() as wh,
    ):
        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, wh, entity, OPTIONS)
        assert sum(realm_stats(company)["faults"].values()) > 3  # faults really happened
        httpx.delete(f"{company.emulator.base_url}/_emulator/faults").raise_for_status()
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def test_the_client_never_breaks_the_limits_the_emulator_enforces(connect):
    # Pages take 60 ms or more, so the four readers really overlap.
    company = connect(customers=300, invoices=900, latency_ms=600.0)
    httpx.post(
        f"{company.emulator.base_url}/_emulator/limits",
        json={"enabled": True, "requests_per_minute": 40, "max_in_flight": 4},
    ).raise_for_status()
    httpx.post(f"{company.emulator.base_url}/_emulator/stats/reset").raise_for_status()
    limiter = RealmLimiter(Limits(requests_per_window=40, window_seconds=60, max_in_flight=4))
    with (
        company.quick_client(
            timeout=1.0, max_attempts=12, backoff_max=0.2, limiter=limiter
        ) as client,
        company.runtime.warehouse() as wh,
    ):
        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, wh, entity, SyncOptions(page_size=100))
        stats = realm_stats(company)
        assert stats["throttled"] == 0
        assert stats["peak_in_flight"] <= 4
        assert stats["requests"] <= 40
        assert stats["peak_in_flight"] == 4  # and it used what it was allowed
        assert_warehouse_equals(wh, company.realm_id, company.entities)
