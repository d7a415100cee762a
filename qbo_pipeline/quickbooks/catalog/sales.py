"""Customers and invoices, with the invoices' lines."""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.model import (
    COMMON,
    COMMON_FILTERABLE,
    DETAIL,
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
    columns=(
        Column("line_id", T.TEXT, ("Id",), "QuickBooks' Id of the line within its invoice"),
        Column(
            "line_num",
            T.INTEGER,
            ("LineNum",),
            "The line's position on the form (LineNum); empty on sub-total lines",
        ),
        Column(
            "detail_type",
            T.TEXT,
            ("DetailType",),
            "The kind of line: SalesItemLineDetail, SubTotalLineDetail, DiscountLineDetail...",
        ),
        Column(
            "description",
            T.TEXT,
            ("Description",),
            "The line's description as printed on the invoice",
        ),
        Column(
            "amount",
            T.DECIMAL,
            ("Amount",),
            "The line's amount before tax, in the invoice's currency (Qty × UnitPrice)",
        ),
        Column(
            "item_id",
            T.TEXT,
            (DETAIL, "ItemRef", "value"),
            "The Id of the product or service sold (ItemRef)",
        ),
        Column(
            "item_name",
            T.TEXT,
            (DETAIL, "ItemRef", "name"),
            "The name of the product or service sold, as on the invoice",
        ),
        Column("qty", T.DECIMAL, (DETAIL, "Qty"), "Quantity sold"),
        Column(
            "unit_price",
            T.DECIMAL,
            (DETAIL, "UnitPrice"),
            "Price per unit, in the invoice's currency",
        ),
        Column(
            "tax_code",
            T.TEXT,
            (DETAIL, "TaxCodeRef", "value"),
            "The line's sales tax code (TaxCodeRef): TAX or NON in the US, else an Id",
        ),
        Column(
            "service_date",
            T.DATE,
            (DETAIL, "ServiceDate"),
            "The date the product or service was delivered",
        ),
        Column(
            "discount_percent",
            T.DECIMAL,
            (DETAIL, "DiscountPercent"),
            "The discount rate of a percentage discount line",
        ),
        Column(
            "discount_percent_based",
            T.BOOLEAN,
            (DETAIL, "PercentBased"),
            "True when a discount line is a percentage, false for a fixed amount",
        ),
    ),
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
