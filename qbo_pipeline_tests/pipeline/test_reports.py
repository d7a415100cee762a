"""QuickBooks' reports, read month by month into the warehouse, agree with the
transactions the sync wrote: the emulator answers them from its own books, so a profit
and loss that matches the warehouse's lines to the cent says no transaction, line or
amount went missing on the way."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg

from qbo_pipeline.commands.execution import report_realms
from qbo_pipeline_tests.pipeline.test_name_lists import sync_everything

MONTHS = ["2025-03-01", "2025-11-01", "2026-06-01"]

# Every posting to an income or expense account, in the home currency, from the typed
# lines alone: what a general ledger of the warehouse says.
PNL_POSTINGS = """
WITH rated AS (
  SELECT 'invoice' AS kind, realm_id, id, txn_date, COALESCE(exchange_rate, 1) AS rate, -1 AS sign
    FROM qbo.invoices WHERE deleted_at IS NULL
  UNION ALL SELECT 'sales_receipt', realm_id, id, txn_date, COALESCE(exchange_rate, 1), -1
    FROM qbo.sales_receipts WHERE deleted_at IS NULL
  UNION ALL SELECT 'credit_memo', realm_id, id, txn_date, COALESCE(exchange_rate, 1), 1
    FROM qbo.credit_memos WHERE deleted_at IS NULL
  UNION ALL SELECT 'refund_receipt', realm_id, id, txn_date, COALESCE(exchange_rate, 1), 1
    FROM qbo.refund_receipts WHERE deleted_at IS NULL
), sales AS (
  SELECT 'invoice' AS kind, realm_id, invoice_id AS parent, detail_type, item_id,
         discount_account_id, amount FROM qbo.invoice_lines
  UNION ALL SELECT 'sales_receipt', realm_id, sales_receipt_id, detail_type, item_id,
         discount_account_id, amount FROM qbo.sales_receipt_lines
  UNION ALL SELECT 'credit_memo', realm_id, credit_memo_id, detail_type, item_id,
         discount_account_id, amount FROM qbo.credit_memo_lines
  UNION ALL SELECT 'refund_receipt', realm_id, refund_receipt_id, detail_type, item_id,
         discount_account_id, amount FROM qbo.refund_receipt_lines
), spent AS (
  SELECT realm_id, id, txn_date, 1 AS sign, 'bill' AS kind FROM qbo.bills
    WHERE deleted_at IS NULL
  UNION ALL SELECT realm_id, id, txn_date, CASE WHEN credit THEN -1 ELSE 1 END, 'purchase'
    FROM qbo.purchases WHERE deleted_at IS NULL
  UNION ALL SELECT realm_id, id, txn_date, -1, 'vendor_credit' FROM qbo.vendor_credits
    WHERE deleted_at IS NULL
), expense_lines AS (
  SELECT 'bill' AS kind, realm_id, bill_id AS parent, detail_type, account_id, item_id, amount
    FROM qbo.bill_lines
  UNION ALL SELECT 'purchase', realm_id, purchase_id, detail_type, account_id, item_id, amount
    FROM qbo.purchase_lines
  UNION ALL SELECT 'vendor_credit', realm_id, vendor_credit_id, detail_type, account_id,
    item_id, amount FROM qbo.vendor_credit_lines
)
SELECT r.realm_id, r.txn_date,
       CASE WHEN s.detail_type = 'DiscountLineDetail' THEN s.discount_account_id
            ELSE i.income_account_id END AS account_id,
       CASE WHEN s.detail_type = 'DiscountLineDetail' THEN -r.sign ELSE r.sign END
         * ROUND(s.amount * r.rate, 2) AS amount
FROM rated r JOIN sales s ON s.kind = r.kind AND s.realm_id = r.realm_id AND s.parent = r.id
LEFT JOIN qbo.items i ON i.realm_id = s.realm_id AND i.id = s.item_id
WHERE s.detail_type IN ('SalesItemLineDetail', 'DiscountLineDetail')
UNION ALL
SELECT p.realm_id, p.txn_date,
       CASE WHEN l.detail_type = 'AccountBasedExpenseLineDetail' THEN l.account_id
            WHEN i.track_qty_on_hand THEN i.asset_account_id
            ELSE i.expense_account_id END,
       p.sign * l.amount
FROM spent p JOIN expense_lines l ON l.kind = p.kind AND l.realm_id = p.realm_id
 AND l.parent = p.id
LEFT JOIN qbo.items i ON i.realm_id = l.realm_id AND i.id = l.item_id
UNION ALL
SELECT j.realm_id, j.txn_date, l.account_id,
       CASE l.posting_type WHEN 'Debit' THEN l.amount ELSE -l.amount END
FROM qbo.journal_entries j JOIN qbo.journal_entry_lines l
  ON l.realm_id = j.realm_id AND l.journal_entry_id = j.id WHERE j.deleted_at IS NULL
UNION ALL
SELECT d.realm_id, d.txn_date, l.account_id, -l.amount
FROM qbo.deposits d JOIN qbo.deposit_lines l
  ON l.realm_id = d.realm_id AND l.deposit_id = d.id WHERE d.deleted_at IS NULL
"""


def profit_and_loss_from_lines(wh, realm_id: str, start: str, end: str) -> dict[str, Decimal]:
    """Each income and expense account's figure as the P&L shows it: income positive,
    expenses positive, each under its account's Id."""
    rows = wh.query(
        f"SELECT p.account_id, a.classification, sum(p.amount) FROM ({PNL_POSTINGS}) p "
        "JOIN qbo.accounts a ON a.realm_id = p.realm_id AND a.id = p.account_id "
        "WHERE p.realm_id = $1 AND p.txn_date BETWEEN CAST($2 AS DATE) AND CAST($3 AS DATE) "
        "AND a.classification IN ('Revenue', 'Expense') GROUP BY p.account_id, a.classification",
        [realm_id, start, end],
    )
    return {
        account: -total if classification == "Revenue" else total
        for account, classification, total in rows
        if total
    }


def reported(wh, realm_id: str, report: str, month: str) -> list[tuple]:
    return wh.query(
        "SELECT section_path, row_type, account_id, label, amount FROM qbo.report_lines "
        "WHERE realm_id = $1 AND report = $2 AND period_start = CAST($3 AS DATE) "
        "ORDER BY row_index, column_index",
        [realm_id, report, month],
    )


def summary(lines: list[tuple], section: str) -> Decimal:
    [amount] = [a for path, kind, _, _, a in lines if path == section and kind == "Summary"]
    return amount


def period_end(wh, realm_id: str, month: str) -> str:
    [(end,)] = wh.query(
        "SELECT DISTINCT period_end FROM qbo.reports WHERE realm_id = $1 "
        "AND period_start = CAST($2 AS DATE)",
        [realm_id, month],
    )
    return end.isoformat()


def test_the_reports_agree_with_the_transactions_in_the_warehouse(connect, warehouse_url):
    company = connect(warehouse_url=warehouse_url, customers=80, invoices=400)
    sync_everything(company)
    with dg.instance_for_test() as instance:
        runs = report_realms([company.realm_id], MONTHS, instance=instance)
        assert [run.error for run in runs] == [None] * len(MONTHS)
        [again] = report_realms([company.realm_id], MONTHS[:1], instance=instance)
        assert again.success, again.error

    realm = company.realm_id
    with company.runtime.warehouse() as wh:
        for month in MONTHS:
            end = period_end(wh, realm, month)
            pnl = reported(wh, realm, "profit_and_loss", month)
            by_account = {account: amount for _, kind, account, _, amount in pnl if kind == "Data"}
            expected = profit_and_loss_from_lines(wh, realm, month, end)
            assert by_account == expected, month
            assert len(expected) >= 5, month
            # The totals are the sums of their accounts, and net income follows from them.
            sections = {path: [] for path, *_ in pnl}
            for path, kind, _, _, amount in pnl:
                if kind == "Data":
                    sections[path].append(amount)
            for path in ("Income", "Expenses", "OtherExpenses"):
                if sections.get(path):
                    assert summary(pnl, path) == sum(sections[path]), (month, path)
            other = summary(pnl, "OtherExpenses") if sections.get("OtherExpenses") else 0
            net = summary(pnl, "Income") - summary(pnl, "Expenses") - other
            assert summary(pnl, "NetIncome") == net, month

            sheet = reported(wh, realm, "balance_sheet", month)
            assert summary(sheet, "TotalAssets") == summary(sheet, "TotalLiabilitiesAndEquity")
            [receivable] = [a for _, k, account, _, a in sheet if k == "Data" and account == "84"]

            aging = reported(wh, realm, "aged_receivables", month)
            total = [a for path, _, _, label, a in aging if path == "GrandTotal"][-1]
            assert total == open_receivables(wh, realm, end), month
            # The ledger converts each line of a foreign invoice and each payment to the
            # home currency on its own, the aging each open balance: a cent or two apart
            # per foreign document, never more.
            [(foreign,)] = wh.query(
                "SELECT count(*) FROM qbo.invoices WHERE realm_id = $1 AND exchange_rate "
                "IS NOT NULL AND txn_date <= CAST($2 AS DATE)",
                [realm, end],
            )
            assert abs(receivable - total) <= Decimal("0.02") * foreign, month
        [(stored,)] = wh.query("SELECT count(*) FROM qbo.reports WHERE realm_id = $1", [realm])
    assert stored == 3 * len(MONTHS)  # the month read twice replaced its rows


def open_receivables(wh, realm_id: str, as_of: str) -> Decimal:
    """What customers owed at the end of `as_of`, in the home currency: invoices less the
    payments dated by then (linked_transactions), less unapplied credit memos."""
    [(owed,)] = wh.query(
        "WITH paid AS (SELECT lt.realm_id, lt.linked_id AS invoice_id, sum(pl.amount) AS amount "
        "  FROM qbo.linked_transactions lt JOIN qbo.payments p ON p.realm_id = lt.realm_id "
        "  AND p.id = lt.parent_id JOIN qbo.payment_lines pl ON pl.realm_id = lt.realm_id "
        "  AND pl.payment_id = lt.parent_id AND pl.line_index = lt.line_index "
        "  WHERE lt.parent_type = 'Payment' AND lt.linked_type = 'Invoice' "
        "  AND p.txn_date <= CAST($2 AS DATE) GROUP BY lt.realm_id, lt.linked_id) "
        "SELECT sum(open) FROM ("
        "  SELECT ROUND((i.total_amt - COALESCE(paid.amount, 0)) * COALESCE(i.exchange_rate, 1), 2)"
        "    AS open FROM qbo.invoices i LEFT JOIN paid ON paid.realm_id = i.realm_id "
        "    AND paid.invoice_id = i.id WHERE i.realm_id = $1 AND i.deleted_at IS NULL "
        "    AND i.txn_date <= CAST($2 AS DATE) "
        "  UNION ALL SELECT -ROUND(remaining_credit * COALESCE(exchange_rate, 1), 2) "
        "    FROM qbo.credit_memos WHERE realm_id = $1 AND deleted_at IS NULL "
        "    AND txn_date <= CAST($2 AS DATE)) AS o",
        [realm_id, as_of],
    )
    return owed
