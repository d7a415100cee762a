"""Every fault QBO throws, at a high rate, and QBO's limits enforced: the sync still ends
with the warehouse equal to the source, and never breaks the limits itself."""

from __future__ import annotations

import threading

import httpx
import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.identity import company_name
from qbo_pipeline.quickbooks.limiter import Limits, RealmLimiter
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.sync.engine import SyncOptions, sync_entity
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals

OPTIONS = SyncOptions(page_size=40, batch_rows=150)
# Short timeouts and many quick retries: a 25% fault rate costs seconds, not minutes.
PATIENT = {"timeout": 1.0, "max_attempts": 12, "backoff_max": 0.2}


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
        assert sum(company.stats()["faults"].values()) > 3  # faults really happened
        httpx.delete(f"{company.emulator.base_url}/_emulator/faults").raise_for_status()
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def test_the_client_never_breaks_the_limits_the_emulator_enforces(connect):
    # Pages take 60 ms or more, so the four readers really overlap. The 10 a second are
    # raised on both sides: this is about the minute's window and the in-flight cap (the
    # test below keeps Intuit's numbers).
    company = connect(customers=300, invoices=900, latency_ms=600.0, requests_per_second=40)
    httpx.post(
        f"{company.emulator.base_url}/_emulator/limits",
        json={"enabled": True, "requests_per_minute": 40, "max_in_flight": 4},
    ).raise_for_status()
    httpx.post(f"{company.emulator.base_url}/_emulator/stats/reset").raise_for_status()
    limiter = RealmLimiter(
        Limits(requests_per_window=40, window_seconds=60, max_in_flight=4, requests_per_second=40)
    )
    with (
        company.quick_client(
            timeout=1.0, max_attempts=12, backoff_max=0.2, limiter=limiter
        ) as client,
        company.runtime.warehouse() as wh,
    ):
        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, wh, entity, SyncOptions(page_size=100))
        stats = company.stats()
        assert stats["throttled"] == 0
        assert stats["peak_in_flight"] <= 4
        assert stats["requests"] <= 40
        assert stats["peak_in_flight"] == 4  # and it used what it was allowed
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def test_a_sync_at_qbos_real_limits_is_never_throttled(connect):
    # Every limit on, at Intuit's numbers; small pages so the readers make many requests
    # (about 70), far more than 10 a second could carry if they went unchecked.
    company = connect(customers=300, invoices=900, latency_ms=300.0)
    httpx.post(f"{company.emulator.base_url}/_emulator/stats/reset").raise_for_status()
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        assert client.limiter.limits == Limits()  # the settings' defaults: Intuit's
        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, wh, entity, SyncOptions(page_size=20))
        stats = company.stats()
        assert stats["by_status"].keys() == {"200"} and stats["throttled"] == 0
        assert stats["throttled_by_reason"] == {
            "rate": 0,
            "second": 0,
            "concurrency": 0,
            "batch": 0,
        }
        assert stats["requests"] > 60
        assert stats["peak_per_second"] <= 10 and stats["peak_in_flight"] <= 10
        assert stats["peak_per_minute"] <= 500
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def _blocked_while_the_slot_is_held(limiter: RealmLimiter, call) -> None:
    """`call` waits for the realm's only place in flight, and runs once it is free."""
    done = threading.Event()
    worker = threading.Thread(target=lambda: (call(), done.set()))
    with limiter.slot():
        worker.start()
        assert not done.wait(0.5)
    assert done.wait(10)
    worker.join()


def test_token_refreshes_and_company_checks_take_a_slot_of_the_realms_limiter(connect):
    company = connect(customers=5, invoices=5)
    one_at_a_time = Limits(max_in_flight=1)
    runtime = Runtime(Settings.from_env(company.env), limits=one_at_a_time)
    limiter = runtime.limiter(company.realm_id)
    try:
        _blocked_while_the_slot_is_held(
            limiter, lambda: runtime.tokens.refresh_now(company.realm_id)
        )
        assert company.admin("stats")["token_endpoint"]["refresh_successes"] == 1
        token = runtime.tokens.access_token(company.realm_id)
        named: list[str | None] = []
        _blocked_while_the_slot_is_held(
            limiter,
            lambda: named.append(
                company_name(token, company.realm_id, company.emulator.api_base_url, one_at_a_time)
            ),
        )
        assert named and named[0]
    finally:
        runtime.close()


class _Marks(RealmLimiter):
    """Records, per request, when it was let through, marked sent, and answered."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[list[str]] = []

    def _admit(self, charges):
        entries = super()._admit(charges)
        self.marks.append(["admitted"])
        return entries

    def _sent(self, entries) -> None:
        super()._sent(entries)
        self.marks[-1].append("sent")

    def _finish(self, entries) -> None:
        super()._finish(entries)
        self.marks[-1].append("answered")


def test_the_client_marks_each_request_sent_once_it_is_written(connect):
    """The second counts a request from its write, so a thread that waited for the GIL
    after the limiter let it through does not crowd the next second; GET and POST alike."""
    company = connect(customers=30, invoices=5, latency_ms=50.0)
    limiter = _Marks()
    with company.quick_client(limiter=limiter) as client:
        client.query("SELECT * FROM Customer STARTPOSITION 1 MAXRESULTS 10")
        ids = ", ".join(f"'{n}'" for n in range(1, 400))
        client.query(f"SELECT * FROM Customer WHERE Id IN ({ids})")  # sent as a POST body

    assert limiter.marks == [["admitted", "sent", "answered"]] * 2
