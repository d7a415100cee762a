"""The general ledger of an emulated company: every transaction as debits and credits
against its accounts, in the home currency, which is what the reports add up.

The rules are QuickBooks' own for accrual books: an invoice debits Accounts Receivable
and credits each sold item's income account (a discount debits its discount account,
the tax credits Sales Tax Payable); a payment moves money from receivable to the bank; a
bill credits Accounts Payable and debits each line's account (an inventory item's asset
account, another item's expense account); and so on for every entity that posts.
Estimates, purchase orders, time and budgets post nothing.

Foreign amounts are converted line by line (amount x ExchangeRate, to the cent) and the
transaction's own account (receivable, bank, payable) takes the balancing amount, so
every transaction's debits equal its credits to the cent in the home currency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from qbo_pipeline.emulator.amounts import ZERO, cents, to_decimal

# Accounts QuickBooks falls back on when a transaction names none.
AR, AP, UNDEPOSITED, SALES_TAX = "84", "33", "4", "89"
UNCATEGORIZED_INCOME, UNCATEGORIZED_EXPENSE = "uncategorized-income", "uncategorized-expense"


@dataclass(frozen=True)
class Posting:
    account: str
    amount: Decimal  # home currency; debits positive, credits negative
    txn_date: date
    entity: str
    txn_id: str


Lookup = Callable[[str, str], dict[str, Any] | None]  # (entity, Id) -> body


def _ref(node: dict[str, Any] | None, key: str) -> str | None:
    value = (node or {}).get(key)
    return str(value["value"]) if isinstance(value, dict) and "value" in value else None


class Ledger:
    """Postings of transactions, reading items from the company as it is now."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup

    def postings(self, entity: str, body: dict[str, Any]) -> list[Posting]:
        rule = _RULES.get(entity)
        if rule is None or "TxnDate" not in body:
            return []
        rate = to_decimal(body.get("ExchangeRate")) or Decimal(1)
        pairs = list(rule(self, body, rate))
        when = date.fromisoformat(str(body["TxnDate"])[:10])
        return [
            Posting(account, amount, when, entity, str(body["Id"]))
            for account, amount in pairs
            if amount
        ]

    # The accounts an item posts to ------------------------------------------------------

    def _item(self, item_id: str | None) -> dict[str, Any]:
        return (self.lookup("Item", item_id) if item_id else None) or {}

    def income_account(self, item_id: str | None) -> str:
        return _ref(self._item(item_id), "IncomeAccountRef") or UNCATEGORIZED_INCOME

    def cost_account(self, item_id: str | None) -> str:
        """Where buying the item posts: stock for tracked inventory, else its expense."""
        item = self._item(item_id)
        if item.get("TrackQtyOnHand") and _ref(item, "AssetAccountRef"):
            return _ref(item, "AssetAccountRef")  # type: ignore[return-value]
        return _ref(item, "ExpenseAccountRef") or UNCATEGORIZED_EXPENSE

    # Line by line ---------------------------------------------------------------------------

    def sales_lines(self, body: dict[str, Any], rate: Decimal) -> Iterator[tuple[str, Decimal]]:
        """A sales form's credits (income, tax) and debits (discounts), home currency."""
        for line in body.get("Line") or []:
            kind = line.get("DetailType")
            amount = cents(to_decimal(line.get("Amount")) * rate)
            if kind == "SalesItemLineDetail":
                item = _ref(line.get("SalesItemLineDetail"), "ItemRef")
                yield self.income_account(item), -amount
            elif kind == "DiscountLineDetail":
                account = _ref(line.get("DiscountLineDetail"), "DiscountAccountRef")
                yield account or UNCATEGORIZED_INCOME, amount
        tax = to_decimal((body.get("TxnTaxDetail") or {}).get("TotalTax"))
        yield SALES_TAX, -cents(tax * rate)

    def expense_lines(self, body: dict[str, Any], rate: Decimal) -> Iterator[tuple[str, Decimal]]:
        """A purchase form's debits, one per line, home currency."""
        for line in body.get("Line") or []:
            kind = line.get("DetailType")
            amount = cents(to_decimal(line.get("Amount")) * rate)
            if kind == "AccountBasedExpenseLineDetail":
                account = _ref(line.get(kind), "AccountRef")
                yield account or UNCATEGORIZED_EXPENSE, amount
            elif kind == "ItemBasedExpenseLineDetail":
                yield self.cost_account(_ref(line.get(kind), "ItemRef")), amount


def _balanced(
    lines: Iterator[tuple[str, Decimal]], account: str, sign: int = 1
) -> Iterator[tuple[str, Decimal]]:
    """The lines (negated when `sign` is -1), then `account` taking what balances them."""
    total = ZERO
    for line_account, amount in lines:
        total += amount * sign
        yield line_account, amount * sign
    yield account, -total


def _invoice(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    return _balanced(ledger.sales_lines(body, rate), _ref(body, "ARAccountRef") or AR)


def _sales_receipt(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    return _balanced(
        ledger.sales_lines(body, rate), _ref(body, "DepositToAccountRef") or UNDEPOSITED
    )


def _credit_memo(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    return _balanced(ledger.sales_lines(body, rate), _ref(body, "ARAccountRef") or AR, -1)


def _refund_receipt(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    return _balanced(
        ledger.sales_lines(body, rate), _ref(body, "DepositToAccountRef") or UNDEPOSITED, -1
    )


def _payment(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    amount = cents(to_decimal(body.get("TotalAmt")) * rate)
    yield _ref(body, "DepositToAccountRef") or UNDEPOSITED, amount
    yield _ref(body, "ARAccountRef") or AR, -amount


def _bill(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    return _balanced(ledger.expense_lines(body, rate), _ref(body, "APAccountRef") or AP)


def _vendor_credit(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    return _balanced(ledger.expense_lines(body, rate), _ref(body, "APAccountRef") or AP, -1)


def _purchase(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    sign = -1 if body.get("Credit") else 1
    paid_from = _ref(body, "AccountRef") or UNCATEGORIZED_EXPENSE
    return _balanced(ledger.expense_lines(body, rate), paid_from, sign)


def _bill_payment(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    amount = cents(to_decimal(body.get("TotalAmt")) * rate)
    paid_from = _ref(body.get("CheckPayment"), "BankAccountRef") or _ref(
        body.get("CreditCardPayment"), "CCAccountRef"
    )
    yield _ref(body, "APAccountRef") or AP, amount
    yield paid_from or UNDEPOSITED, -amount


def _deposit(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    def credits() -> Iterator[tuple[str, Decimal]]:
        for line in body.get("Line") or []:
            amount = cents(to_decimal(line.get("Amount")) * rate)
            account = _ref(line.get("DepositLineDetail"), "AccountRef")
            yield account or UNDEPOSITED, -amount  # a deposited payment leaves Undeposited

    return _balanced(credits(), _ref(body, "DepositToAccountRef") or UNDEPOSITED)


def _transfer(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    amount = cents(to_decimal(body.get("Amount")) * rate)
    yield _ref(body, "ToAccountRef") or UNDEPOSITED, amount
    yield _ref(body, "FromAccountRef") or UNDEPOSITED, -amount


def _journal_entry(ledger: Ledger, body: dict, rate: Decimal) -> Iterator[tuple[str, Decimal]]:
    for line in body.get("Line") or []:
        detail = line.get("JournalEntryLineDetail") or {}
        amount = cents(to_decimal(line.get("Amount")) * rate)
        sign = 1 if detail.get("PostingType") == "Debit" else -1
        yield _ref(detail, "AccountRef") or UNCATEGORIZED_EXPENSE, amount * sign


_RULES: dict[str, Callable[[Ledger, dict, Decimal], Iterator[tuple[str, Decimal]]]] = {
    "Invoice": _invoice,
    "SalesReceipt": _sales_receipt,
    "CreditMemo": _credit_memo,
    "RefundReceipt": _refund_receipt,
    "Payment": _payment,
    "Bill": _bill,
    "VendorCredit": _vendor_credit,
    "Purchase": _purchase,
    "BillPayment": _bill_payment,
    "Deposit": _deposit,
    "Transfer": _transfer,
    "JournalEntry": _journal_entry,
}
POSTING_ENTITIES = tuple(_RULES)
