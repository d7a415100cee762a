"""CDC and batch over HTTP: QBO's envelopes, limits and metering (QBO_API.md §1, §3, §6)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from qbo_pipeline.quickbooks.timestamps import format_qbo, parse_instant
from qbo_pipeline_tests.emulator.conftest import Connection, advance_clock


def _now(qbo: Connection):
    return parse_instant(qbo.query("select count(*) from Customer").json()["time"])


def _cdc(qbo: Connection, entities: str, since: str):
    return qbo.api("GET", "cdc", params={"entities": entities, "changedSince": since})


def _mutate(qbo: Connection, **counts) -> dict:
    response = qbo.http.post(f"/_emulator/companies/{qbo.realm_id}/mutate", json=counts)
    assert response.status_code == 200, response.text
    return response.json()


def test_cdc_envelope_changes_and_deletions(fresh: Connection) -> None:
    since = format_qbo(_now(fresh) - timedelta(seconds=1))
    empty = _cdc(fresh, "Customer,Invoice", since).json()
    assert set(empty) == {"CDCResponse", "time"}
    assert empty["CDCResponse"] == [{"QueryResponse": [{}, {}]}]
    advance_clock(fresh.http, 5)
    changes = _mutate(fresh, updates=4, deletes=3, deactivations=2, seed=3)
    deleted = {c["id"] for c in changes["deleted"]}
    assert len(deleted) == 3 and len(changes["deactivated"]) == 2
    body = _cdc(fresh, "Customer,Invoice", since).json()
    customers, invoices = body["CDCResponse"][0]["QueryResponse"]
    counts = {"startPosition", "maxResults", "totalCount"}
    assert set(customers) == {"Customer", *counts} and set(invoices) == {"Invoice", *counts}
    rows = invoices["Invoice"]
    assert invoices["startPosition"] == 1
    assert invoices["maxResults"] == invoices["totalCount"] == len(rows)
    stubs = [row for row in rows if row.get("status") == "Deleted"]
    assert {row["Id"] for row in stubs} == deleted
    for stub in stubs:
        assert set(stub) == {"domain", "status", "Id", "MetaData"} and stub["domain"] == "QBO"
        assert set(stub["MetaData"]) == {"LastUpdatedTime"}
    inactive = {c["id"] for c in changes["deactivated"]}
    by_id = {row["Id"]: row for row in customers["Customer"]}
    assert inactive <= set(by_id) and not any(by_id[i]["Active"] for i in inactive)
    stamps = [parse_instant(row["MetaData"]["LastUpdatedTime"]) for row in rows]
    assert stamps == sorted(stamps)
    stats = fresh.http.get("/_emulator/stats").json()["realms"][fresh.realm_id]
    assert stats["cdc_calls"] == 2


def test_cdc_keeps_the_oldest_thousand_in_total(fresh: Connection) -> None:
    since = _now(fresh)
    advance_clock(fresh.http, 2)
    _mutate(fresh, creates=700, updates=100, seed=1)
    advance_clock(fresh.http, 2)
    _mutate(fresh, creates=700, seed=2)
    answer = _cdc(fresh, "Invoice,Customer", format_qbo(since)).json()
    returned = {
        (name, row["Id"]): parse_instant(row["MetaData"]["LastUpdatedTime"])
        for part in answer["CDCResponse"][0]["QueryResponse"]
        for name, rows in part.items()
        if name in ("Customer", "Invoice")
        for row in rows
    }
    assert len(returned) == 1000
    changed = {
        (name, row["Id"]): parse_instant(row["MetaData"]["LastUpdatedTime"])
        for name in ("Customer", "Invoice")
        for row in fresh.http.get(f"/_emulator/companies/{fresh.realm_id}/entities/{name}").json()
        if parse_instant(row["MetaData"]["LastUpdatedTime"]) >= since
    }
    assert len(changed) > 1000
    newest = max(returned.values())
    assert {key for key, stamp in changed.items() if stamp < newest} <= set(returned)
    assert all(stamp >= newest for key, stamp in changed.items() if key not in returned)


@pytest.mark.parametrize(
    ("entities", "since_days", "detail"),
    [
        ("Customer", 31, "older than fixed days"),
        ("TaxCode", 1, "not supported for entity TaxCode"),
        ("Customer,Nonsense", 1, "not supported for entity Nonsense"),
        ("", 1, "Required parameter entities"),
    ],
)
def test_cdc_refusals(qbo: Connection, entities: str, since_days: int, detail: str) -> None:
    since = (_now(qbo) - timedelta(days=since_days)).date().isoformat()
    response = _cdc(qbo, entities, since)
    assert response.status_code == 400
    fault = response.json()["Fault"]
    assert fault["type"] == "ValidationFault" and detail in fault["Error"][0]["Detail"]


def test_batch_answers_query_items_and_meters_each(connected) -> None:
    qbo: Connection = connected(requests_per_minute=40)
    items = [
        {"bId": str(n), "Query": f"select * from Invoice startposition {n} maxresults 2"}
        for n in range(1, 29)
    ]
    items.append({"bId": "bad", "Query": "select * from Nothing"})
    items.append({"bId": "create", "operation": "create", "Customer": {"DisplayName": "X"}})
    response = qbo.api("POST", "batch", json={"BatchItemRequest": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"BatchItemResponse", "time"}
    answers = body["BatchItemResponse"]
    assert [a["bId"] for a in answers] == [item["bId"] for item in items]
    assert answers[0]["QueryResponse"]["Invoice"][0]["Id"]
    assert answers[0]["QueryResponse"]["maxResults"] == 2
    assert answers[28]["Fault"]["Error"][0]["code"] == "4001"
    assert answers[29]["Fault"]["type"] == "ValidationFault"
    # 30 items used 30 of the 40 a minute: a second batch of 30 does not fit
    again = qbo.api("POST", "batch", json={"BatchItemRequest": items})
    assert again.status_code == 429 and "ThrottleExceeded" in again.text
    advance_clock(qbo.http, 1)  # the batch took a whole second of the 10 a second
    for _ in range(10):
        assert qbo.query("select count(*) from Customer").status_code == 200
    assert qbo.query("select count(*) from Customer").status_code == 429
    stats = qbo.http.get("/_emulator/stats").json()["realms"][qbo.realm_id]
    assert stats["batch_calls"] == 1 and stats["batch_items"] == 30


def test_batch_of_thirty_one_is_refused(qbo: Connection) -> None:
    items = [{"bId": str(n), "Query": "select * from Customer"} for n in range(31)]
    response = qbo.api("POST", "batch", json={"BatchItemRequest": items})
    assert response.status_code == 400
    assert response.json()["Fault"]["type"] == "ValidationFault"
    assert "Max allowed value is 30" in response.json()["Fault"]["Error"][0]["Detail"]


def test_count_queries_are_counted_through_query_and_batch(fresh: Connection) -> None:
    def realm_stats() -> dict:
        return fresh.http.get("/_emulator/stats").json()["realms"][fresh.realm_id]

    assert fresh.query("SELECT COUNT(*) FROM Invoice").status_code == 200
    counted = fresh.api(
        "POST",
        "query",
        content=b"select count(*) from Customer where Active in (true, false)",
        headers={"Content-Type": "application/text"},
    )
    assert counted.status_code == 200
    assert fresh.query("select * from Invoice maxresults 2").status_code == 200
    assert fresh.query("select count(*) from Nothing").status_code == 400
    assert realm_stats()["count_queries"] == 2
    items = [
        {"bId": "1", "Query": "select count(*) from Invoice"},
        {"bId": "2", "Query": "select * from Customer maxresults 1"},
        {"bId": "3", "Query": "select count(*) from Customer"},
        {"bId": "4", "Query": "select count(*) from Nothing"},
    ]
    assert fresh.api("POST", "batch", json={"BatchItemRequest": items}).status_code == 200
    stats = realm_stats()
    assert stats["count_queries"] == 4 and stats["cdc_calls"] == 0
