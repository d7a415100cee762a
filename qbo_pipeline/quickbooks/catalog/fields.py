"""Columns transactions share: references to name lists, the header every transaction
has, and the line columns of each line detail type.

A line's detail sits under the key its DetailType names (SalesItemLineDetail,
AccountBasedExpenseLineDetail, JournalEntryLineDetail...). DETAIL in a path stands for
that key, so one `account_id` column reads the account of an expense line, a journal
line and a deposit line alike, and stays empty on a line whose detail has none.
"""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.model import COMMON_FILTERABLE, DETAIL, Column, LineTable, T

# Properties every transaction with a number, a date and a total accepts in WHERE.
TXN_FILTERABLE = COMMON_FILTERABLE | {"DocNumber", "TxnDate", "TotalAmt"}


def ref(name: str, key: str, description: str, *, detail: bool = False) -> Column:
    """The Id of the object a reference names (`<key>.value`); `detail`: on the line's
    detail object."""
    path = (DETAIL, key, "value") if detail else (key, "value")
    return Column(name, T.TEXT, path, description)


def ref_name(name: str, key: str, description: str, *, detail: bool = False) -> Column:
    """The display name QuickBooks copies into a reference (`<key>.name`)."""
    path = (DETAIL, key, "name") if detail else (key, "name")
    return Column(name, T.TEXT, path, description)


def header(what: str) -> tuple[Column, ...]:
    """Number, date, currency and total: what every posting transaction has."""
    return (
        Column("doc_number", T.TEXT, ("DocNumber",), f"The {what}'s number as printed"),
        Column("txn_date", T.DATE, ("TxnDate",), f"The {what}'s date, which it posts on"),
        Column(
            "total_amt",
            T.DECIMAL,
            ("TotalAmt",),
            f"The {what}'s total, tax included, in its currency",
        ),
        *currency(what),
        ref("department_id", "DepartmentRef", "The location it is tracked under; departments.id"),
        Column(
            "private_note",
            T.TEXT,
            ("PrivateNote",),
            f"The memo kept with the {what}, not printed (PrivateNote)",
        ),
    )


def currency(what: str) -> tuple[Column, ...]:
    return (
        ref("currency", "CurrencyRef", f"The ISO code of the {what}'s currency"),
        Column(
            "exchange_rate",
            T.DECIMAL,
            ("ExchangeRate",),
            "Home-currency units per unit of its currency on its date; empty means 1",
        ),
        Column(
            "home_total_amt",
            T.DECIMAL,
            ("HomeTotalAmt",),
            "The total in the company's home currency, where QuickBooks gives it",
        ),
    )


def customer(what: str) -> tuple[Column, ...]:
    return (
        ref("customer_id", "CustomerRef", f"The customer of the {what}; joins customers.id"),
        ref_name("customer_name", "CustomerRef", "The customer's display name as on the form"),
    )


def vendor(what: str) -> tuple[Column, ...]:
    return (
        ref("vendor_id", "VendorRef", f"The vendor of the {what}; joins vendors.id"),
        ref_name("vendor_name", "VendorRef", "The vendor's display name as on the form"),
    )


def balance(what: str) -> Column:
    return Column(
        "balance", T.DECIMAL, ("Balance",), f"What is still open on the {what}; 0 once settled"
    )


def due_date(what: str) -> Column:
    return Column("due_date", T.DATE, ("DueDate",), f"The date the {what} falls due")


def total_tax(what: str) -> Column:
    return Column(
        "total_tax",
        T.DECIMAL,
        ("TxnTaxDetail", "TotalTax"),
        f"The sales tax on the {what} (TxnTaxDetail.TotalTax)",
    )


def term() -> Column:
    return ref("sales_term_id", "SalesTermRef", "The payment terms; joins terms.id")


# --- lines ---------------------------------------------------------------------------------


def line_basics(what: str) -> tuple[Column, ...]:
    return (
        Column("line_id", T.TEXT, ("Id",), f"QuickBooks' Id of the line within its {what}"),
        Column("line_num", T.INTEGER, ("LineNum",), "The line's position on the form (LineNum)"),
        Column(
            "detail_type",
            T.TEXT,
            ("DetailType",),
            "The kind of line, which names the object holding its detail",
        ),
        Column("description", T.TEXT, ("Description",), "The line's description"),
        Column(
            "amount",
            T.DECIMAL,
            ("Amount",),
            f"The line's amount before tax, in the {what}'s currency",
        ),
    )


def form_lines(
    singular: str,
    what: str,
    columns: tuple[Column, ...],
    *,
    description: str | None = None,
    links: bool = False,
) -> LineTable:
    """A form's Line list as table `<singular>_lines`, keyed by `<singular>_id`."""
    return LineTable(
        field="Line",
        table=f"{singular}_lines",
        parent_key=f"{singular}_id",
        description=description
        or f"Every line of every {what}, in order; detail_type says which kind",
        columns=(*line_basics(what), *columns),
        links=links,
    )


def _item() -> tuple[Column, ...]:
    return (
        ref("item_id", "ItemRef", "The product or service (ItemRef); joins items.id", detail=True),
        ref_name(
            "item_name", "ItemRef", "The product or service's name as on the line", detail=True
        ),
        Column("qty", T.DECIMAL, (DETAIL, "Qty"), "Quantity"),
        Column("unit_price", T.DECIMAL, (DETAIL, "UnitPrice"), "Price or cost per unit"),
        ref(
            "tax_code",
            "TaxCodeRef",
            "The line's sales tax code: TAX or NON in the US, else tax_codes.id",
            detail=True,
        ),
    )


def _class() -> Column:
    return ref(
        "class_id", "ClassRef", "The class the line is tracked under; classes.id", detail=True
    )


def _account() -> tuple[Column, ...]:
    return (
        ref(
            "account_id",
            "AccountRef",
            "The account the line posts to; joins accounts.id",
            detail=True,
        ),
        ref_name("account_name", "AccountRef", "The account's name as on the line", detail=True),
    )


def _entity(what: str) -> tuple[Column, ...]:
    return (
        Column(
            "entity_type",
            T.TEXT,
            (DETAIL, "Entity", "Type"),
            f"Customer, Vendor or Employee: who the {what} line concerns",
        ),
        Column(
            "entity_id",
            T.TEXT,
            (DETAIL, "Entity", "EntityRef", "value"),
            "The Id of that customer, vendor or employee",
        ),
    )


# Item lines of sales forms, with their sub-total and discount lines.
SALES_LINE = (
    *_item(),
    Column("service_date", T.DATE, (DETAIL, "ServiceDate"), "The date the item was delivered"),
    _class(),
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
    ref(
        "discount_account_id",
        "DiscountAccountRef",
        "The account a discount line posts to; joins accounts.id",
        detail=True,
    ),
)

# AccountBasedExpenseLineDetail and ItemBasedExpenseLineDetail: bills, expenses, orders.
EXPENSE_LINE = (
    *_account(),
    *_item(),
    ref(
        "customer_id",
        "CustomerRef",
        "The customer the cost is for, when billable; joins customers.id",
        detail=True,
    ),
    Column(
        "billable_status",
        T.TEXT,
        (DETAIL, "BillableStatus"),
        "Billable, NotBillable or HasBeenBilled: whether the cost is passed on",
    ),
    _class(),
)

# JournalEntryLineDetail.
JOURNAL_LINE = (
    Column(
        "posting_type",
        T.TEXT,
        (DETAIL, "PostingType"),
        "Debit or Credit: the side of the account the amount goes to",
    ),
    *_account(),
    *_entity("journal"),
    _class(),
    ref("department_id", "DepartmentRef", "The line's location; joins departments.id", detail=True),
)

# DepositLineDetail; a line that deposits a received payment has LinkedTxn instead.
DEPOSIT_LINE = (
    *_account(),
    *_entity("deposit"),
    ref(
        "payment_method_id",
        "PaymentMethodRef",
        "How the money came in; joins payment_methods.id",
        detail=True,
    ),
    Column("check_num", T.TEXT, (DETAIL, "CheckNum"), "The number of a deposited check"),
    _class(),
)
