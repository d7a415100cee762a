"""The dbt models (analytics/) built by Dagster over a synced company agree with what
QuickBooks itself reports: the profit and loss and balance sheet of each month to the
cent, and what each customer owes today, by days past due. dbt's own tests (keys,
relationships, every transaction balanced) are the models' asset checks, and pass."""

from __future__ import annotations

import re
import secrets
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from qbo_pipeline.commands.execution import build_analytics, report_realms, sync_realms
from qbo_pipeline.defs.analytics import GROUP, KEY_PREFIX
from qbo_pipeline.quickbooks.reports import flatten
from qbo_pipeline.warehouse.dbt_sources import ANALYTICS
from qbo_pipeline_tests.pipeline.secret_scan import assert_no_secret, company_secrets
from qbo_pipeline_tests.pipeline.test_name_lists import sync_everything
from qbo_pipeline_tests.pipeline.test_reports import MONTHS

ROOT = Path(__file__).resolve().parents[2]
AGING = ("Current", "1 - 30", "31 - 60", "61 - 90", "91 and over")


def _report_rows(wh, realm: str, report: str, month: str) -> dict[str, Decimal]:
    rows = wh.query(
        "SELECT label, amount FROM qbo.report_lines WHERE realm_id = $1 AND report = $2 "
        "AND period_start = CAST($3 AS DATE) AND row_type = 'Data'",
        [realm, report, month],
    )
    return dict(rows)


def _mart(wh, sql: str, realm: str, month: str) -> dict[str, Decimal]:
    return dict(wh.query(sql, [realm, month]))


def report_today(company, name: str, date_parameter: str) -> list:
    """QuickBooks' report `name` as of today (UTC, as the marts' current_date), flattened."""
    today = datetime.now(UTC).date().isoformat()
    response = company.api("GET", f"reports/{name}?{date_parameter}={today}")
    response.raise_for_status()
    return flatten(response.json())


def aging_today(company) -> dict[str, list[Decimal]]:
    """QuickBooks' AgedReceivables as of today: each customer's amount per bucket."""
    lines = report_today(company, "AgedReceivables", "report_date")
    owed: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(AGING))
    for line in lines:
        if line.row_type == "Data" and line.column_title in AGING:
            owed[line.label][AGING.index(line.column_title)] = line.amount
    return dict(owed)


def with_password(url: str) -> tuple[str, dict[str, str]]:
    """A PostgreSQL URL that carries a password (the test server trusts loopback, so it
    only has to be given): what dbt's profile must never show."""
    if not url.startswith("postgresql://"):
        return url, {}
    password = "pw-" + secrets.token_hex(12)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"ALTER ROLE CURRENT_USER PASSWORD '{password}'")
    user, _, rest = url[len("postgresql://") :].partition("@")
    return f"postgresql://{user}:{password}@{rest}", {"warehouse password": password}


def dbt_logs(since: float) -> dict[str, bytes]:
    return {
        str(path): path.read_bytes()
        for path in (ANALYTICS / "target").rglob("*")
        if path.is_file() and path.stat().st_mtime >= since
    }


@pytest.mark.slow
def test_the_dbt_marts_agree_with_quickbooks_reports(connect, warehouse_url, capfd):
    url, password = with_password(warehouse_url)
    company = connect(warehouse_url=url, customers=60, invoices=300)
    sync_everything(company)
    realm = company.realm_id
    started = time.time()
    with dg.instance_for_test() as instance:
        assert all(run.success for run in report_realms([realm], MONTHS, instance=instance))
        result = build_analytics(instance=instance)
        events = {"event log": "\n".join(map(str, instance.all_logs(result.run_id)))}
    assert result.success
    output = capfd.readouterr()
    texts = {"stdout": output.out, "stderr": output.err, **events, **dbt_logs(started)}
    assert_no_secret(texts, {**company_secrets(company), **password})
    built = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey([KEY_PREFIX, "general_ledger"]) in built
    assert len(built) >= 50  # a staging model per table, and the marts
    checks = result.get_asset_check_evaluations()
    assert checks and [c.check_name for c in checks if not c.passed] == []
    assert any(c.check_name.startswith("balanced") for c in checks)

    with company.runtime.warehouse() as wh:
        for month in MONTHS:
            reported = _report_rows(wh, realm, "profit_and_loss", month)
            modelled = _mart(
                wh,
                "SELECT account_name, amount FROM analytics.profit_and_loss_by_month "
                "WHERE realm_id = $1 AND month = CAST($2 AS DATE)",
                realm,
                month,
            )
            assert modelled == reported, month
            assert len(modelled) >= 5, month

            reported = _report_rows(wh, realm, "balance_sheet", month)
            modelled = _mart(
                wh,
                "SELECT line, balance FROM analytics.balance_sheet_by_month "
                "WHERE realm_id = $1 AND month = CAST($2 AS DATE)",
                realm,
                month,
            )
            assert modelled == reported, month

        # What each vendor is owed, in the home currency, is its balance in QuickBooks.
        owed = wh.query(
            "SELECT a.vendor_id, sum(a.open_amount) FROM analytics.ap_aging a "
            "JOIN analytics.stg_qbo__vendors v ON v.realm_id = a.realm_id "
            "AND v.vendor_id = a.vendor_id JOIN analytics.stg_qbo__preferences p "
            "ON p.realm_id = a.realm_id AND v.currency = p.home_currency "
            "WHERE a.realm_id = $1 GROUP BY 1",
            [realm],
        )
        balances = {v["Id"]: Decimal(str(v["Balance"])) for v in company.entities("Vendor")}
        assert len(owed) >= 3
        assert all(amount == balances[vendor] for vendor, amount in owed)
        rows = wh.query(
            "SELECT customer_name, aging_bucket, sum(open_amount) FROM analytics.ar_aging "
            "WHERE realm_id = $1 GROUP BY 1, 2",
            [realm],
        )
    modelled_aging: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(AGING))
    for customer, bucket, amount in rows:
        modelled_aging[customer][AGING.index(bucket)] = amount
    reported_aging = aging_today(company)
    total = reported_aging.pop("TOTAL")
    assert {c: a for c, a in modelled_aging.items() if any(a)} == reported_aging
    assert [sum(column) for column in zip(*modelled_aging.values(), strict=True)] == total

    check_the_analyst_queries(company, reported_aging)


def analyst_queries() -> dict[str, str]:
    """The SQL of docs/analysts.md, by its heading: the tests run what the guide says."""
    text = (ROOT / "docs" / "analysts.md").read_text()
    found = re.findall(r"^### (.+?)\n.*?```sql\n(.*?)```", text, flags=re.S | re.M)
    return dict(found)


def run(company, sql: str) -> list[tuple]:
    with company.runtime.warehouse() as wh:
        return [row[1:] for row in wh.query(sql) if row[0] == company.realm_id]


def check_the_analyst_queries(company, reported_aging: dict[str, list[Decimal]]) -> None:
    queries = analyst_queries()
    assert set(queries) == {
        "Revenue by customer by month",
        "Open receivables by age",
        "Unpaid bills by vendor",
        "Trial balance",
    }
    realm = company.realm_id

    # Each month's revenue, customer by customer, adds up to the P&L's income.
    revenue = defaultdict(Decimal)
    for month, _, amount in run(company, queries["Revenue by customer by month"]):
        revenue[month.isoformat()] += amount
    with company.runtime.warehouse() as wh:
        for month in MONTHS:
            income = wh.query(
                "SELECT sum(amount) FROM qbo.report_lines WHERE realm_id = $1 "
                "AND report = 'profit_and_loss' AND period_start = CAST($2 AS DATE) "
                "AND row_type = 'Summary' AND section_path IN ('Income', 'OtherIncome')",
                [realm, month],
            )[0][0]
            assert revenue[month] == income > 0, month

    # The aging, customer by customer, is QuickBooks' A/R Aging Summary today.
    aging = run(company, queries["Open receivables by age"])
    assert {row[0]: list(row[1:6]) for row in aging} == reported_aging
    assert all(row[-1] == sum(row[1:-1]) for row in aging)

    # Unpaid bills less open credits are each vendor's balance in QuickBooks.
    unpaid = defaultdict(Decimal)
    for vendor, _, bills, amount, _ in run(company, queries["Unpaid bills by vendor"]):
        assert bills > 0
        unpaid[vendor] += amount
    assert unpaid
    for vendor in company.entities("Vendor"):
        name = vendor["DisplayName"]
        credits = sum(
            Decimal(str(credit.get("Balance", 0)))
            for credit in company.entities("VendorCredit")
            if credit["VendorRef"]["value"] == vendor["Id"]
        )
        assert unpaid.get(name, Decimal(0)) - credits == Decimal(str(vendor["Balance"])), name

    # The trial balance balances, and its assets and liabilities are the balance sheet's.
    trial = run(company, queries["Trial balance"])
    assert sum(row[3] for row in trial) == sum(row[4] for row in trial) > 0
    balances = {account: debit - credit for account, _, _, debit, credit in trial}
    sheet = [
        line
        for line in report_today(company, "BalanceSheet", "end_date")
        if line.row_type == "Data"
        and line.account_id
        and line.section_path.split("/")[-1] not in ("Equity",)
    ]
    assert len(sheet) >= 5
    for line in sheet:
        sign = 1 if line.section_path.startswith("TotalAssets") else -1
        assert sign * balances.get(line.account_id, Decimal(0)) == line.amount, line.label


@pytest.mark.slow
def test_a_sync_makes_the_models_due_and_a_build_settles_them(connect):
    company = connect(customers=15, invoices=20)
    from qbo_pipeline.definitions import defs

    models = dg.AssetSelection.groups(GROUP)
    graph = defs.resolve_asset_graph()
    keys = models.resolve(graph)

    def due(instance, cursor) -> tuple[set, object]:
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=models, cursor=cursor
        )
        return {r.key for r in result.results if r.true_subset.size}, result.cursor

    def synced_by(instance, run_id: str) -> set:
        """The models downstream of the tables a run materialised."""
        tables = {
            event.dagster_event.asset_key
            for event in instance.all_logs(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            )
        }
        return (dg.AssetSelection.assets(*tables).downstream() & models).resolve(graph)

    with dg.instance_for_test() as instance:
        # Never built: every model is due at the first evaluation, all in one run.
        requested, cursor = due(instance, None)
        assert requested == keys and len(keys) >= 50
        assert build_analytics(instance=instance).success
        requested, cursor = due(instance, cursor)
        assert requested == set()

        [run] = sync_realms([company.realm_id], instance=instance, count_check=False)
        assert run.success, run.error
        requested, cursor = due(instance, cursor)
        # every model that reads a synced table; the views' staging models read views,
        # which are always current once built
        assert requested == synced_by(instance, run.run_id)
        assert dg.AssetKey([KEY_PREFIX, "general_ledger"]) in requested
        assert dg.AssetKey([KEY_PREFIX, "stg_qbo__linked_transactions"]) not in requested

        assert build_analytics(instance=instance).success
        requested, cursor = due(instance, cursor)
        assert requested == set()

        # An hourly run skips the tables read once a day: only what reads the rest is due.
        [run] = sync_realms([company.realm_id], instance=instance, count_check=False)
        requested, cursor = due(instance, cursor)
        assert requested == synced_by(instance, run.run_id)
        assert dg.AssetKey([KEY_PREFIX, "general_ledger"]) in requested
        assert dg.AssetKey([KEY_PREFIX, "stg_qbo__time_activities"]) not in requested
