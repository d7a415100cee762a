"""A company that changes while it is being read: no unchanged row may be missed, and one
more incremental run makes the warehouse equal to the source.

Offset paging (STARTPOSITION) over rows ordered by LastUpdatedTime skips a row each time
an earlier row is updated (it jumps to the end and every later row shifts back one); the
engine's overlapping pages, whose seams are checked and read again when torn, must not.
"""

from __future__ import annotations

import json
import logging
import random
import threading

import httpx

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.limiter import Limits, RealmLimiter
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.engine import SyncOptions, sync_entity
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals


class ChurningClient:
    """The real client, but every page it reads is followed by an edit in QuickBooks."""

    def __init__(self, client, company, seed: int) -> None:
        self._client = client
        self._company = company
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.changed: set[tuple[str, str]] = set()
        self.customers = {c["Id"]: c for c in company.entities("Customer")}
        self.invoices = {i["Id"]: i for i in company.entities("Invoice")}

    def __getattr__(self, name):
        return getattr(self._client, name)

    def query_body(self, statement: str, read):
        page = self._client.query_body(statement, read)
        with self._lock:
            self._edit()
        return page

    def _edit(self) -> None:
        if self._random.random() < 0.5:
            entity, records, path = "Customer", self.customers, "customer"
            change = {"Notes": f"edited {self._random.random():.6f}"}
        else:
            entity, records, path = "Invoice", self.invoices, "invoice"
            change = {"PrivateNote": f"edited {self._random.random():.6f}"}
        record_id = self._random.choice(sorted(records))
        current = records[record_id]
        # Company.api takes a slot of the realm's limiter, as QBO meters the edit with the
        # sync's requests. A slot of our own around it, never marked sent, held a place in
        # the second's window that the edit's own slot could wait for forever.
        response = self._company.api(
            "POST",
            path,
            json={"Id": record_id, "SyncToken": current["SyncToken"], "sparse": True, **change},
        )
        assert response.status_code == 200, response.text
        records[record_id] = response.json()[entity]
        self.changed.add((entity, record_id))


def test_rows_changed_mid_sync_never_hide_unchanged_rows(connect):
    company = connect(customers=300, invoices=500)
    before = {
        "Customer": {c["Id"]: c["SyncToken"] for c in company.entities("Customer")},
        "Invoice": {i["Id"]: i["SyncToken"] for i in company.entities("Invoice")},
    }
    options = SyncOptions(page_size=20, batch_rows=100)
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        churning = ChurningClient(client, company, seed=11)
        for entity in (CUSTOMER, INVOICE):
            sync_entity(churning, wh, entity, options)
        assert len(churning.changed) > 40

        for entity, table in (("Customer", "customers"), ("Invoice", "invoices")):
            stored = dict(wh.query(f"SELECT id, sync_token FROM qbo.{table}"))
            unchanged = {
                id_: int(token)
                for id_, token in before[entity].items()
                if (entity, id_) not in churning.changed
            }
            missing = sorted(set(unchanged) - set(stored))
            assert not missing, f"{entity} rows skipped by the sync: {missing[:10]}"
            assert {id_: stored[id_] for id_ in unchanged} == unchanged

        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, wh, entity, options)
        assert_warehouse_equals(wh, company.realm_id, company.entities)


class EditingBetweenPages:
    """The real client, read one page at a time; right after the second page, the oldest
    `edits` customers are edited, so every later customer shifts back that many places."""

    def __init__(self, client, company, edits: int) -> None:
        self._client, self._company, self._edits = client, company, edits
        self.edited: set[str] = set()
        self.pages = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def query_body(self, statement: str, read):
        page = self._client.query_body(statement, read)
        self.pages += 1
        if self.pages == 2:
            oldest = sorted(
                self._company.entities("Customer"),
                key=lambda c: (parse_instant(c["MetaData"]["LastUpdatedTime"]), int(c["Id"])),
            )
            for customer in oldest[: self._edits]:
                response = self._company.api(
                    "POST",
                    "customer",
                    json={"Id": customer["Id"], "SyncToken": customer["SyncToken"],
                          "sparse": True, "Notes": "moved to the end"},
                )  # fmt: skip
                assert response.status_code == 200, response.text
                self.edited.add(customer["Id"])
        return page


def test_a_seam_torn_by_rows_leaving_the_window_is_read_again(connect, caplog):
    """Fifteen rows leave the window between two pages that overlap by ten: the next page
    starts five rows past the end of the one before, and those five rows must be read."""
    # The edits come from another limiter than the reader's: QBO's 10 a second would
    # count both, and this test is about the seam, not the limits.
    company = connect(customers=300, invoices=5, requests_per_second=100)
    before = {c["Id"]: c["SyncToken"] for c in company.entities("Customer")}
    one_at_a_time = RealmLimiter(Limits(max_in_flight=1))
    caplog.set_level(logging.INFO, logger="qbo_pipeline.sync.reading")
    with company.quick_client(limiter=one_at_a_time) as client, company.runtime.warehouse() as wh:
        editing = EditingBetweenPages(client, company, edits=15)
        result = sync_entity(editing, wh, CUSTOMER, SyncOptions(page_size=50))
        stored = dict(wh.query("SELECT id, sync_token FROM qbo.customers"))

    unchanged = {id_: int(token) for id_, token in before.items() if id_ not in editing.edited}
    assert sorted(set(unchanged) - set(stored)) == []
    assert {id_: stored[id_] for id_ in unchanged} == unchanged
    assert result.rows == len(stored)
    assert "reading" in caplog.text and "again" in caplog.text  # the seam, read once more


def test_more_rows_in_one_second_than_a_page_holds(connect, tmp_path, fixtures_dir):
    """Bulk imports stamp many rows with the same second; keyset paging alone would stall."""
    template = next(
        json.loads(line)
        for line in (fixtures_dir / "qbo_sandbox_records.jsonl").read_text().splitlines()
        if json.loads(line)["stream"] == "customers"
    )
    replay = tmp_path / "bulk.jsonl"
    with replay.open("w") as out:
        for n in range(1, 58):
            data = {
                **template["data"],
                "Id": str(n),
                "DisplayName": f"Bulk customer {n}",
                "MetaData": {
                    "CreateTime": "2024-11-03T01:30:00-07:00",
                    "LastUpdatedTime": "2024-11-03T01:30:00-08:00"
                    if n % 3
                    else "2024-11-03T01:30:00-07:00",
                },
            }
            out.write(json.dumps({"stream": "customers", "data": data}) + "\n")
    company = connect(data=replay)
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        result = sync_entity(client, wh, CUSTOMER, SyncOptions(page_size=10))
        assert result.rows == 57
        assert result.fetched == 57  # the first page of a second is not handed over twice
        assert wh.count("customers", company.realm_id) == 57


def test_emulator_churn_during_a_sync_then_one_incremental_run(connect):
    """The emulator creates, updates, deactivates and deletes at its own pace while the
    first sync reads; after one more run the warehouse equals the company, deletes too."""
    company = connect(customers=400, invoices=900, latency_ms=150.0)
    churn = f"{company.emulator.base_url}/_emulator/churn"
    # Fast enough that the first sync (about a second) sees dozens of changes.
    httpx.post(churn, json={"rate": 100}).raise_for_status()
    options = SyncOptions(page_size=50, batch_rows=200)
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, wh, entity, options)
        httpx.delete(churn).raise_for_status()
        changes = httpx.get(f"{company.emulator.base_url}/_emulator/stats").json()
        assert changes["churn_changes"] > 20

        for entity in (CUSTOMER, INVOICE):
            sync_entity(client, wh, entity, options)
        assert_warehouse_equals(wh, company.realm_id, company.entities)
        deletions = f"{company.emulator.base_url}/_emulator/companies/{company.realm_id}/deletions"
        deleted = {d["id"] for d in httpx.get(deletions).json() if d["entity"] == "Invoice"}
        stored = {
            row[0] for row in wh.query("SELECT id FROM qbo.invoices WHERE deleted_at IS NOT NULL")
        }
        assert deleted  # the churn did delete invoices
        # Marked deleted: exactly those the warehouse had loaded before QBO deleted them
        # (one deleted before the first read reached it never entered the warehouse);
        # assert_warehouse_equals above already showed none of them is still live.
        present = {row[0] for row in wh.query("SELECT id FROM qbo.invoices")}
        assert stored == deleted & present
