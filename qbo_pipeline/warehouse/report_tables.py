"""qbo.reports and qbo.report_lines: each report period as QBO answered it, and flattened.

A report period is replaced whole: its rows are deleted and written again in one
transaction, so a month read again (its books changed) never mixes two answers.
"""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog import ColumnType
from qbo_pipeline.warehouse.schema import REALM_ID, Table, TableColumn
from qbo_pipeline.warehouse.sql import JSON

_PERIOD = (
    REALM_ID,
    TableColumn("report", ColumnType.TEXT, "profit_and_loss, balance_sheet or aged_receivables"),
    TableColumn("period_start", ColumnType.DATE, "The first day of the period the report covers"),
    TableColumn(
        "period_end",
        ColumnType.DATE,
        "The period's last day: the date a balance sheet or aging is as of",
    ),
)
REPORTS_TABLE = Table(
    "reports",
    (
        *_PERIOD,
        TableColumn("fetched_at", ColumnType.TIMESTAMP, "When the report was read from QuickBooks"),
        TableColumn("raw", JSON, "The report exactly as QuickBooks returned it"),
    ),
    ("realm_id", "report", "period_start"),
    (),
    "Every report period read from QuickBooks, as it answered",
)
REPORT_LINES_TABLE = Table(
    "report_lines",
    (
        *_PERIOD,
        TableColumn("row_index", ColumnType.INTEGER, "The row's place in the report, from 0"),
        TableColumn("column_index", ColumnType.INTEGER, "The amount column, from 1"),
        TableColumn(
            "section_path",
            ColumnType.TEXT,
            "The sections the row sits in, by QuickBooks' group names, such as Income",
        ),
        TableColumn(
            "row_type", ColumnType.TEXT, "Data (an account or customer), Summary or Header"
        ),
        TableColumn(
            "account_id",
            ColumnType.TEXT,
            "The Id QuickBooks gives the row: an account (accounts.id) or a customer",
        ),
        TableColumn("label", ColumnType.TEXT, "The row's first cell, such as an account's name"),
        TableColumn("column_title", ColumnType.TEXT, "The column's title, such as Total or 1 - 30"),
        TableColumn("amount", ColumnType.DECIMAL, "The cell's amount, in the home currency"),
    ),
    ("realm_id", "report", "period_start", "row_index", "column_index"),
    (),
    "Every amount of every report period, one row per report line and column",
)
REPORT_TABLES = (REPORTS_TABLE, REPORT_LINES_TABLE)


def delete_period(table: Table) -> str:
    return (
        f"DELETE FROM {table.qualified} WHERE realm_id = $1 AND report = $2 AND period_start = $3"
    )


def insert(table: Table) -> str:
    names = ", ".join(column.name for column in table.columns)
    marks = ", ".join(f"${n}" for n in range(1, len(table.columns) + 1))
    return f"INSERT INTO {table.qualified} ({names}) VALUES ({marks})"
