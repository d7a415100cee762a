"""Soft deletes on both warehouses: CDC deletions, unseen rows after a full re-read, undelete."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.warehouse import Warehouse

REALM = "9130356766371234"
DELETED = datetime(2023, 3, 1, 12, tzinfo=UTC)


def _deleted(warehouse: Warehouse, realm: str = REALM) -> dict[str, datetime | None]:
    rows = warehouse.query("SELECT id, deleted_at FROM qbo.invoices WHERE realm_id = $1", [realm])
    return dict(rows)


def test_deletions_mark_rows_once_and_move_the_cursor(
    warehouse: Warehouse, invoices: list[dict]
) -> None:
    warehouse.upsert(INVOICE, REALM, invoices)
    later = DELETED + timedelta(days=1)

    marked = warehouse.apply_deletions(
        INVOICE, REALM, [("119", DELETED), ("96", DELETED), ("no-such-id", DELETED)], cursor=later
    )

    assert marked == 2
    stamps = _deleted(warehouse)
    assert stamps["119"] == stamps["96"] == DELETED
    assert sum(stamp is None for stamp in stamps.values()) == 3
    assert warehouse.cursor(REALM, "Invoice") == later
    # Already deleted rows keep their first instant; lines stay for the analyst's join.
    assert warehouse.apply_deletions(INVOICE, REALM, [("119", later)]) == 0
    assert _deleted(warehouse)["119"] == DELETED
    assert warehouse.count("invoice_lines", REALM) == 21
    # Other realms are untouched.
    warehouse.upsert(INVOICE, "other-realm", invoices)
    assert warehouse.apply_deletions(INVOICE, "other-realm", []) == 0
    assert set(_deleted(warehouse, "other-realm").values()) == {None}


def test_unseen_ids_are_the_live_rows_a_full_read_did_not_return(
    warehouse: Warehouse, invoices: list[dict]
) -> None:
    warehouse.upsert(INVOICE, REALM, invoices)
    warehouse.upsert(INVOICE, "other-realm", invoices)
    seen = (invoice["Id"] for invoice in invoices[2:])  # a generator, as a sync streams them

    unseen = warehouse.unseen_ids(INVOICE, REALM, seen)

    assert unseen == sorted([invoices[0]["Id"], invoices[1]["Id"]])
    assert warehouse.apply_deletions(INVOICE, REALM, [(unseen[0], DELETED)]) == 1
    # A row already deleted is not live: it is not reported again.
    assert warehouse.unseen_ids(INVOICE, REALM, []) == sorted(
        invoice["Id"] for invoice in invoices if invoice["Id"] != unseen[0]
    )
    assert set(_deleted(warehouse, "other-realm").values()) == {None}


def test_unseen_ids_handle_a_large_company(warehouse: Warehouse, invoices: list[dict]) -> None:
    template = invoices[0]
    batch = [copy.deepcopy(template) | {"Id": str(n)} for n in range(1, 2_001)]
    warehouse.upsert(INVOICE, REALM, batch)
    seen = (str(n) for n in range(2, 250_001))  # far more ids than rows; only "1" is gone

    assert warehouse.unseen_ids(INVOICE, REALM, seen) == ["1"]


def test_a_higher_sync_token_undeletes(warehouse: Warehouse, invoices: list[dict]) -> None:
    original = next(invoice for invoice in invoices if invoice["Id"] == "119")
    warehouse.upsert(INVOICE, REALM, [original])
    warehouse.apply_deletions(INVOICE, REALM, [("119", DELETED)])

    same = copy.deepcopy(original) | {"DocNumber": "changed"}
    assert warehouse.upsert(INVOICE, REALM, [same]).rows_written == 1  # equal token, new value
    assert _deleted(warehouse)["119"] == DELETED
    assert warehouse.upsert(INVOICE, REALM, [original]).rows_written == 1
    assert _deleted(warehouse)["119"] == DELETED

    newer = copy.deepcopy(original) | {"SyncToken": "1"}
    assert warehouse.upsert(INVOICE, REALM, [newer]).rows_written == 1
    assert _deleted(warehouse)["119"] is None


def test_name_lists_are_never_hard_deleted(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="name-list"):
        warehouse.unseen_ids(CUSTOMER, REALM, [])
    with pytest.raises(ValueError, match="name-list"):
        warehouse.apply_deletions(CUSTOMER, REALM, [("1", DELETED)])
    with pytest.raises(ValueError, match="name-list"):
        warehouse.apply_deletions(CUSTOMER, REALM, [("1", DELETED)], reason="voided")
    with pytest.raises(ValueError, match="timezone-aware"):
        warehouse.apply_deletions(INVOICE, REALM, [("1", datetime(2023, 3, 1))])


def test_a_failed_deletion_keeps_rows_and_cursor(
    warehouse: Warehouse, invoices: list[dict]
) -> None:
    warehouse.upsert(INVOICE, REALM, invoices, cursor=DELETED)

    with pytest.raises(ValueError, match="timezone-aware"):
        warehouse.apply_deletions(
            INVOICE, REALM, [("119", DELETED), ("96", datetime(2023, 3, 2))], cursor=DELETED
        )

    assert set(_deleted(warehouse).values()) == {None}
    assert warehouse.cursor(REALM, "Invoice") == DELETED


def _reasons(warehouse: Warehouse, table: str) -> dict[str, str | None]:
    rows = warehouse.query(
        f"SELECT id, deleted_reason FROM qbo.{table} WHERE realm_id = $1", [REALM]
    )
    return dict(rows)


def test_each_mark_keeps_its_reason_and_voided_rows_still_count_as_qbo_counts_them(
    warehouse: Warehouse, invoices: list[dict], customers: list[dict]
) -> None:
    warehouse.upsert(INVOICE, REALM, invoices)
    warehouse.upsert(CUSTOMER, REALM, customers)
    bound = datetime(2100, 1, 1, tzinfo=UTC)
    before = warehouse.rows_in_qbo(INVOICE, REALM, bound)
    gone, voided = invoices[0]["Id"], invoices[1]["Id"]
    merged_away = customers[0]["Id"]

    warehouse.apply_deletions(INVOICE, REALM, [(gone, DELETED)])
    warehouse.apply_deletions(INVOICE, REALM, [(voided, DELETED)], reason="voided")
    warehouse.apply_deletions(CUSTOMER, REALM, [(merged_away, DELETED)], reason="merged")

    reasons = _reasons(warehouse, "invoices")
    assert (reasons[gone], reasons[voided]) == ("deleted", "voided")
    assert _reasons(warehouse, "customers")[merged_away] == "merged"
    # QBO still counts a voided invoice and every customer; only the deleted one is gone.
    assert warehouse.rows_in_qbo(INVOICE, REALM, bound) == before - 1
    assert warehouse.rows_in_qbo(CUSTOMER, REALM, bound) == len(customers)
    # A newer version clears the reason with the mark.
    revived = copy.deepcopy(invoices[1]) | {"SyncToken": str(int(invoices[1]["SyncToken"]) + 1)}
    warehouse.upsert(INVOICE, REALM, [revived])
    assert _reasons(warehouse, "invoices")[voided] is None
    with pytest.raises(ValueError, match="reason"):
        warehouse.apply_deletions(INVOICE, REALM, [(gone, DELETED)], reason="archived")
