"""QBO's Reports API: which reports the pipeline reads, the parameters of one period, and
a report's nested rows flattened into one row per line and column.

A report answers for a period: ProfitAndLoss sums it, BalanceSheet and AgedReceivables
state the books at its end. Intuit cuts a request off at 120 seconds, so a long range is
read one month at a time (`month_of`): each month is small enough to answer in time,
and each is stored on its own, so a month that changes is read again alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class Report:
    name: str  # QBO's, as in /reports/{name}
    table_name: str  # the asset's name and the `report` value of its rows
    description: str

    def params(self, start: date, end: date) -> dict[str, str]:
        """The query parameters of one period, on the accrual basis, one Total column."""
        if self.name == "AgedReceivables":
            return {"report_date": end.isoformat()}
        return {
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "accounting_method": "Accrual",
            "summarize_column_by": "Total",
        }


PROFIT_AND_LOSS = Report(
    "ProfitAndLoss",
    "profit_and_loss",
    "QuickBooks' Profit and Loss for each month: income, costs and expenses by account",
)
BALANCE_SHEET = Report(
    "BalanceSheet",
    "balance_sheet",
    "QuickBooks' Balance Sheet at each month's end: assets, liabilities and equity",
)
AGED_RECEIVABLES = Report(
    "AgedReceivables",
    "aged_receivables",
    "QuickBooks' A/R Aging Summary at each month's end: what each customer owes, by age",
)
REPORTS = (PROFIT_AND_LOSS, BALANCE_SHEET, AGED_RECEIVABLES)


@dataclass(frozen=True)
class ReportLine:
    """One cell of a report: a row's label and one of its columns."""

    row_index: int  # the row's place in the report, depth first
    column_index: int  # 1 for the first amount column
    section_path: str  # the sections above the row, by their group, joined by "/"
    row_type: str  # Data, Summary or Header
    account_id: str | None  # the id QBO gives the row's first cell: an account, a customer
    label: str
    column_title: str
    amount: Decimal


def month_of(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def months_ending(day: date, count: int) -> list[str]:
    """The first days of the `count` months up to `day`'s, oldest first, in ISO form:
    the month partitions that end with it."""
    firsts = [day.replace(day=1)]
    while len(firsts) < count:
        firsts.insert(0, (firsts[0] - timedelta(days=1)).replace(day=1))
    return [first.isoformat() for first in firsts]


def _amount(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "")) if text.strip() else None
    except InvalidOperation:
        return None


def flatten(document: dict[str, Any]) -> list[ReportLine]:
    """Every Data, Summary and Header row with an amount, one line per amount column.

    Sections nest (the balance sheet's Liabilities inside Liabilities and Equity); each
    line keeps its path of section groups so a total is never mistaken for a leaf."""
    columns = (document.get("Columns") or {}).get("Column") or []
    titles = [str(column.get("ColTitle", "")) for column in columns]
    found: list[ReportLine] = []
    rows_seen = [0]

    def add(cells: list[dict[str, Any]], path: list[str], row_type: str) -> None:
        if not cells:
            return
        first = cells[0]
        index = rows_seen[0]
        rows_seen[0] += 1
        for column, cell in enumerate(cells[1:], 1):
            value = str(cell.get("value", ""))
            amount = _amount(value)
            if amount is None:
                continue
            title = titles[column] if column < len(titles) else ""
            found.append(
                ReportLine(
                    row_index=index,
                    column_index=column,
                    section_path="/".join(path),
                    row_type=row_type,
                    account_id=str(first["id"]) if first.get("id") is not None else None,
                    label=str(first.get("value", "")),
                    column_title=title,
                    amount=amount,
                )
            )

    def walk(rows: list[dict[str, Any]], path: list[str]) -> None:
        for row in rows:
            group = row.get("group")
            inner = [*path, group] if group else path
            if row.get("type") == "Section" or "Rows" in row or "Summary" in row:
                add((row.get("Header") or {}).get("ColData") or [], inner, "Header")
                walk((row.get("Rows") or {}).get("Row") or [], inner)
                add((row.get("Summary") or {}).get("ColData") or [], inner, "Summary")
            else:
                add(row.get("ColData") or [], inner, "Data")

    walk((document.get("Rows") or {}).get("Row") or [], [])
    return found
