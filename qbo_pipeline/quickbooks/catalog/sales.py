"""Sales: customers, and what the company sells them and is paid: invoices, sales
receipts, estimates, credit memos, refunds and the payments that settle invoices."""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.fields import (
    SALES_LINE,
    TXN_FILTERABLE,
    customer,
    form_lines,
    header,
    line_basics,
    ref,
    total_tax,
)
from qbo_pipeline.quickbooks.catalog.model import (
    COMMON,
    COMMON_FILTERABLE,
    Column,
    Entity,
    Kind,
    LineTable,
    T,
)

CUSTOMER = Entity(
    name="Customer",
    table="customers",
    description=(
        "One row per QuickBooks customer of each connected company, sub-customers (jobs) "
        "and inactive customers included: who you bill, their open balance and currency."
    ),
    kind=Kind.NAME_LIST,
    cdc=True,
    columns=(
        *COMMON,
        Column(
            "display_name",
            T.TEXT,
            ("DisplayName",),
            "The name QuickBooks shows in lists and on forms; unique across name lists",
        ),
        Column(
            "company_name", T.TEXT, ("CompanyName",), "The customer's business name (CompanyName)"
        ),
        Column("given_name", T.TEXT, ("GivenName",), "The contact person's first name (GivenName)"),
        Column(
            "family_name", T.TEXT, ("FamilyName",), "The contact person's last name (FamilyName)"
        ),
        Column(
            "fully_qualified_name",
            T.TEXT,
            ("FullyQualifiedName",),
            "The name with its parents for a sub-customer or job, joined by colons (Parent:Job)",
        ),
        Column(
            "email",
            T.TEXT,
            ("PrimaryEmailAddr", "Address"),
            "The customer's primary email address (PrimaryEmailAddr)",
        ),
        Column(
            "phone",
            T.TEXT,
            ("PrimaryPhone", "FreeFormNumber"),
            "The customer's primary phone number as entered (PrimaryPhone)",
        ),
        Column(
            "active",
            T.BOOLEAN,
            ("Active",),
            "False once the customer is made inactive, which is how QuickBooks deletes a customer",
        ),
        Column(
            "is_job",
            T.BOOLEAN,
            ("Job",),
            "True for a sub-customer or job, whose parent is parent_id",
        ),
        Column(
            "parent_id",
            T.TEXT,
            ("ParentRef", "value"),
            "The Id of the parent customer of a sub-customer or job (ParentRef)",
        ),
        Column(
            "taxable",
            T.BOOLEAN,
            ("Taxable",),
            "Whether sales to this customer are taxable by default",
        ),
        Column(
            "balance",
            T.DECIMAL,
            ("Balance",),
            "What the customer owes on open invoices, in its currency, jobs excluded",
        ),
        Column(
            "balance_with_jobs",
            T.DECIMAL,
            ("BalanceWithJobs",),
            "What the customer and all its sub-customers and jobs owe, in the customer's currency",
        ),
        Column(
            "currency",
            T.TEXT,
            ("CurrencyRef", "value"),
            "The ISO code of the currency the customer is billed in (CurrencyRef)",
        ),
        Column("bill_city", T.TEXT, ("BillAddr", "City"), "City of the billing address"),
        Column(
            "bill_region",
            T.TEXT,
            ("BillAddr", "CountrySubDivisionCode"),
            "State, province or region code of the billing address (CountrySubDivisionCode)",
        ),
        Column(
            "bill_postal_code",
            T.TEXT,
            ("BillAddr", "PostalCode"),
            "Postal or ZIP code of the billing address",
        ),
        Column(
            "bill_country",
            T.TEXT,
            ("BillAddr", "Country"),
            "Country of the billing address, as QuickBooks returns it (an ISO-3 code since 2025)",
        ),
    ),
    filterable=COMMON_FILTERABLE
    | {
        "DisplayName",
        "GivenName",
        "FamilyName",
        "CompanyName",
        "FullyQualifiedName",
        "PrintOnCheckName",
        "Active",
        "Balance",
        "Job",
        "ParentRef",
    },
)

INVOICE_LINES = LineTable(
    field="Line",
    table="invoice_lines",
    parent_key="invoice_id",
    description=(
        "Every line of every invoice as QuickBooks stores it, in order: item lines with "
        "quantity and unit price, plus the sub-total and discount lines (see detail_type)."
    ),
    columns=(*line_basics("invoice"), *SALES_LINE),
)

INVOICE = Entity(
    name="Invoice",
    table="invoices",
    description=(
        "One row per QuickBooks invoice: who was billed, when, the total with tax, and the "
        "balance still open."
    ),
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        Column("doc_number", T.TEXT, ("DocNumber",), "The invoice number as printed (DocNumber)"),
        Column(
            "customer_id",
            T.TEXT,
            ("CustomerRef", "value"),
            "The Id of the customer billed (CustomerRef); joins customers.id",
        ),
        Column(
            "customer_name",
            T.TEXT,
            ("CustomerRef", "name"),
            "The customer's display name as on the invoice",
        ),
        Column("txn_date", T.DATE, ("TxnDate",), "The invoice date"),
        Column(
            "due_date", T.DATE, ("DueDate",), "The date payment is due, from the invoice's terms"
        ),
        Column(
            "total_amt",
            T.DECIMAL,
            ("TotalAmt",),
            "The invoice total with tax, in the invoice's currency",
        ),
        Column(
            "balance",
            T.DECIMAL,
            ("Balance",),
            "What is still unpaid on the invoice, in its currency; 0 once paid in full",
        ),
        Column(
            "total_tax",
            T.DECIMAL,
            ("TxnTaxDetail", "TotalTax"),
            "The sales tax on the invoice (TxnTaxDetail.TotalTax)",
        ),
        Column(
            "currency",
            T.TEXT,
            ("CurrencyRef", "value"),
            "The ISO code of the invoice's currency (CurrencyRef)",
        ),
        Column(
            "exchange_rate",
            T.DECIMAL,
            ("ExchangeRate",),
            "Home-currency units per unit of the invoice's currency, on the invoice date",
        ),
        Column(
            "home_total_amt",
            T.DECIMAL,
            ("HomeTotalAmt",),
            "The total in the company's home currency, where QuickBooks gives it",
        ),
        Column(
            "sales_term_id",
            T.TEXT,
            ("SalesTermRef", "value"),
            "The Id of the payment terms (SalesTermRef), such as Net 30",
        ),
        Column(
            "bill_email",
            T.TEXT,
            ("BillEmail", "Address"),
            "The address the invoice is emailed to (BillEmail)",
        ),
        Column(
            "email_status",
            T.TEXT,
            ("EmailStatus",),
            "Whether the invoice is to be or was emailed: NotSet, NeedToSend or EmailSent",
        ),
        Column(
            "print_status",
            T.TEXT,
            ("PrintStatus",),
            "Whether the invoice is to be printed: NotSet, NeedToPrint or PrintComplete",
        ),
        Column(
            "private_note",
            T.TEXT,
            ("PrivateNote",),
            "The memo kept with the invoice, not shown to the customer (PrivateNote)",
        ),
    ),
    filterable=COMMON_FILTERABLE
    | {"DocNumber", "TxnDate", "DueDate", "CustomerRef", "TotalAmt", "Balance"},
    lines=INVOICE_LINES,
)


_SALES_FILTERABLE = TXN_FILTERABLE | {"CustomerRef"}


def _sales_form(name: str, table: str, what: str, description: str, *extra: Column) -> Entity:
    """A sales form with item lines: sales receipts, credit memos, refunds, estimates."""
    singular = table.removesuffix("s")
    return Entity(
        name=name,
        table=table,
        description=description,
        kind=Kind.TRANSACTION,
        cdc=True,
        columns=(*COMMON, *header(what), *customer(what), total_tax(what), *extra),
        filterable=_SALES_FILTERABLE,
        lines=form_lines(singular, what, SALES_LINE),
    )


def _paid_into(what: str) -> tuple[Column, ...]:
    return (
        ref(
            "deposit_to_account_id",
            "DepositToAccountRef",
            f"The bank or Undeposited Funds account the {what} money went to or came from",
        ),
        ref("payment_method_id", "PaymentMethodRef", "How it was paid; joins payment_methods.id"),
    )


SALES_RECEIPT = _sales_form(
    "SalesReceipt",
    "sales_receipts",
    "sales receipt",
    "Sales paid on the spot: one row per sales receipt, its total and where the money went.",
    *_paid_into("sales receipt"),
)

CREDIT_MEMO = _sales_form(
    "CreditMemo",
    "credit_memos",
    "credit memo",
    "Credit memos: what the company credits a customer, and how much is not yet applied.",
    Column(
        "remaining_credit",
        T.DECIMAL,
        ("RemainingCredit",),
        "The credit not yet applied to an invoice or refunded",
    ),
)

REFUND_RECEIPT = _sales_form(
    "RefundReceipt",
    "refund_receipts",
    "refund receipt",
    "Refunds paid back to customers: what was refunded and from which account.",
    *_paid_into("refund"),
)

ESTIMATE = _sales_form(
    "Estimate",
    "estimates",
    "estimate",
    "Estimates (quotes) given to customers; they post nothing until invoiced.",
    Column(
        "txn_status",
        T.TEXT,
        ("TxnStatus",),
        "Pending, Accepted, Closed (invoiced) or Rejected",
    ),
    Column("expiration_date", T.DATE, ("ExpirationDate",), "The date the estimate expires"),
)

PAYMENT = Entity(
    name="Payment",
    table="payments",
    description=(
        "Payments received from customers; which invoices each pays is in "
        "linked_transactions (and in payment_lines)."
    ),
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        *header("payment"),
        *customer("payment"),
        *_paid_into("payment"),
        Column(
            "unapplied_amt",
            T.DECIMAL,
            ("UnappliedAmt",),
            "The part of the payment not applied to any invoice (a credit)",
        ),
        ref("ar_account_id", "ARAccountRef", "The receivable account it settles; accounts.id"),
        Column("payment_ref_num", T.TEXT, ("PaymentRefNum",), "The check or reference number"),
    ),
    filterable=_SALES_FILTERABLE,
    lines=form_lines(
        "payment",
        "payment",
        (),
        description="Every line of every payment: what it applies to one transaction it pays",
        links=True,
    ),
)

SALES: tuple[Entity, ...] = (PAYMENT, SALES_RECEIPT, ESTIMATE, CREDIT_MEMO, REFUND_RECEIPT)
