"""The entity catalog: the one description of each QBO entity that everything reads.

The emulator serves what is here (filterable fields, name-list behaviour), the client
builds queries from it, the normaliser flattens entities with its column maps, the
warehouse creates tables from them and the Dagster assets are generated from it.
Adding an entity is a new `Entity` entry, not a new module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """How QBO deletes an entity, which decides how a sync sees the delete."""

    NAME_LIST = "name_list"  # deleted means Active = false; hidden from queries by default
    TRANSACTION = "transaction"  # hard-deleted; only CDC reports the delete


class ColumnType(StrEnum):
    TEXT = "text"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    TIMESTAMP = "timestamp"


# A path is a tuple of keys into the raw entity. DETAIL stands for the key named by the
# line's DetailType, so one column can read SalesItemLineDetail.Qty and any other
# detail's Qty alike.
DETAIL = "@detail"


@dataclass(frozen=True)
class Column:
    """One typed warehouse column and where its value lives in the raw entity."""

    name: str
    type: ColumnType
    path: tuple[str, ...]


@dataclass(frozen=True)
class LineTable:
    """A repeated field of an entity flattened into its own table, one row per element."""

    field: str  # the entity's list field, e.g. "Line"
    table: str  # e.g. "invoice_lines"
    parent_key: str  # the column naming the parent entity, e.g. "invoice_id"
    columns: tuple[Column, ...]
    description: str = ""  # what a row means to an analyst


@dataclass(frozen=True)
class Entity:
    name: str  # QBO's name, as in queries: "Customer"
    table: str  # warehouse table in schema qbo: "customers"
    kind: Kind
    cdc: bool  # whether QBO's Change Data Capture reports this entity
    columns: tuple[Column, ...]
    filterable: frozenset[str] = field(default_factory=frozenset)
    lines: LineTable | None = None
    description: str = ""  # what a row means to an analyst

    @property
    def resource(self) -> str:
        """The lower-case path segment QBO uses for reads and writes: /customer/123."""
        return self.name.lower()

    @property
    def is_name_list(self) -> bool:
        return self.kind is Kind.NAME_LIST


T = ColumnType

# Columns every entity has; the normaliser adds realm_id, raw and synced_at itself.
_COMMON = (
    Column("id", T.TEXT, ("Id",)),
    Column("sync_token", T.INTEGER, ("SyncToken",)),
    Column("created_at", T.TIMESTAMP, ("MetaData", "CreateTime")),
    Column("updated_at", T.TIMESTAMP, ("MetaData", "LastUpdatedTime")),
)

# Properties every entity accepts in WHERE and ORDERBY.
_COMMON_FILTERABLE = frozenset({"Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime"})

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
        *_COMMON,
        Column("display_name", T.TEXT, ("DisplayName",)),
        Column("company_name", T.TEXT, ("CompanyName",)),
        Column("given_name", T.TEXT, ("GivenName",)),
        Column("family_name", T.TEXT, ("FamilyName",)),
        Column("fully_qualified_name", T.TEXT, ("FullyQualifiedName",)),
        Column("email", T.TEXT, ("PrimaryEmailAddr", "Address")),
        Column("phone", T.TEXT, ("PrimaryPhone", "FreeFormNumber")),
        Column("active", T.BOOLEAN, ("Active",)),
        Column("is_job", T.BOOLEAN, ("Job",)),
        Column("parent_id", T.TEXT, ("ParentRef", "value")),
        Column("taxable", T.BOOLEAN, ("Taxable",)),
        Column("balance", T.DECIMAL, ("Balance",)),
        Column("balance_with_jobs", T.DECIMAL, ("BalanceWithJobs",)),
        Column("currency", T.TEXT, ("CurrencyRef", "value")),
        Column("bill_city", T.TEXT, ("BillAddr", "City")),
        Column("bill_region", T.TEXT, ("BillAddr", "CountrySubDivisionCode")),
        Column("bill_postal_code", T.TEXT, ("BillAddr", "PostalCode")),
        Column("bill_country", T.TEXT, ("BillAddr", "Country")),
    ),
    filterable=_COMMON_FILTERABLE
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
        Column("line_id", T.TEXT, ("Id",)),
        Column("line_num", T.INTEGER, ("LineNum",)),
        Column("detail_type", T.TEXT, ("DetailType",)),
        Column("description", T.TEXT, ("Description",)),
        Column("amount", T.DECIMAL, ("Amount",)),
        Column("item_id", T.TEXT, (DETAIL, "ItemRef", "value")),
        Column("item_name", T.TEXT, (DETAIL, "ItemRef", "name")),
        Column("qty", T.DECIMAL, (DETAIL, "Qty")),
        Column("unit_price", T.DECIMAL, (DETAIL, "UnitPrice")),
        Column("tax_code", T.TEXT, (DETAIL, "TaxCodeRef", "value")),
        Column("service_date", T.DATE, (DETAIL, "ServiceDate")),
        Column("discount_percent", T.DECIMAL, (DETAIL, "DiscountPercent")),
        Column("discount_percent_based", T.BOOLEAN, (DETAIL, "PercentBased")),
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
        *_COMMON,
        Column("doc_number", T.TEXT, ("DocNumber",)),
        Column("customer_id", T.TEXT, ("CustomerRef", "value")),
        Column("customer_name", T.TEXT, ("CustomerRef", "name")),
        Column("txn_date", T.DATE, ("TxnDate",)),
        Column("due_date", T.DATE, ("DueDate",)),
        Column("total_amt", T.DECIMAL, ("TotalAmt",)),
        Column("balance", T.DECIMAL, ("Balance",)),
        Column("total_tax", T.DECIMAL, ("TxnTaxDetail", "TotalTax")),
        Column("currency", T.TEXT, ("CurrencyRef", "value")),
        Column("exchange_rate", T.DECIMAL, ("ExchangeRate",)),
        Column("home_total_amt", T.DECIMAL, ("HomeTotalAmt",)),
        Column("sales_term_id", T.TEXT, ("SalesTermRef", "value")),
        Column("bill_email", T.TEXT, ("BillEmail", "Address")),
        Column("email_status", T.TEXT, ("EmailStatus",)),
        Column("print_status", T.TEXT, ("PrintStatus",)),
        Column("private_note", T.TEXT, ("PrivateNote",)),
    ),
    filterable=_COMMON_FILTERABLE
    | {"DocNumber", "TxnDate", "DueDate", "CustomerRef", "TotalAmt", "Balance"},
    lines=INVOICE_LINES,
)

ENTITIES: tuple[Entity, ...] = (CUSTOMER, INVOICE)
_BY_NAME = {entity.name: entity for entity in ENTITIES}


def entity(name: str) -> Entity:
    """The catalog entry for a QBO entity name, matched as QBO does (case-insensitively)."""
    for candidate in ENTITIES:
        if candidate.name.lower() == name.lower():
            return candidate
    known = ", ".join(_BY_NAME)
    raise KeyError(f"unknown QuickBooks entity {name!r}; the catalog knows {known}")
