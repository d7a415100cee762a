"""The query language as pure functions: parsing, binding to the catalog, evaluation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qbo_pipeline.emulator import query
from qbo_pipeline.emulator.query import Condition, Order, QueryError, bind, parse, project
from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE


def _customer(number: int, name: str, updated: str, *, active: bool = True, **extra) -> dict:
    return {
        "Id": str(number),
        "DisplayName": name,
        "Active": active,
        "Balance": extra.pop("Balance", 0),
        "MetaData": {"CreateTime": updated, "LastUpdatedTime": updated},
        **extra,
    }


CUSTOMERS = [
    _customer(1, "Harbor Kitchen", "2025-01-06T16:40:55-08:00", Balance=1250.5),
    _customer(2, "Café Müller GmbH", "2025-07-01T09:00:00-07:00", Balance=10),
    _customer(3, "O'Brien Design", "2025-07-01T09:00:00-07:00", active=False),
    _customer(10, "Zoë Łukasz", "2024-11-03T01:30:00-07:00", ParentRef={"value": "1"}),
    _customer(11, "Zeta", "2024-11-03T01:30:00-08:00"),
]


def run(statement: str, entities: list[dict] = CUSTOMERS) -> list[int]:
    plan = bind(parse(statement))
    rows = [(int(e["Id"]), project(plan.schema, e)) for e in entities]
    return list(query.page(plan, query.select(plan, rows)))


def detail(statement: str) -> str:
    with pytest.raises(QueryError) as error:
        bind(parse(statement))
    return error.value.detail


def test_parse_full_statement() -> None:
    statement = parse(
        "select * FROM Customer WHERE Metadata.LastUpdatedTime >= '2025-01-01' "
        "AND DisplayName LIKE 'O\\'Br%' ORDER BY MetaData.LastUpdatedTime DESC, Id "
        "STARTPOSITION 3 MAXRESULTS 20"
    )
    assert statement.entity == "Customer" and not statement.count
    assert statement.where == (
        Condition("Metadata.LastUpdatedTime", ">=", ("2025-01-01",)),
        Condition("DisplayName", "LIKE", ("O'Br%",)),
    )
    assert statement.order == (Order("MetaData.LastUpdatedTime", True), Order("Id"))
    assert (statement.start_position, statement.max_results) == (3, 20)


def test_parse_count_orderby_and_defaults() -> None:
    assert parse("SELECT COUNT(*) FROM Invoice").count
    statement = parse("select * from Invoice orderby TxnDate asc maxresults 5 startposition 2")
    assert statement.order == (Order("TxnDate"),)
    assert (statement.start_position, statement.max_results) == (2, 5)
    assert parse("select * from Invoice").max_results == 100


@pytest.mark.parametrize(
    "statement",
    [
        "select * from Customer where Active = true or Active = false",
        "select Id from Customer",
        "select * from Customer where DisplayName != 'x'",
        "select * from Customer where DisplayName = 'unterminated",
        "select * from",
        "select * from Customer maxresults -5",
    ],
)
def test_syntax_errors_are_4001_parse_errors(statement: str) -> None:
    with pytest.raises(QueryError) as error:
        parse(statement)
    assert error.value.message == "Error parsing query"
    assert error.value.detail.startswith("QueryParserError: Encountered")


def test_validation_errors_name_the_problem() -> None:
    assert detail("select * from Customer maxresults 1500") == (
        "QueryValidationError: value 1500 is too large. Max allowed value is 1000"
    )
    assert detail("select * from TaxService") == (
        "QueryValidationError: Metadata not found for Entity: TaxService"
    )
    assert detail("select * from Customer where PrimaryEmailAddr = 'a'") == (
        "QueryValidationError: property 'PrimaryEmailAddr' is not queryable"
    )
    assert "not queryable" in detail("select * from Customer order by Notes")
    assert "not queryable" in detail("select * from Invoice where Line = '1'")


def test_comparison_operators_on_strings_and_money() -> None:
    assert run("select * from Customer where DisplayName = 'Zeta'") == [11]
    assert run("select * from Customer where Balance > '100'") == [1]
    assert run("select * from Customer where Balance >= 10") == [1, 2]
    assert run("select * from Customer where Balance < 10") == [10, 11]
    assert run("select * from Customer where Balance <= '10.00'") == [2, 10, 11]


def test_in_like_and_refs() -> None:
    assert run("select * from Customer where Id IN ('2', '11', '99')") == [2, 11]
    assert run("select * from Customer where DisplayName LIKE 'caf%'") == [2]
    assert run("select * from Customer where DisplayName LIKE '%ł%'") == [10]
    assert run("select * from Customer where ParentRef = '1'") == [10]
    assert run("select * from Customer where ParentRef = '1' and Balance > 5") == []


def test_name_list_hides_inactive_unless_active_is_filtered() -> None:
    assert 3 not in run("select * from Customer")
    assert run("select * from Customer where Active = false") == [3]
    assert 3 in run("select * from Customer where Active IN (true, false)")
    assert run("select count(*) from Invoice", []) == []


def test_timestamps_compare_as_instants_in_every_literal_form() -> None:
    # 01:30 PDT and 01:30 PST on 2024-11-03 are an hour apart though equal as text.
    pdt_only = "select * from Customer where MetaData.LastUpdatedTime < '2024-11-03T08:45:00Z'"
    assert run(pdt_only) == [10]
    for literal in (
        "2024-11-03T01:30:00-0800",
        "2024-11-03T01:30:00-08:00",
        "2024-11-03T09:30:00Z",
    ):
        assert run(f"select * from Customer where Metadata.LastUpdatedTime = '{literal}'") == [11]
    bare_date = run("select * from Customer where MetaData.LastUpdatedTime >= '2025-07-01'")
    assert bare_date == [2]


def test_dates_compare_as_dates() -> None:
    invoices = [
        {"Id": "1", "TxnDate": "2025-02-03", "TotalAmt": 10},
        {"Id": "2", "TxnDate": "2025-02-10", "TotalAmt": 20},
    ]
    assert run("select * from Invoice where TxnDate > '2025-02-03'", invoices) == [2]
    assert run("select * from Invoice where TxnDate <= '2025-02-03'", invoices) == [1]


def test_order_is_stable_with_id_tiebreak_and_paging() -> None:
    ordered = run(
        "select * from Customer where Active in (true,false) order by MetaData.LastUpdatedTime desc"
    )
    assert ordered == [2, 3, 1, 11, 10]
    ascending = run("select * from Customer where Active in (true,false) orderby DisplayName")
    assert ascending == [2, 1, 3, 11, 10]
    assert run("select * from Customer order by Id startposition 2 maxresults 2") == [2, 10]
    assert run("select * from Customer startposition 50") == []


def test_projection_uses_comparable_forms() -> None:
    schema = query.schema_for(INVOICE)
    row = project(schema, {"Id": "7", "TotalAmt": 23.28, "CustomerRef": {"value": "58"}})
    values = dict(zip((p.name for p in schema.properties), row, strict=True))
    assert values["Id"] == 7 and values["CustomerRef"] == "58"
    assert values["TotalAmt"] == Decimal("2328")
    assert values["TxnDate"] is None
    assert {p.name for p in query.schema_for(CUSTOMER).properties} == CUSTOMER.filterable
