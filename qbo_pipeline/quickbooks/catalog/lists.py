"""The name lists transactions refer to: the chart of accounts, products and services,
payment terms and methods, classes and departments, vendors and employees, and sales tax.

QBO never deletes these: it makes them inactive (Active = false), and leaves inactive ones
out of a query unless the query names Active. TaxAgency has no Active flag at all. CDC
does not report TaxAgency, TaxCode or TaxRate, so a sync reads those three in full.
"""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.model import (
    COMMON,
    COMMON_FILTERABLE,
    Column,
    Entity,
    Kind,
    T,
)


def _name(what: str) -> Column:
    return Column("name", T.TEXT, ("Name",), f"The {what}'s name, unique among its kind")


def _active(what: str) -> Column:
    return Column(
        "active", T.BOOLEAN, ("Active",), f"False once the {what} is made inactive (deleted)"
    )


def _parent(what: str) -> tuple[Column, ...]:
    return (
        Column(
            "fully_qualified_name",
            T.TEXT,
            ("FullyQualifiedName",),
            f"The name with its parent {what}s before it, joined by colons",
        ),
        Column("parent_id", T.TEXT, ("ParentRef", "value"), f"The Id of the parent {what}"),
    )


def _contact(what: str) -> tuple[Column, ...]:
    return (
        Column(
            "display_name",
            T.TEXT,
            ("DisplayName",),
            f"The {what}'s name in lists; unique across customers, vendors, employees",
        ),
        Column("given_name", T.TEXT, ("GivenName",), "The person's first name"),
        Column("family_name", T.TEXT, ("FamilyName",), "The person's last name"),
        Column("email", T.TEXT, ("PrimaryEmailAddr", "Address"), "Primary email address"),
        Column("phone", T.TEXT, ("PrimaryPhone", "FreeFormNumber"), "Primary phone number"),
        _active(what),
    )


_NAMED = COMMON_FILTERABLE | {"Name", "Active"}

ACCOUNT = Entity(
    name="Account",
    table="accounts",
    description=(
        "The chart of accounts: one row per account every transaction line posts to, with "
        "its classification (Asset, Liability, Equity, Revenue, Expense) and balance."
    ),
    kind=Kind.NAME_LIST,
    cdc=True,
    columns=(
        *COMMON,
        _name("account"),
        *_parent("account"),
        _active("account"),
        Column("sub_account", T.BOOLEAN, ("SubAccount",), "True for a sub-account"),
        Column("account_number", T.TEXT, ("AcctNum",), "The account number, where used"),
        Column(
            "classification",
            T.TEXT,
            ("Classification",),
            "Asset, Liability, Equity, Revenue or Expense",
        ),
        Column(
            "account_type",
            T.TEXT,
            ("AccountType",),
            "The account's type, such as Bank, Accounts Receivable or Income",
        ),
        Column(
            "account_sub_type", T.TEXT, ("AccountSubType",), "The detail type, such as Checking"
        ),
        Column("description", T.TEXT, ("Description",), "The account's description"),
        Column(
            "current_balance",
            T.DECIMAL,
            ("CurrentBalance",),
            "The balance of a balance-sheet account, without sub-accounts",
        ),
        Column(
            "current_balance_with_sub_accounts",
            T.DECIMAL,
            ("CurrentBalanceWithSubAccounts",),
            "The balance of a balance-sheet account and its sub-accounts",
        ),
        Column("currency", T.TEXT, ("CurrencyRef", "value"), "The account's currency"),
    ),
    filterable=_NAMED
    | {"SubAccount", "ParentRef", "AcctNum", "Classification", "AccountType", "CurrentBalance"},
)

ITEM = Entity(
    name="Item",
    table="items",
    description=(
        "Products and services sold or bought: one row per item, with its price, cost, "
        "stock on hand and the accounts its sales and purchases post to."
    ),
    kind=Kind.NAME_LIST,
    cdc=True,
    columns=(
        *COMMON,
        _name("item"),
        *_parent("item"),
        _active("item"),
        Column("type", T.TEXT, ("Type",), "Service, Inventory, NonInventory, Group or Category"),
        Column("sku", T.TEXT, ("Sku",), "The stock keeping unit"),
        Column("description", T.TEXT, ("Description",), "The sales description"),
        Column("taxable", T.BOOLEAN, ("Taxable",), "Whether sales of the item are taxable"),
        Column("unit_price", T.DECIMAL, ("UnitPrice",), "The sales price per unit"),
        Column("purchase_cost", T.DECIMAL, ("PurchaseCost",), "The purchase cost per unit"),
        Column("track_qty_on_hand", T.BOOLEAN, ("TrackQtyOnHand",), "True for tracked inventory"),
        Column("qty_on_hand", T.DECIMAL, ("QtyOnHand",), "Units in stock, for inventory"),
        Column(
            "income_account_id",
            T.TEXT,
            ("IncomeAccountRef", "value"),
            "The account sales of the item post to; joins accounts.id",
        ),
        Column(
            "expense_account_id",
            T.TEXT,
            ("ExpenseAccountRef", "value"),
            "The account purchases of the item post to; joins accounts.id",
        ),
        Column(
            "asset_account_id",
            T.TEXT,
            ("AssetAccountRef", "value"),
            "The inventory asset account of a tracked item; joins accounts.id",
        ),
    ),
    filterable=_NAMED | {"Type", "Sku", "FullyQualifiedName", "ParentRef", "UnitPrice"},
)

TERM = Entity(
    name="Term",
    table="terms",
    description="Payment terms, such as Net 30: when an invoice or bill falls due.",
    kind=Kind.NAME_LIST,
    cdc=True,
    columns=(
        *COMMON,
        _name("term"),
        _active("term"),
        Column(
            "type",
            T.TEXT,
            ("Type",),
            "STANDARD (due after a number of days) or DATE_DRIVEN (on a day of the month)",
        ),
        Column("due_days", T.INTEGER, ("DueDays",), "Days after the transaction date"),
        Column(
            "discount_days",
            T.INTEGER,
            ("DiscountDays",),
            "Days within which paying earns the discount",
        ),
        Column("discount_percent", T.DECIMAL, ("DiscountPercent",), "The early-payment discount"),
        Column("day_of_month_due", T.INTEGER, ("DayOfMonthDue",), "For DATE_DRIVEN terms: the day"),
    ),
    filterable=_NAMED,
)

PAYMENT_METHOD = Entity(
    name="PaymentMethod",
    table="payment_methods",
    description="Ways customers pay, such as Cash, Check or a credit card brand.",
    kind=Kind.NAME_LIST,
    cdc=True,
    columns=(
        *COMMON,
        _name("payment method"),
        _active("payment method"),
        Column("type", T.TEXT, ("Type",), "CREDIT_CARD or NON_CREDIT_CARD"),
    ),
    filterable=_NAMED,
)


def _hierarchy(name: str, table: str, what: str, description: str, sub: str) -> Entity:
    """A list whose rows nest under a parent row: classes and locations."""
    return Entity(
        name=name,
        table=table,
        description=description,
        kind=Kind.NAME_LIST,
        cdc=True,
        columns=(
            *COMMON,
            _name(what),
            *_parent(what),
            _active(what),
            Column(f"sub_{name.lower()}", T.BOOLEAN, (f"Sub{name}",), f"True for a {sub}"),
        ),
        filterable=_NAMED | {"FullyQualifiedName", "ParentRef"},
    )


CLASS = _hierarchy(
    "Class",
    "classes",
    "class",
    "Classes: the company's own categories for tracking transactions.",
    "sub-class",
)
DEPARTMENT = _hierarchy(
    "Department",
    "departments",
    "location",
    "Locations (called departments in the API): where transactions happened.",
    "sub-location",
)

VENDOR = Entity(
    name="Vendor",
    table="vendors",
    description="Vendors: who the company buys from and pays bills to, and what it owes them.",
    kind=Kind.NAME_LIST,
    cdc=True,
    columns=(
        *COMMON,
        *_contact("vendor"),
        Column("company_name", T.TEXT, ("CompanyName",), "The vendor's business name"),
        Column(
            "balance", T.DECIMAL, ("Balance",), "What the company owes the vendor on open bills"
        ),
        Column("currency", T.TEXT, ("CurrencyRef", "value"), "The vendor's currency"),
        Column(
            "account_number",
            T.TEXT,
            ("AcctNum",),
            "The company's account number with the vendor",
        ),
        Column("vendor_1099", T.BOOLEAN, ("Vendor1099",), "True when the vendor gets a 1099 form"),
        Column("term_id", T.TEXT, ("TermRef", "value"), "Default payment terms; joins terms.id"),
        Column("bill_city", T.TEXT, ("BillAddr", "City"), "City of the vendor's address"),
        Column(
            "bill_region",
            T.TEXT,
            ("BillAddr", "CountrySubDivisionCode"),
            "State, province or region code of the vendor's address",
        ),
        Column("bill_country", T.TEXT, ("BillAddr", "Country"), "Country of the address"),
    ),
    filterable=COMMON_FILTERABLE
    | {"DisplayName", "GivenName", "FamilyName", "CompanyName", "Active", "Balance"},
)

EMPLOYEE = Entity(
    name="Employee",
    table="employees",
    description="Employees, as time activities and expenses name them (not payroll).",
    kind=Kind.NAME_LIST,
    cdc=True,
    columns=(
        *COMMON,
        *_contact("employee"),
        Column("employee_number", T.TEXT, ("EmployeeNumber",), "The employee's number"),
        Column("hired_date", T.DATE, ("HiredDate",), "The date the employee was hired"),
        Column("released_date", T.DATE, ("ReleasedDate",), "The date the employee left"),
        Column(
            "billable_time",
            T.BOOLEAN,
            ("BillableTime",),
            "Whether the employee's time is billed to customers",
        ),
        Column("bill_rate", T.DECIMAL, ("BillRate",), "The hourly rate billed to customers"),
    ),
    filterable=COMMON_FILTERABLE
    | {"DisplayName", "GivenName", "FamilyName", "Active", "EmployeeNumber"},
)

TAX_AGENCY = Entity(
    name="TaxAgency",
    table="tax_agencies",
    description="Tax agencies the company collects sales tax for and pays it to.",
    kind=Kind.NAME_LIST,
    cdc=False,
    columns=(
        *COMMON,
        Column("display_name", T.TEXT, ("DisplayName",), "The agency's name"),
        Column(
            "tax_tracked_on_sales",
            T.BOOLEAN,
            ("TaxTrackedOnSales",),
            "Whether tax on sales is tracked for this agency",
        ),
        Column(
            "tax_tracked_on_purchases",
            T.BOOLEAN,
            ("TaxTrackedOnPurchases",),
            "Whether tax on purchases is tracked for this agency",
        ),
        Column(
            "registration_number",
            T.TEXT,
            ("TaxRegistrationNumber",),
            "The company's registration number with the agency",
        ),
    ),
    filterable=COMMON_FILTERABLE | {"DisplayName"},
)

TAX_CODE = Entity(
    name="TaxCode",
    table="tax_codes",
    description=(
        "Sales tax codes a line or transaction names: each applies one tax rate or a group "
        "of them (the rates are in raw: SalesTaxRateList)."
    ),
    kind=Kind.NAME_LIST,
    cdc=False,
    columns=(
        *COMMON,
        _name("tax code"),
        _active("tax code"),
        Column("description", T.TEXT, ("Description",), "The tax code's description"),
        Column("taxable", T.BOOLEAN, ("Taxable",), "False for a code that exempts from tax"),
        Column("tax_group", T.BOOLEAN, ("TaxGroup",), "True when it combines several rates"),
    ),
    filterable=_NAMED,
)

TAX_RATE = Entity(
    name="TaxRate",
    table="tax_rates",
    description="Sales tax rates, each collected for one tax agency.",
    kind=Kind.NAME_LIST,
    cdc=False,
    columns=(
        *COMMON,
        _name("tax rate"),
        _active("tax rate"),
        Column("description", T.TEXT, ("Description",), "The rate's description"),
        Column("rate_value", T.DECIMAL, ("RateValue",), "The rate, in percent"),
        Column(
            "agency_id",
            T.TEXT,
            ("AgencyRef", "value"),
            "The agency the tax is paid to; joins tax_agencies.id",
        ),
        Column("special_tax_type", T.TEXT, ("SpecialTaxType",), "NONE, or a special rate's kind"),
        Column("display_type", T.TEXT, ("DisplayType",), "How QuickBooks shows the rate"),
    ),
    filterable=_NAMED,
)

NAME_LISTS: tuple[Entity, ...] = (
    ACCOUNT,
    CLASS,
    DEPARTMENT,
    EMPLOYEE,
    ITEM,
    PAYMENT_METHOD,
    TAX_AGENCY,
    TAX_CODE,
    TAX_RATE,
    TERM,
    VENDOR,
)
