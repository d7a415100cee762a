"""What an emulator summary must say of a consistent company, shared by the tests that
change one."""

from __future__ import annotations

from decimal import Decimal


def assert_customer_balances_match(summary: dict) -> None:
    """QBO's customer balance: open invoices less unapplied credit memos."""
    owed = Decimal(summary["Invoice"]["balance_sum"])
    credits = Decimal(summary["CreditMemo"]["remaining_credit_sum"])
    assert Decimal(summary["Customer"]["balance_sum"]) == owed - credits
