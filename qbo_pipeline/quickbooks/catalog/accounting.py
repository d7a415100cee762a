"""Banking and the books: deposits, transfers, journal entries, budgets, and the time
employees and contractors record against customers."""

from __future__ import annotations

from qbo_pipeline.quickbooks.catalog.fields import (
    DEPOSIT_LINE,
    JOURNAL_LINE,
    TXN_FILTERABLE,
    currency,
    form_lines,
    header,
    ref,
    ref_name,
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

_FILTERABLE = TXN_FILTERABLE

JOURNAL_ENTRY = Entity(
    name="JournalEntry",
    table="journal_entries",
    description=(
        "Journal entries: debits and credits posted straight to accounts, such as opening "
        "balances, depreciation and adjustments. Their lines always balance."
    ),
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        *header("journal entry"),
        Column("adjustment", T.BOOLEAN, ("Adjustment",), "True for an adjusting entry"),
    ),
    filterable=_FILTERABLE,
    lines=form_lines(
        "journal_entry",
        "journal entry",
        JOURNAL_LINE,
        description="Every debit and credit of every journal entry, in order",
    ),
)

DEPOSIT = Entity(
    name="Deposit",
    table="deposits",
    description=(
        "Bank deposits: received payments moved out of Undeposited Funds, and other money "
        "paid in, each line from its own account or customer."
    ),
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        *header("deposit"),
        ref(
            "deposit_to_account_id",
            "DepositToAccountRef",
            "The bank account deposited into; joins accounts.id",
        ),
    ),
    filterable=_FILTERABLE,
    lines=form_lines(
        "deposit",
        "deposit",
        DEPOSIT_LINE,
        description="Every line of every deposit; a deposited payment's line links to it",
        links=True,
    ),
)

TRANSFER = Entity(
    name="Transfer",
    table="transfers",
    description="Money moved between two of the company's own bank or card accounts.",
    kind=Kind.TRANSACTION,
    cdc=True,
    columns=(
        *COMMON,
        Column("txn_date", T.DATE, ("TxnDate",), "The transfer's date"),
        Column("amount", T.DECIMAL, ("Amount",), "The amount moved, in the accounts' currency"),
        ref("from_account_id", "FromAccountRef", "The account money left; joins accounts.id"),
        ref("to_account_id", "ToAccountRef", "The account money went to; joins accounts.id"),
        *currency("transfer"),
        Column("private_note", T.TEXT, ("PrivateNote",), "The transfer's memo"),
    ),
    filterable=COMMON_FILTERABLE | {"TxnDate", "Amount"},
)

BUDGET = Entity(
    name="Budget",
    table="budgets",
    description="Budgets: a plan of amounts per account (and customer, class or location).",
    kind=Kind.NAME_LIST,
    cdc=True,
    columns=(
        *COMMON,
        Column("name", T.TEXT, ("Name",), "The budget's name"),
        Column("active", T.BOOLEAN, ("Active",), "False once the budget is deleted"),
        Column("start_date", T.DATE, ("StartDate",), "The first day the budget covers"),
        Column("end_date", T.DATE, ("EndDate",), "The last day the budget covers"),
        Column("budget_type", T.TEXT, ("BudgetType",), "ProfitAndLoss or BalanceSheet"),
        Column(
            "budget_entry_type",
            T.TEXT,
            ("BudgetEntryType",),
            "Monthly, Quarterly or Yearly: the period of each amount",
        ),
    ),
    filterable=COMMON_FILTERABLE | {"Name", "Active", "StartDate", "EndDate"},
    lines=LineTable(
        field="BudgetDetail",
        table="budget_lines",
        parent_key="budget_id",
        description="Every amount of every budget: one per period and account",
        columns=(
            Column("budget_date", T.DATE, ("BudgetDate",), "The first day of the amount's period"),
            Column("amount", T.DECIMAL, ("Amount",), "The budgeted amount for the period"),
            ref("account_id", "AccountRef", "The account budgeted; joins accounts.id"),
            ref_name("account_name", "AccountRef", "The account's name"),
            ref("customer_id", "CustomerRef", "The customer budgeted for; joins customers.id"),
            ref("class_id", "ClassRef", "The class budgeted for; joins classes.id"),
            ref("department_id", "DepartmentRef", "The location budgeted for; departments.id"),
        ),
    ),
)

TIME_ACTIVITY = Entity(
    name="TimeActivity",
    table="time_activities",
    description=(
        "Time employees and contractors recorded, and for which customer and service; "
        "CDC does not report these, so a sync reads them in full once a day."
    ),
    kind=Kind.TRANSACTION,
    cdc=False,
    columns=(
        *COMMON,
        Column("txn_date", T.DATE, ("TxnDate",), "The day the time was worked"),
        Column("name_of", T.TEXT, ("NameOf",), "Employee or Vendor: who worked"),
        ref("employee_id", "EmployeeRef", "The employee who worked; joins employees.id"),
        ref("vendor_id", "VendorRef", "The contractor who worked; joins vendors.id"),
        ref("customer_id", "CustomerRef", "The customer the time was for; customers.id"),
        ref("item_id", "ItemRef", "The service performed; joins items.id"),
        ref("class_id", "ClassRef", "The class it is tracked under; joins classes.id"),
        Column(
            "billable_status",
            T.TEXT,
            ("BillableStatus",),
            "Billable, NotBillable or HasBeenBilled",
        ),
        Column("taxable", T.BOOLEAN, ("Taxable",), "Whether billing the time is taxable"),
        Column("hourly_rate", T.DECIMAL, ("HourlyRate",), "The rate billed per hour"),
        Column("hours", T.INTEGER, ("Hours",), "Whole hours worked"),
        Column("minutes", T.INTEGER, ("Minutes",), "Minutes worked beyond the whole hours"),
        Column("description", T.TEXT, ("Description",), "What was done"),
    ),
    filterable=COMMON_FILTERABLE | {"TxnDate"},
)

ACCOUNTING: tuple[Entity, ...] = (JOURNAL_ENTRY, DEPOSIT, TRANSFER, BUDGET, TIME_ACTIVITY)
