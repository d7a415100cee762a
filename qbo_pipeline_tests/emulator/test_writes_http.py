"""Creates, updates and deletes over HTTP: SyncToken rules, totals and balances."""

from __future__ import annotations

from decimal import Decimal

from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline_tests.emulator.conftest import Connection, connect
from qbo_pipeline_tests.emulator.ledger import assert_customer_balances_match


def _post(connection: Connection, resource: str, body: dict, **params) -> dict:
    response = connection.api("POST", resource, json=body, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _fault_code(connection: Connection, resource: str, body: dict, **params) -> str:
    response = connection.api("POST", resource, json=body, params=params)
    assert response.status_code == 400, response.text
    return response.json()["Fault"]["Error"][0]["code"]


def _customer(connection: Connection, customer_id: str) -> dict:
    return connection.api("GET", f"customer/{customer_id}").json()["Customer"]


NEW_INVOICE_LINES = [
    {
        "DetailType": "SalesItemLineDetail",
        "Amount": 0,
        "SalesItemLineDetail": {
            "ItemRef": {"value": "11", "name": "Pump"},
            "Qty": 2,
            "UnitPrice": 150,
            "TaxCodeRef": {"value": "TAX"},
        },
    },
    {
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {
            "ItemRef": {"value": "1", "name": "Services"},
            "Qty": 4,
            "UnitPrice": 50,
            "TaxCodeRef": {"value": "NON"},
        },
    },
    {"Amount": 0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
    {
        "DetailType": "DiscountLineDetail",
        "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
    },
]
TAX = {
    "TxnTaxDetail": {
        "TaxLine": [
            {
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {"PercentBased": True, "TaxPercent": 8},
            }
        ]
    }
}


def test_customer_create_update_sparse_and_stale(fresh: Connection) -> None:
    created = _post(
        fresh, "customer", {"DisplayName": "Harbor Kitchen Supply", "GivenName": "Lena"}
    )
    customer = created["Customer"]
    assert customer["Id"] == "61" and customer["SyncToken"] == "0"
    assert customer["MetaData"]["CreateTime"] == customer["MetaData"]["LastUpdatedTime"]
    assert customer["Active"] is True and customer["FullyQualifiedName"] == "Harbor Kitchen Supply"
    assert customer["Balance"] == 0 and customer["domain"] == "QBO"

    sparse = {"Id": "61", "SyncToken": "0", "sparse": True, "Notes": "VIP"}
    updated = _post(fresh, "customer", sparse)["Customer"]
    assert updated["SyncToken"] == "1" and updated["Notes"] == "VIP"
    assert updated["GivenName"] == "Lena" and updated["sparse"] is False
    assert updated["MetaData"]["CreateTime"] == customer["MetaData"]["CreateTime"]
    assert parse_instant(updated["MetaData"]["LastUpdatedTime"]) >= parse_instant(
        customer["MetaData"]["LastUpdatedTime"]
    )

    assert _fault_code(fresh, "customer", sparse) == "5010"
    full = _post(fresh, "customer", {"Id": "61", "SyncToken": "1", "DisplayName": "Harbor Kitchen"})
    assert "GivenName" not in full["Customer"] and full["Customer"]["SyncToken"] == "2"
    assert (
        fresh.rows("select * from Customer where DisplayName = 'Harbor Kitchen'")[0]["Id"] == "61"
    )

    assert _fault_code(fresh, "customer", {"DisplayName": "Harbor Kitchen"}) == "6240"
    assert _fault_code(fresh, "customer", {"Id": "999", "SyncToken": "0"}) == "610"


def test_customers_are_deactivated_not_deleted(fresh: Connection) -> None:
    assert (
        _fault_code(fresh, "customer", {"Id": "1", "SyncToken": "0"}, operation="delete") == "500"
    )
    customer = _customer(fresh, "1")
    change = {"Id": "1", "SyncToken": customer["SyncToken"], "sparse": True, "Active": False}
    _post(fresh, "customer", change)
    assert not fresh.rows("select * from Customer where Id = '1'")
    assert (
        fresh.rows("select * from Customer where Id = '1' and Active = false")[0]["Active"] is False
    )


def test_invoice_totals_balances_and_delete(fresh: Connection) -> None:
    customer = next(
        c for c in fresh.rows("select * from Customer where Job = false") if c["Active"]
    )
    balance_before = Decimal(str(customer["Balance"]))
    body = {"CustomerRef": {"value": customer["Id"]}, "Line": NEW_INVOICE_LINES, **TAX}
    invoice = _post(fresh, "invoice", body)["Invoice"]
    assert invoice["Id"] == "151" and invoice["SyncToken"] == "0"
    assert invoice["CustomerRef"] == {"value": customer["Id"], "name": customer["DisplayName"]}
    assert [line.get("Id") for line in invoice["Line"]] == ["1", "2", None, None]
    assert invoice["Line"][2]["Amount"] == 500.0 and invoice["Line"][3]["Amount"] == 50.0
    assert invoice["TxnTaxDetail"]["TotalTax"] == 24.0
    assert invoice["TotalAmt"] == 474.0 and invoice["Balance"] == 474.0
    assert invoice["CurrencyRef"] == customer["CurrencyRef"]
    after_create = Decimal(str(_customer(fresh, customer["Id"])["Balance"]))
    assert after_create == balance_before + Decimal("474")

    lines = invoice["Line"][:1] + invoice["Line"][2:]
    sparse = {"Id": "151", "SyncToken": "0", "sparse": True, "Line": lines}
    updated = _post(fresh, "invoice", sparse)["Invoice"]
    assert updated["SyncToken"] == "1" and updated["TotalAmt"] == 294.0  # 300 - 30 + 24
    assert updated["TxnTaxDetail"] == invoice["TxnTaxDetail"]
    assert Decimal(str(_customer(fresh, customer["Id"])["Balance"])) == balance_before + 294

    assert (
        _fault_code(fresh, "invoice", {"Id": "151", "SyncToken": "0"}, operation="delete") == "5010"
    )
    deleted = _post(fresh, "invoice", {"Id": "151", "SyncToken": "1"}, operation="delete")
    assert deleted["Invoice"] == {"domain": "QBO", "status": "Deleted", "Id": "151"}
    assert fresh.api("GET", "invoice/151").status_code == 400
    assert not fresh.rows("select * from Invoice where Id = '151'")
    assert Decimal(str(_customer(fresh, customer["Id"])["Balance"])) == balance_before
    deletions = fresh.http.get(f"/_emulator/companies/{fresh.realm_id}/deletions").json()
    assert [(d["entity"], d["id"]) for d in deletions] == [("Invoice", "151")]
    assert [(d.entity, d.id) for d in fresh.server.state.company.deletions] == [("Invoice", "151")]
    summary = fresh.http.get(f"/_emulator/companies/{fresh.realm_id}/summary").json()
    assert summary["Invoice"]["count"] == 150
    assert_customer_balances_match(summary)


def test_invoice_for_unknown_customer_is_invalid_reference(fresh: Connection) -> None:
    body = {"CustomerRef": {"value": "999"}, "Line": NEW_INVOICE_LINES}
    assert _fault_code(fresh, "invoice", body) == "2500"


def test_same_seed_serves_identical_data_over_http() -> None:
    def snapshot(seed: int) -> tuple:
        with EmulatorServer(EmulatorConfig(seed=seed, customers=20, invoices=40)) as server:
            connection = connect(server)
            realm = connection.realm_id
            entities = [
                connection.http.get(f"/_emulator/companies/{realm}/entities/{name}").json()
                for name in ("Customer", "Invoice")
            ]
            connection.http.close()
            return tuple(map(tuple, (map(repr, e) for e in entities)))

    assert snapshot(3) == snapshot(3)
    assert snapshot(3) != snapshot(4)


def test_a_payment_pays_its_invoices_and_its_deletion_owes_them_again(fresh: Connection) -> None:
    owing = next(
        invoice
        for invoice in fresh.rows("select * from Invoice where Balance > '100' maxresults 50")
        if Decimal(str(invoice["Balance"])) < Decimal(str(invoice["TotalAmt"])) * 2
    )
    customer_id = owing["CustomerRef"]["value"]
    balance_before = Decimal(str(_customer(fresh, customer_id)["Balance"]))
    too_much = Decimal(str(owing["Balance"])) + 1
    line = {"Amount": float(too_much), "LinkedTxn": [{"TxnId": owing["Id"], "TxnType": "Invoice"}]}
    payment = {"CustomerRef": {"value": customer_id}, "TotalAmt": float(too_much), "Line": [line]}
    assert _fault_code(fresh, "payment", payment) == "2010"  # refused; nothing changed

    line["Amount"] = payment["TotalAmt"] = 100.0
    created = _post(fresh, "payment", payment)["Payment"]
    invoice = fresh.api("GET", f"invoice/{owing['Id']}").json()["Invoice"]
    assert Decimal(str(invoice["Balance"])) == Decimal(str(owing["Balance"])) - 100
    assert {"TxnId": created["Id"], "TxnType": "Payment"} in invoice["LinkedTxn"]
    assert int(invoice["SyncToken"]) == int(owing["SyncToken"]) + 1
    assert Decimal(str(_customer(fresh, customer_id)["Balance"])) == balance_before - 100

    _post(fresh, "payment", {"Id": created["Id"], "SyncToken": "0"}, operation="delete")
    invoice = fresh.api("GET", f"invoice/{owing['Id']}").json()["Invoice"]
    assert Decimal(str(invoice["Balance"])) == Decimal(str(owing["Balance"]))
    assert {"TxnId": created["Id"], "TxnType": "Payment"} not in invoice["LinkedTxn"]
    assert Decimal(str(_customer(fresh, customer_id)["Balance"])) == balance_before
    assert_customer_balances_match(
        fresh.http.get(f"/_emulator/companies/{fresh.realm_id}/summary").json()
    )
