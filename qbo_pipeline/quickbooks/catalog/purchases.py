"""Purchases: bills and what pays them, expenses paid at once, purchase orders and vendor
credits. Their lines are expense lines, each posting to an account or buying an item."""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.fields import (
    EXPENSE_LINE,
    TXN_FILTERABLE,
    balance,
    due_date,
    form_lines,
    header,
    ref,
    term,
    vendor,
)
from qbo_pipeline.quickbooks.catalog.model import (
    COMMON,
    Column,
    Entity,
    Kind,
    T,
)

_FILTERABLE = TXN_FILTERABLE


def _ap_account(what: str) -> Column:
    return ref("ap_account_id", "APAccountRef", f"The payable account the {what} posts to")


BILL = Entity(
    name="Bill",
    table="bills",
    description="Bills from vendors: what the company owes, when it is due, and what is open.",
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        *header("bill"),
        *vendor("bill"),
        due_date("bill"),
        balance("bill"),
        term(),
        _ap_account("bill"),
    ),
    filterable=_FILTERABLE | {"VendorRef", "DueDate", "Balance"},
    lines=form_lines("bill", "bill", EXPENSE_LINE),
)

BILL_PAYMENT = Entity(
    name="BillPayment",
    table="bill_payments",
    description=(
        "Payments of bills, by check or credit card; which bills each pays is in "
        "linked_transactions (and in bill_payment_lines)."
    ),
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        *header("bill payment"),
        *vendor("bill payment"),
        Column("pay_type", T.TEXT, ("PayType",), "Check or CreditCard"),
        Column(
            "bank_account_id",
            T.TEXT,
            ("CheckPayment", "BankAccountRef", "value"),
            "The bank account a check payment is drawn on; joins accounts.id",
        ),
        Column(
            "credit_card_account_id",
            T.TEXT,
            ("CreditCardPayment", "CCAccountRef", "value"),
            "The credit card account a card payment is charged to; joins accounts.id",
        ),
        _ap_account("bill payment"),
    ),
    filterable=_FILTERABLE | {"VendorRef"},
    lines=form_lines(
        "bill_payment",
        "bill payment",
        (),
        description="Every line of every bill payment: what it pays of one bill it names",
        links=True,
    ),
)

PURCHASE = Entity(
    name="Purchase",
    table="purchases",
    description=(
        "Expenses, checks and card charges paid at once (QuickBooks' Purchase): the "
        "account paid from, the payee and the total."
    ),
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        *header("expense"),
        Column("payment_type", T.TEXT, ("PaymentType",), "Cash, Check or CreditCard"),
        ref("account_id", "AccountRef", "The bank or card account paid from; accounts.id"),
        Column("payee_type", T.TEXT, ("EntityRef", "type"), "Vendor, Customer or Employee"),
        ref("payee_id", "EntityRef", "The Id of the vendor, customer or employee paid"),
        Column("credit", T.BOOLEAN, ("Credit",), "True for a card refund (a credit), not a charge"),
        ref("payment_method_id", "PaymentMethodRef", "How it was paid; payment_methods.id"),
    ),
    filterable=_FILTERABLE | {"PaymentType"},
    lines=form_lines("purchase", "expense", EXPENSE_LINE),
)

PURCHASE_ORDER = Entity(
    name="PurchaseOrder",
    table="purchase_orders",
    description="Purchase orders sent to vendors; they post nothing until billed.",
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        *header("purchase order"),
        *vendor("purchase order"),
        Column("po_status", T.TEXT, ("POStatus",), "Open or Closed"),
        due_date("purchase order"),
        _ap_account("purchase order"),
    ),
    filterable=_FILTERABLE | {"VendorRef"},
    lines=form_lines("purchase_order", "purchase order", EXPENSE_LINE),
)

VENDOR_CREDIT = Entity(
    name="VendorCredit",
    table="vendor_credits",
    description="Credits vendors give the company, which reduce what it owes them.",
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        *header("vendor credit"),
        *vendor("vendor credit"),
        balance("vendor credit"),
        _ap_account("vendor credit"),
    ),
    filterable=_FILTERABLE | {"VendorRef"},
    lines=form_lines("vendor_credit", "vendor credit", EXPENSE_LINE),
)

PURCHASES: tuple[Entity, ...] = (BILL, BILL_PAYMENT, PURCHASE, PURCHASE_ORDER, VENDOR_CREDIT)
