"""Intuit's webhook signature and both delivery formats, read into events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from qbo_pipeline.quickbooks.webhooks import (
    MAX_REJECTS,
    RejectedEvent,
    UndeliverableBody,
    WebhookEvent,
    parse_delivery,
    sign,
    signature_matches,
)

# Intuit's documented CloudEvents example (a merge), as in QBO_API.md section 7.
MERGE = {
    "specversion": "1.0",
    "id": "88cd52aa-33b6-4351-9aa4-47572edbd068",
    "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
    "type": "qbo.customer.merged.v1",
    "datacontenttype": "application/json",
    "time": "2025-12-04T15:25:05Z",
    "intuitentityid": "123",
    "intuitaccountid": "9130355377741016",
    "data": {"deletedid": "27"},
}
# Intuit's legacy example (webhooks developer guide, 2015 stamps without a colon).
LEGACY = {
    "eventNotifications": [
        {
            "realmId": "1185883450",
            "dataChangeEvent": {
                "entities": [
                    {"name": "Customer", "id": "1", "operation": "Create",
                     "lastUpdated": "2015-10-05T14:42:19-0700"},
                    {"name": "Customer", "id": "2", "operation": "Merge",
                     "lastUpdated": "2015-10-05T14:42:19-0700", "deletedId": "7"},
                ]
            },
        }
    ]
}  # fmt: skip


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body_with_the_verifier_token():
    body = b'[{"id": "1"}]'
    expected = base64.b64encode(hmac.new(b"verifier", body, hashlib.sha256).digest()).decode()
    assert sign(body, "verifier") == expected
    assert signature_matches(body, expected, "verifier")
    assert not signature_matches(body + b" ", expected, "verifier")
    assert not signature_matches(body, expected, "another verifier")
    assert not signature_matches(body, None, "verifier")
    assert not signature_matches(body, "", "verifier")
    assert not signature_matches(body, "not base64 at all", "verifier")


def test_a_cloudevents_merge_names_the_survivor_and_the_id_it_absorbed():
    [event] = parse_delivery(json.dumps([MERGE]).encode())
    assert event == WebhookEvent(
        event_id=MERGE["id"],
        realm_id="9130355377741016",
        entity="customer",
        entity_id="123",
        operation="merged",
        occurred_at=datetime(2025, 12, 4, 15, 25, 5, tzinfo=UTC),
        deleted_id="27",
    )


def test_the_legacy_format_becomes_the_same_events_with_a_stable_id_per_change():
    body = json.dumps(LEGACY).encode()
    created, merged = parse_delivery(body)
    assert (created.entity, created.entity_id, created.operation) == ("customer", "1", "created")
    assert (merged.operation, merged.deleted_id) == ("merged", "7")
    assert created.occurred_at == datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)
    # Redelivered, the same changes have the same ids, so they are stored once.
    assert [e.event_id for e in parse_delivery(body)] == [created.event_id, merged.event_id]
    assert created.event_id != merged.event_id


@pytest.mark.parametrize(
    ("type_", "operation"),
    [
        ("qbo.invoice.created.v1", "created"),
        ("qbo.invoice.voided.v1", "voided"),
        ("qbo.invoice.void.v1", "voided"),  # the portal's spelling
        ("qbo.invoice.deleted.v1", "deleted"),
        ("qbo.invoice.emailed.v1", "emailed"),
        ("qbo.invoice.archived.v2", "archived"),  # a verb Intuit may add: kept, not refused
    ],
)
def test_verbs_are_read_in_either_spelling_and_unknown_ones_are_kept(type_, operation):
    element = {**MERGE, "type": type_, "data": {}}
    [event] = parse_delivery(json.dumps([element]).encode())
    assert event.operation == operation and event.entity == "invoice"


def test_nanosecond_times_and_absent_data_are_read():
    element = {**MERGE, "time": "2025-09-10T21:31:25.179851517Z"}
    del element["data"]
    [event] = parse_delivery(json.dumps([element]).encode())
    assert event.occurred_at == datetime(2025, 9, 10, 21, 31, 25, 179851, tzinfo=UTC)
    assert event.deleted_id is None


def test_a_bad_element_is_rejected_with_its_reason_and_the_rest_are_kept():
    bad_realm = {**MERGE, "id": "e2", "intuitaccountid": "12\n34"}
    bad_type = {**MERGE, "id": "e3", "type": "com.example.thing"}
    no_entity = {**MERGE, "id": "e4", "intuitentityid": None}
    body = json.dumps([MERGE, bad_realm, bad_type, no_entity, "text", 7]).encode()
    good, *rejected = parse_delivery(body)
    assert isinstance(good, WebhookEvent)
    assert all(isinstance(r, RejectedEvent) for r in rejected)
    assert "intuitaccountid" in rejected[0].reason
    assert "com.example.thing" in rejected[1].reason
    assert "intuitentityid" in rejected[2].reason
    # Elements without an id of their own are named after the body, so a redelivery of the
    # same body names them the same way.
    assert [r.event_id for r in parse_delivery(body)[1:]] == [r.event_id for r in rejected]


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"\xff\xfe not utf-8", b'{"hello": "world"}', b"42", b"[" * 100_000],
)
def test_a_body_that_is_no_delivery_at_all_is_undeliverable(body):
    with pytest.raises(UndeliverableBody):
        parse_delivery(body)


@pytest.mark.parametrize("event_id", ["0c491d29\ud800", "abc\u0000", "x" * 257, "", 17])
def test_an_id_the_database_cannot_hold_makes_a_reject(event_id):
    [rejected] = parse_delivery(json.dumps([{**MERGE, "id": event_id}]).encode())
    assert isinstance(rejected, RejectedEvent) and "usable id" in rejected.reason
    assert rejected.event_id.isascii()


def test_a_non_ascii_id_is_an_id_like_any_other():
    [event] = parse_delivery(json.dumps([{**MERGE, "id": "事件-\u202e-42"}]).encode())
    assert isinstance(event, WebhookEvent) and event.event_id == "事件-\u202e-42"


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1970-01-01T00:00:00Z"]
)
def test_a_stamp_outside_qbos_years_makes_a_reject(stamp):
    [rejected] = parse_delivery(json.dumps([{**MERGE, "time": stamp}]).encode())
    assert isinstance(rejected, RejectedEvent) and "time" in rejected.reason


def test_rejects_past_the_cap_are_summed_up_in_one_row():
    body = json.dumps([MERGE, *(["junk"] * (MAX_REJECTS + 50))]).encode()
    events = parse_delivery(body)
    assert isinstance(events[0], WebhookEvent)
    assert len(events) == 1 + MAX_REJECTS + 1
    assert "50 more elements rejected" in events[-1].reason
    assert len({event.event_id for event in events}) == len(events)
