"""The accounting API over HTTP, checked against QBO_API.md §1, §2, §4 and §8."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import pytest

from qbo_pipeline.quickbooks.faults import fault_from_response
from qbo_pipeline.quickbooks.timestamps import PACIFIC, parse_instant
from qbo_pipeline_tests.emulator.conftest import CLIENT_ID, CLIENT_SECRET, Connection
from qbo_pipeline_tests.emulator.ledger import assert_customer_balances_match

ENVELOPE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-0[78]:00$")
TID = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")


def _fault(response) -> tuple[str, str, str]:
    error = response.json()["Fault"]["Error"][0]
    return error["code"], error["Message"], error["Detail"]


def _all(qbo: Connection, entity: str) -> list[dict]:
    return qbo.http.get(f"/_emulator/companies/{qbo.realm_id}/entities/{entity}").json()


def test_page_envelope(qbo: Connection) -> None:
    response = qbo.query("select * from Customer startposition 3 maxresults 7")
    body = response.json()
    assert set(body) == {"QueryResponse", "time"}
    assert ENVELOPE_TIME.match(body["time"])
    page = body["QueryResponse"]
    assert set(page) == {"Customer", "startPosition", "maxResults"}
    assert page["startPosition"] == 3 and page["maxResults"] == len(page["Customer"]) == 7
    assert response.headers["content-type"].startswith("application/json")
    assert TID.match(response.headers["intuit_tid"])


def test_last_page_reports_what_it_returned_and_empty_page_is_bare(qbo: Connection) -> None:
    total = qbo.query("select count(*) from Invoice").json()
    assert set(total["QueryResponse"]) == {"totalCount"}
    count = total["QueryResponse"]["totalCount"]
    assert count == len(_all(qbo, "Invoice"))
    last = qbo.query(f"select * from Invoice startposition {count - 2} maxresults 10").json()
    assert last["QueryResponse"]["maxResults"] == 3
    empty = qbo.query(f"select * from Invoice startposition {count + 1}").json()
    assert empty["QueryResponse"] == {} and ENVELOPE_TIME.match(empty["time"])
    assert qbo.query("select * from Invoice where DocNumber = 'none'").json()["QueryResponse"] == {}


def test_post_query_with_application_text(qbo: Connection) -> None:
    response = qbo.api(
        "POST",
        "query",
        content=b"SELECT COUNT(*) FROM Customer WHERE Active IN (true, false)",
        headers={"Content-Type": "application/text"},
    )
    assert response.json()["QueryResponse"]["totalCount"] == len(_all(qbo, "Customer"))


def test_paging_by_last_updated_covers_every_row_once(qbo: Connection) -> None:
    seen: list[str] = []
    position = 1
    while True:
        rows = qbo.rows(
            "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >= '2020-01-01T00:00:00-0800' "
            f"ORDER BY Metadata.LastUpdatedTime ASC STARTPOSITION {position} MAXRESULTS 40"
        )
        seen += [row["Id"] for row in rows]
        if len(rows) < 40:
            break
        position += 40
    assert sorted(seen, key=int) == [row["Id"] for row in _all(qbo, "Invoice")]
    assert len(set(seen)) == len(seen)


def test_order_by_spellings_and_directions(qbo: Connection) -> None:
    def stamps(statement: str) -> list[datetime]:
        return [parse_instant(r["MetaData"]["LastUpdatedTime"]) for r in qbo.rows(statement)]

    ascending = stamps("select * from Customer orderby MetaData.LastUpdatedTime maxresults 1000")
    assert ascending == sorted(ascending)
    descending = stamps(
        "select * from Customer ORDER BY Metadata.LastUpdatedTime DESC MAXRESULTS 1000"
    )
    assert descending == sorted(descending, reverse=True)
    totals = [
        Decimal(str(r["TotalAmt"]))
        for r in qbo.rows("select * from Invoice order by TotalAmt desc")
    ]
    assert totals == sorted(totals, reverse=True)


def test_operators_over_http(qbo: Connection) -> None:
    invoices = _all(qbo, "Invoice")
    middle = sorted(invoices, key=lambda i: i["TxnDate"])[len(invoices) // 2]["TxnDate"]
    later = qbo.rows(f"select * from Invoice where TxnDate > '{middle}' maxresults 1000")
    assert {r["Id"] for r in later} == {i["Id"] for i in invoices if i["TxnDate"] > middle}
    some = [i["Id"] for i in invoices[:3]]
    listed = qbo.rows(f"select * from Invoice where Id in ('{some[0]}', '{some[1]}', '{some[2]}')")
    assert [r["Id"] for r in listed] == some
    customer = invoices[0]["CustomerRef"]["value"]
    mine = qbo.rows(f"select * from Invoice where CustomerRef = '{customer}' and Balance >= '0'")
    assert {r["Id"] for r in mine} == {
        i["Id"] for i in invoices if i["CustomerRef"]["value"] == customer
    }
    cafe = qbo.rows("select * from Customer where DisplayName like '%müller%'")
    assert cafe and all("müller" in r["DisplayName"].lower() for r in cafe)


def test_timestamp_literal_forms_select_the_same_instant(qbo: Connection) -> None:
    customers = _all(qbo, "Customer")
    stamps = {c["MetaData"]["LastUpdatedTime"] for c in customers if c["Active"]}
    for offset in ("-07:00", "-08:00"):
        stamp = sorted(s for s in stamps if s.endswith(offset))[0]
        instant = parse_instant(stamp)
        expected = {
            c["Id"]
            for c in customers
            if c["Active"] and parse_instant(c["MetaData"]["LastUpdatedTime"]) >= instant
        }
        utc = instant.astimezone(PACIFIC).astimezone(parse_instant("2020-01-01T00:00:00Z").tzinfo)
        forms = (stamp, stamp[:-3] + stamp[-2:], utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
        for literal in forms:
            where = f"MetaData.LastUpdatedTime >= '{literal}'"
            rows = qbo.rows(f"select * from Customer where {where} maxresults 1000")
            assert {r["Id"] for r in rows} == expected, literal
    day = qbo.rows(
        "select * from Customer where Metadata.CreateTime < '2025-01-01' maxresults 1000"
    )
    cutoff = datetime(2025, 1, 1, tzinfo=PACIFIC)
    assert {r["Id"] for r in day} == {
        c["Id"]
        for c in customers
        if c["Active"] and parse_instant(c["MetaData"]["CreateTime"]) < cutoff
    }


def test_inactive_customers_hidden_unless_active_filtered(qbo: Connection) -> None:
    everyone = _all(qbo, "Customer")
    inactive = {c["Id"] for c in everyone if not c["Active"]}
    assert inactive
    default = {r["Id"] for r in qbo.rows("select * from Customer maxresults 1000")}
    assert default == {c["Id"] for c in everyone} - inactive
    both = qbo.rows("select * from Customer where Active in (true, false) maxresults 1000")
    assert len(both) == len(everyone)
    assert {r["Id"] for r in qbo.rows("select * from Customer where Active = false")} == inactive


@pytest.mark.parametrize(
    ("statement", "message", "detail"),
    [
        (
            "select * from Customer maxresults 1001",
            "Invalid query",
            "QueryValidationError: value 1001 is too large. Max allowed value is 1000",
        ),
        (
            "select * from Customer where PrimaryEmailAddr = 'a@b.c'",
            "Invalid query",
            "QueryValidationError: property 'PrimaryEmailAddr' is not queryable",
        ),
        (
            "select * from TaxService",
            "Invalid query",
            "QueryValidationError: Metadata not found for Entity: TaxService",
        ),
        ("select * from Customer where Active = true or Job = true", "Error parsing query", None),
    ],
)
def test_query_faults(qbo: Connection, statement: str, message: str, detail: str | None) -> None:
    response = qbo.query(statement)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"Fault", "time"} and body["Fault"]["type"] == "ValidationFault"
    assert set(body["Fault"]["Error"][0]) == {"Message", "Detail", "code", "element"}
    code, got_message, got_detail = _fault(response)
    assert code == "4001" and got_message == message
    assert got_detail == detail if detail else got_detail.startswith("QueryParserError")
    assert fault_from_response(response).__class__.__name__ == "ValidationFault"


def test_read_by_id_and_unknown_id(qbo: Connection) -> None:
    invoice = _all(qbo, "Invoice")[4]
    response = qbo.api("GET", f"invoice/{invoice['Id']}", params={"minorversion": "75"})
    assert set(response.json()) == {"Invoice", "time"}
    assert response.json()["Invoice"] == invoice
    missing = qbo.api("GET", "customer/999999")
    assert missing.status_code == 400 and _fault(missing)[:2] == ("610", "Object Not Found")


def test_entities_match_the_qbo_samples(qbo: Connection) -> None:
    customer = qbo.rows("select * from Customer maxresults 1")[0]
    for key in (
        "Id",
        "SyncToken",
        "domain",
        "sparse",
        "MetaData",
        "DisplayName",
        "FullyQualifiedName",
        "PrintOnCheckName",
        "PrimaryPhone",
        "BillAddr",
        "Active",
        "Job",
        "BillWithParent",
        "Taxable",
        "Balance",
        "BalanceWithJobs",
        "CurrencyRef",
        "PreferredDeliveryMethod",
    ):
        assert key in customer, key
    invoice = qbo.rows("select * from Invoice maxresults 1")[0]
    for key in (
        "DocNumber",
        "TxnDate",
        "DueDate",
        "CurrencyRef",
        "CustomField",
        "LinkedTxn",
        "Line",
        "TxnTaxDetail",
        "CustomerRef",
        "BillAddr",
        "SalesTermRef",
        "TotalAmt",
        "Balance",
        "ApplyTaxAfterDiscount",
        "PrintStatus",
        "EmailStatus",
    ):
        assert key in invoice, key
    assert re.match(r"^\d{4}-\d\d-\d\d$", invoice["DueDate"])
    assert isinstance(invoice["TotalAmt"], float | int)


def test_metadata_offsets_are_pacific_for_each_instant(qbo: Connection) -> None:
    offsets = set()
    for entity in _all(qbo, "Customer") + _all(qbo, "Invoice"):
        for stamp in entity["MetaData"].values():
            instant = parse_instant(stamp)
            assert stamp == instant.astimezone(PACIFIC).isoformat()
            offsets.add(stamp[-6:])
    assert offsets == {"-07:00", "-08:00"}


def test_summary_matches_the_entities(qbo: Connection) -> None:
    summary = qbo.http.get(f"/_emulator/companies/{qbo.realm_id}/summary").json()
    invoices = _all(qbo, "Invoice")
    assert summary["Invoice"]["count"] == len(invoices)
    total = sum((Decimal(str(i["TotalAmt"])) for i in invoices), Decimal(0))
    assert Decimal(summary["Invoice"]["total_amt_sum"]) == total
    assert_customer_balances_match(summary)
    [listing] = qbo.http.get("/_emulator/companies").json()
    assert listing == {
        "realm_id": qbo.realm_id,
        "company_name": listing["company_name"],
        "customers": 60,
        "invoices": 150,
    }
    assert listing["company_name"]


def test_authentication_faults(qbo: Connection) -> None:
    bad = qbo.api(
        "GET",
        "query",
        params={"query": "select * from Customer"},
        headers={"Authorization": "Bearer nonsense"},
    )
    assert bad.status_code == 401
    body = bad.json()
    assert body["fault"]["error"][0] == {
        "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
        "detail": "Token invalid",
        "code": "3200",
        "element": None,
    }
    assert body["fault"]["type"] == "AUTHENTICATION" and isinstance(body["time"], int)
    for key in ("warnings", "intuitObject", "report", "queryResponse", "requestId", "status"):
        assert body[key] is None
    assert body["batchItemResponse"] == [] and body["cdcresponse"] == []
    assert TID.match(bad.headers["intuit_tid"])
    assert qbo.api("GET", "customer/1", authorised=False).status_code == 401


def test_token_for_another_realm_is_403_3100(qbo: Connection) -> None:
    response = qbo.http.get(
        "/v3/company/1234567890/query",
        params={"query": "select * from Customer"},
        headers={"Authorization": f"Bearer {qbo.tokens['access_token']}"},
    )
    assert response.status_code == 403
    error = response.json()["fault"]["error"][0]
    assert error["code"] == "3100"
    assert (
        error["message"]
        == "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403"
    )
    assert response.json()["fault"]["type"] == "SERVICE"


def test_expired_access_token_then_refresh(fresh: Connection) -> None:
    fresh.http.post("/_emulator/tokens/expire")
    expired = fresh.query("select * from Customer")
    assert expired.status_code == 401
    assert expired.json()["fault"]["error"][0]["detail"].startswith("Token expired: ")
    refreshed = fresh.http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": fresh.tokens["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    fresh.tokens = refreshed.json()
    assert fresh.query("select * from Customer").status_code == 200
    stats = fresh.http.get("/_emulator/stats").json()["realms"][fresh.realm_id]
    assert stats["by_status"] == {"401": 1, "200": 1} and stats["requests"] == 2


def test_injected_faults(fresh: Connection) -> None:
    fresh.http.post("/_emulator/faults", json={"status": 429, "count": 1})
    throttled = fresh.query("select * from Customer")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert throttled.text.startswith("<?xml") and "ThrottleExceeded" in throttled.text
    assert TID.match(throttled.headers["intuit_tid"])
    assert fault_from_response(throttled).__class__.__name__ == "ThrottleExceeded"
    fresh.http.post("/_emulator/faults", json={"status": 503, "count": 1, "shape": "xml"})
    unavailable = fresh.query("select * from Customer")
    assert unavailable.status_code == 503 and unavailable.text.startswith("<?xml")
    fresh.http.post("/_emulator/faults", json={"status": 500, "count": 2})
    for _ in range(2):
        failed = fresh.query("select * from Customer")
        assert failed.status_code == 500 and failed.json()["Fault"]["type"] == "SystemFault"
    assert fresh.query("select * from Customer").status_code == 200
    fresh.http.post("/_emulator/faults", json={"status": 500, "count": 5})
    fresh.http.delete("/_emulator/faults")
    assert fresh.query("select * from Customer").status_code == 200
