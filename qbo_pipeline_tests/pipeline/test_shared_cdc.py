"""A run asks CDC once for all its entities: every call counts against the customer's
monthly allowance, and issue 11's thirty entities would otherwise cost thirty calls an
hour with nothing changed. The one answer must still leave the warehouse right."""

from __future__ import annotations

import httpx

from qbo_pipeline.quickbooks.catalog import CUSTOMER, ENTITIES, INVOICE
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.engine import SyncOptions, share_run_changes, sync_entity
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals

OPTIONS = SyncOptions(page_size=50)
BOTH = [CUSTOMER, INVOICE]


def mutate(company, **counts) -> dict:
    response = httpx.post(
        f"{company.emulator.base_url}/_emulator/companies/{company.realm_id}/mutate",
        json={**counts, "seed": 11},
    )
    response.raise_for_status()
    return response.json()


def stamped_from_cursor(company, entity) -> int:
    """How many of the entity's rows QBO stamped from the warehouse's cursor less the
    overlap on: what an incremental read of it must write."""
    with company.runtime.warehouse() as wh:
        since = wh.cursor(company.realm_id, entity.name) - OPTIONS.overlap
    return sum(
        parse_instant(row["MetaData"]["LastUpdatedTime"]) >= since
        for row in company.entities(entity.name)
    )


def sync_run(company) -> dict:
    """Both entities as the Dagster step syncs them: one shared CDC call, then each."""
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        shared = share_run_changes(client, wh, BOTH, OPTIONS)
        return {e.name: sync_entity(client, wh, e, OPTIONS, shared=shared) for e in BOTH}


def test_changes_and_deletions_of_both_entities_come_from_one_call(connect):
    company = connect(customers=60, invoices=150)
    sync_run(company)
    mutated = mutate(company, creates=6, updates=20, deletes=3)
    stamped_since = {entity.name: stamped_from_cursor(company, entity) for entity in BOTH}
    company.reset_stats()

    results = sync_run(company)

    stats = company.stats()
    assert stats["cdc_calls"] == 1 and stats["requests"] == 1
    assert sum(result.requests for result in results.values()) == 1  # counted once
    assert {result.mode for result in results.values()} == {"incremental"}
    gone = {d["id"] for d in mutated["deleted"] if d["entity"] == "Invoice"}
    assert results["Invoice"].deleted == len(gone) > 0
    # Each entity wrote what QBO stamped from its cursor less the overlap: the burst, and
    # the customers whose balances the invoices changed.
    for entity in BOTH:
        assert results[entity.name].rows == stamped_since[entity.name] > 0
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def test_each_entity_takes_only_its_own_window_from_the_earliest_cursor(connect):
    """The call asks from the oldest cursor; an entity synced since does not write again
    the rows it already has."""
    company = connect(customers=40, invoices=60)
    sync_run(company)
    mutate(company, updates=10)
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        sync_entity(client, wh, INVOICE, OPTIONS)  # invoices are up to date; customers not
    company.reset_stats()

    results = sync_run(company)

    assert company.stats()["cdc_calls"] == 1
    assert results["Invoice"].rows == 0
    assert results["Customer"].rows > 0
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def test_over_a_thousand_changes_each_entity_asks_on_its_own(connect):
    """A full answer may stop part-way through either entity's changes, so it is not
    shared; the run pays one call more, and every call is counted."""
    company = connect(customers=300, invoices=1500)
    sync_run(company)
    mutate(company, creates=1100)  # 1100 new rows: more than one answer holds
    company.reset_stats()

    results = sync_run(company)

    stats = company.stats()
    assert stats["cdc_calls"] >= 3  # the shared one, then one per entity at least
    assert sum(result.requests for result in results.values()) == stats["requests"]
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def test_when_qbo_refuses_the_shared_cursor_each_entity_finds_its_own_way(connect):
    """A month on by QBO's clock: the shared call is refused. A refusal of the earliest
    cursor says nothing of the others, so each entity asks again; refused too, customers
    are read by LastUpdatedTime and invoices in full."""
    company = connect(customers=40, invoices=120)
    sync_run(company)
    mutate(company, deletes=2)
    company.advance_qbo_clock(31 * 86400)
    company.reset_stats()

    results = sync_run(company)

    assert [results[name].mode for name in ("Customer", "Invoice")] == ["incremental", "full"]
    assert company.stats()["cdc_calls"] == 3  # the shared refusal, then one each
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)


def test_one_entity_asks_cdc_itself(connect):
    company = connect(customers=20, invoices=20)
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        sync_entity(client, wh, INVOICE, OPTIONS)
        assert share_run_changes(client, wh, [INVOICE], OPTIONS) is None
        assert share_run_changes(client, wh, BOTH, OPTIONS) is None  # customers: first sync
    assert company.stats()["cdc_calls"] == 0


def test_bulk_changes_in_two_tables_cost_the_others_one_more_shared_call(connect):
    """Over 1000 changes in customers and in invoices must not cost a CDC call for each
    other entity: the entities a full answer holds nothing of ask together again."""
    tracked = [entity for entity in ENTITIES if entity.cdc]
    company = connect(customers=3000, invoices=6000)
    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        for entity in tracked:
            sync_entity(client, wh, entity)
    mutate(company, updates=3000)  # both tables, each past what one answer holds
    company.reset_stats()

    with company.runtime.client(company.realm_id) as client, company.runtime.warehouse() as wh:
        shared = share_run_changes(client, wh, tracked, SyncOptions())
        results = {
            e.name: sync_entity(client, wh, e, SyncOptions(), shared=shared) for e in tracked
        }

    stats = company.stats()
    lists = [entity.name for entity in tracked if entity not in BOTH]
    # The customers read first and count the shared calls; no other entity (the name
    # lists, the other transactions) makes one of its own.
    assert {name: results[name].requests for name in lists} == dict.fromkeys(lists, 0)
    assert stats["requests"] == sum(result.requests for result in results.values())
    assert stats["cdc_calls"] <= 3 + 2  # three shared, and one each for the two tables
    with company.runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
