"""ProfitAndLoss, BalanceSheet and AgedReceivables, answered from the emulated company's
own transactions in the shape QBO's Reports API returns: a Header, the Columns, and Rows
nested in Sections whose Data rows name an account (or customer) and an amount.

The profit and loss and the balance sheet add up the general ledger (ledger.py) in the
home currency, accrual basis. The balance sheet closes prior fiscal years' net income
into Retained Earnings and shows this year's as Net Income, so its assets equal its
liabilities and equity to the cent. Aged receivables age what each customer owed on the
report date: invoices less the payments dated by then, by days past due, less
unapplied credit memos.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from qbo_pipeline.emulator.amounts import ZERO, cents, to_decimal
from qbo_pipeline.emulator.ledger import (
    POSTING_ENTITIES,
    UNCATEGORIZED_EXPENSE,
    UNCATEGORIZED_INCOME,
    Ledger,
)

REPORTS = ("ProfitAndLoss", "BalanceSheet", "AgedReceivables")
# (P&L group, its header, the AccountTypes in it, whether credits count as positive)
PNL_SECTIONS = (
    ("Income", "Income", ("Income",), True),
    ("COGS", "Cost of Goods Sold", ("Cost of Goods Sold",), False),
    ("Expenses", "Expenses", ("Expense",), False),
    ("OtherIncome", "Other Income", ("Other Income",), True),
    ("OtherExpenses", "Other Expenses", ("Other Expense",), False),
)
AGING = ("Current", "1 - 30", "31 - 60", "61 - 90", "91 and over")
_PSEUDO = {
    UNCATEGORIZED_INCOME: {"Name": "Uncategorized Income", "AccountType": "Income"},
    UNCATEGORIZED_EXPENSE: {"Name": "Uncategorized Expense", "AccountType": "Expense"},
}


class ReportError(ValueError):
    """A report request the emulator cannot answer, named in one line."""


@dataclass(frozen=True)
class Books:
    """Every posting of the company, as (account, cents, date ordinal), and its accounts."""

    postings: list[tuple[str, int, int]]
    accounts: dict[str, dict[str, Any]]


def books(company: Any) -> Books:
    """The company's postings, recomputed only after one of the tables they read changed."""
    names = (*POSTING_ENTITIES, "Item", "Account")
    key = tuple(company.tables[name].version for name in names)
    cached = company.report_cache.get("books")
    if cached is not None and cached[0] == key:
        return cached[1]
    ledger = Ledger(company.get)
    postings = [
        (posting.account, int(posting.amount * 100), posting.txn_date.toordinal())
        for entity in POSTING_ENTITIES
        for body in company.tables[entity].all()
        for posting in ledger.postings(entity, body)
    ]
    accounts = {row["Id"]: row for row in company.tables["Account"].all()}
    found = Books(postings, {**_PSEUDO, **accounts})
    company.report_cache["books"] = (key, found)
    return found


def _money(amount: Decimal) -> str:
    return f"{cents(amount):.2f}"


def _balances(entries: Iterable[tuple[str, int, int]], first: int, last: int) -> dict[str, Decimal]:
    totals: dict[str, int] = defaultdict(int)
    for account, amount, day in entries:
        if first <= day <= last:
            totals[account] += amount
    return {account: Decimal(total) / 100 for account, total in totals.items() if total}


def _data(label: str, amount: Decimal, row_id: str | None = None) -> dict[str, Any]:
    first: dict[str, Any] = {"value": label}
    if row_id is not None:
        first["id"] = row_id
    return {"ColData": [first, {"value": _money(amount)}], "type": "Data"}


def _section(
    group: str, header: str | None, rows: list[dict], summary: str, total: Decimal
) -> dict[str, Any]:
    section: dict[str, Any] = {}
    if header is not None:
        section["Header"] = {"ColData": [{"value": header}, {"value": ""}]}
    if rows:
        section["Rows"] = {"Row": rows}
    section["Summary"] = {"ColData": [{"value": summary}, {"value": _money(total)}]}
    return section | {"type": "Section", "group": group}


def _header(company: Any, name: str, start: date, end: date, empty: bool, now: str) -> dict:
    currency = "USD"
    for preferences in company.tables["Preferences"].all():
        home = (preferences.get("CurrencyPrefs") or {}).get("HomeCurrency") or {}
        currency = home.get("value", currency)
    return {
        "Time": now,
        "ReportName": name,
        "ReportBasis": "Accrual",
        "StartPeriod": start.isoformat(),
        "EndPeriod": end.isoformat(),
        "SummarizeColumnsBy": "Total",
        "Currency": currency,
        "Option": [
            {"Name": "AccountingStandard", "Value": "GAAP"},
            {"Name": "NoReportData", "Value": "true" if empty else "false"},
        ],
    }


def _columns(first: str) -> dict[str, Any]:
    return {
        "Column": [
            {
                "ColTitle": "",
                "ColType": first,
                "MetaData": [{"Name": "ColKey", "Value": "account"}],
            },
            {
                "ColTitle": "Total",
                "ColType": "Money",
                "MetaData": [{"Name": "ColKey", "Value": "total"}],
            },
        ]
    }


def _account_rows(
    balances: dict[str, Decimal], accounts: dict[str, dict], kinds: Iterable[str], sign: int
) -> tuple[list[dict], Decimal]:
    rows, total = [], ZERO
    chosen = [a for a in balances if accounts.get(a, {}).get("AccountType") in set(kinds)]
    for account in sorted(chosen, key=lambda a: accounts[a].get("Name", "")):
        amount = balances[account] * sign
        rows.append(_data(accounts[account].get("Name", account), amount, account))
        total += amount
    return rows, total


def profit_and_loss(company: Any, start: date, end: date, now: str) -> dict[str, Any]:
    ledger = books(company)
    balances = _balances(ledger.postings, start.toordinal(), end.toordinal())
    totals: dict[str, Decimal] = {}
    rows: list[dict] = []
    for group, header, kinds, credit in PNL_SECTIONS:
        lines, total = _account_rows(balances, ledger.accounts, kinds, -1 if credit else 1)
        totals[group] = total
        if lines or group in ("Income", "Expenses"):
            rows.append(_section(group, header, lines, f"Total {header}", total))
        if group == "COGS":
            gross = totals["Income"] - totals["COGS"]
            rows.append(_section("GrossProfit", None, [], "Gross Profit", gross))
        if group == "Expenses":
            operating = totals["Income"] - totals["COGS"] - totals["Expenses"]
            rows.append(_section("NetOperatingIncome", None, [], "Net Operating Income", operating))
    other = totals["OtherIncome"] - totals["OtherExpenses"]
    if other or totals["OtherIncome"] or totals["OtherExpenses"]:
        rows.append(_section("NetOtherIncome", None, [], "Net Other Income", other))
    net = totals["Income"] - totals["COGS"] - totals["Expenses"] + other
    rows.append(_section("NetIncome", None, [], "Net Income", net))
    return {
        "Header": _header(company, "ProfitAndLoss", start, end, not balances, now),
        "Columns": _columns("Account"),
        "Rows": {"Row": rows},
    }


_PNL_TYPES = frozenset(kind for _, _, types, _ in PNL_SECTIONS for kind in types)


def _net_income(balances: dict[str, Decimal], accounts: dict[str, dict[str, Any]]) -> Decimal:
    """The P&L's bottom line of some balances (credits to income less debits to expenses)."""
    return -sum(
        (
            amount
            for account, amount in balances.items()
            if accounts.get(account, {}).get("AccountType") in _PNL_TYPES
        ),
        ZERO,
    )


def balance_sheet(company: Any, start: date, end: date, now: str) -> dict[str, Any]:
    ledger = books(company)
    year_start = _fiscal_year_start(company, end).toordinal()
    # One pass for the years before this fiscal year, one for this year: their net
    # incomes are Retained Earnings and Net Income, their sum every account's balance.
    earlier = _balances(ledger.postings, 0, year_start - 1)
    this_year = _balances(ledger.postings, year_start, end.toordinal())
    balances = {
        account: total
        for account in earlier.keys() | this_year.keys()
        if (total := earlier.get(account, ZERO) + this_year.get(account, ZERO))
    }
    before = _net_income(earlier, ledger.accounts)
    net = _net_income(this_year, ledger.accounts)
    assets, total_assets = _by_classification(ledger, balances, "Asset", 1)
    liabilities, total_liabilities = _by_classification(ledger, balances, "Liability", -1)
    equity, total_equity = _by_classification(ledger, balances, "Equity", -1)
    equity = _with_retained_earnings(equity, before, ledger)
    equity.append(_data("Net Income", net))
    total_equity += before + net
    liabilities_section = _section(
        "Liabilities", "Liabilities", liabilities, "Total Liabilities", total_liabilities
    )
    equity_section = _section("Equity", "Equity", equity, "Total Equity", total_equity)
    rows = [
        _section("TotalAssets", "ASSETS", assets, "TOTAL ASSETS", total_assets),
        _section(
            "TotalLiabilitiesAndEquity",
            "LIABILITIES AND EQUITY",
            [liabilities_section, equity_section],
            "TOTAL LIABILITIES AND EQUITY",
            total_liabilities + total_equity,
        ),
    ]
    return {
        "Header": _header(company, "BalanceSheet", start, end, not balances, now),
        "Columns": _columns("Account"),
        "Rows": {"Row": rows},
    }


def _by_classification(
    ledger: Books, balances: dict[str, Decimal], classification: str, sign: int
) -> tuple[list[dict], Decimal]:
    kinds = {
        account.get("AccountType")
        for account in ledger.accounts.values()
        if account.get("Classification") == classification
    }
    return _account_rows(balances, ledger.accounts, kinds, sign)


def _with_retained_earnings(rows: list[dict], prior: Decimal, ledger: Books) -> list[dict]:
    """Prior years' net income, closed into Retained Earnings (a row of its own if the
    account has no postings)."""
    if not prior:
        return rows
    for row in rows:
        first, amount = row["ColData"]
        if ledger.accounts.get(first.get("id", ""), {}).get("AccountSubType") == "RetainedEarnings":
            amount["value"] = _money(to_decimal(amount["value"]) + prior)
            return rows
    retained = next(
        (
            a
            for a, body in ledger.accounts.items()
            if body.get("AccountSubType") == "RetainedEarnings"
        ),
        None,
    )
    return [*rows, _data("Retained Earnings", prior, retained)]


def _fiscal_year_start(company: Any, day: date) -> date:
    month = 1
    for info in company.tables["CompanyInfo"].all():
        name = info.get("FiscalYearStartMonth")
        if isinstance(name, str) and name[:3].title() in _MONTHS:
            month = _MONTHS.index(name[:3].title()) + 1
    year = day.year if day.month >= month else day.year - 1
    return date(year, month, 1)


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def aged_receivables(company: Any, report_date: date, now: str) -> dict[str, Any]:
    """What each customer owed on `report_date`, by days past due, in the home currency."""
    paid: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for payment in company.tables["Payment"].all():
        if date.fromisoformat(payment["TxnDate"][:10]) > report_date:
            continue
        for line in payment.get("Line") or []:
            for link in line.get("LinkedTxn") or []:
                if link.get("TxnType") == "Invoice":
                    paid[str(link["TxnId"])] += to_decimal(line.get("Amount"))
    owed: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(AGING))
    names: dict[str, str] = {}
    for entity, sign in (("Invoice", 1), ("CreditMemo", -1)):
        for txn in company.tables[entity].all():
            txn_date = date.fromisoformat(txn["TxnDate"][:10])
            if txn_date > report_date:
                continue
            if sign > 0:
                open_amount = to_decimal(txn.get("TotalAmt")) - paid[txn["Id"]]
            else:
                open_amount = -to_decimal(txn.get("RemainingCredit"))
            if not open_amount:
                continue
            rate = to_decimal(txn.get("ExchangeRate")) or Decimal(1)
            due = date.fromisoformat(str(txn.get("DueDate") or txn["TxnDate"])[:10])
            customer = txn["CustomerRef"]["value"]
            names[customer] = txn["CustomerRef"].get("name", customer)
            owed[customer][_bucket((report_date - due).days)] += cents(open_amount * rate)
    rows = []
    totals = [ZERO] * len(AGING)
    for customer in sorted(owed, key=lambda c: names[c]):
        amounts = owed[customer]
        if not any(amounts):
            continue
        totals = [t + a for t, a in zip(totals, amounts, strict=True)]
        rows.append(_aging_row([{"value": names[customer], "id": customer}], amounts, "Data"))
    rows.append(_aging_row([{"value": "TOTAL"}], totals, None) | {"group": "GrandTotal"})
    columns = [{"ColTitle": "", "ColType": "Customer"}] + [
        {"ColTitle": title, "ColType": "Money"} for title in (*AGING, "Total")
    ]
    header = _header(company, "AgedReceivables", report_date, report_date, len(rows) == 1, now)
    return {"Header": header, "Columns": {"Column": columns}, "Rows": {"Row": rows}}


def _bucket(days_past_due: int) -> int:
    if days_past_due <= 0:
        return 0
    return min(1 + (days_past_due - 1) // 30, len(AGING) - 1)


def _aging_row(first: list[dict], amounts: list[Decimal], kind: str | None) -> dict[str, Any]:
    values = [{"value": _money(a)} for a in (*amounts, sum(amounts, ZERO))]
    row: dict[str, Any] = {"ColData": first + values}
    if kind:
        row["type"] = kind
    return row


def report(company: Any, name: str, params: dict[str, str], today: date, now: str) -> dict:
    """The named report for the query parameters QBO takes; ReportError names what is
    wrong with them."""
    if name not in REPORTS:
        raise ReportError(
            f"Report {name} is not one the emulator answers; it has {', '.join(REPORTS)}"
        )
    method = params.get("accounting_method", "Accrual")
    if method != "Accrual":
        raise ReportError(f"accounting_method {method}: the emulator keeps accrual books only")
    summarize = params.get("summarize_column_by", "Total")
    if summarize != "Total":
        raise ReportError(f"summarize_column_by {summarize}: the emulator sums one Total column")
    if name == "AgedReceivables":
        return aged_receivables(company, _date(params, "report_date", today), now)
    end = _date(params, "end_date", today)
    start = _date(params, "start_date", date(end.year, 1, 1))
    if start > end:
        raise ReportError(f"start_date {start} is after end_date {end}")
    build = profit_and_loss if name == "ProfitAndLoss" else balance_sheet
    return build(company, start, end, now)


def _date(params: dict[str, str], key: str, default: date) -> date:
    text = params.get(key)
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{key} {text!r} is not a date (YYYY-MM-DD)") from None
