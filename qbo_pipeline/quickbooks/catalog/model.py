"""The shape of a catalog entry: what the catalog says about an entity, its columns and its
line table, and the columns and filters every entity shares."""

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
    description: str = ""  # one line, in QuickBooks terms: the column's comment and tooltip


@dataclass(frozen=True)
class LineTable:
    """A repeated field of an entity flattened into its own table, one row per element."""

    field: str  # the entity's list field, e.g. "Line"
    table: str  # e.g. "invoice_lines"
    parent_key: str  # the column naming the parent entity, e.g. "invoice_id"
    columns: tuple[Column, ...]
    description: str = ""  # what a row means to an analyst
    # Whether a line may name other transactions (LinkedTxn): the invoices a payment's
    # line pays, the bills a bill payment's line pays, the payments a deposit's line banks.
    links: bool = False


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

    @property
    def is_form(self) -> bool:
        """A transaction with lines: what may name other transactions (LinkedTxn, such as
        an invoice naming its payments) and carry tax lines and custom fields."""
        return self.kind is Kind.TRANSACTION and self.lines is not None

    @property
    def hides_inactive(self) -> bool:
        """QBO leaves inactive rows out of a query unless it names `Active`: name-lists
        with an Active flag (TaxAgency has none)."""
        return self.is_name_list and "Active" in self.filterable


T = ColumnType

# Columns every entity has; the normaliser adds realm_id, raw and synced_at itself.
COMMON = (
    Column(
        "id",
        T.TEXT,
        ("Id",),
        "QuickBooks' Id of the object, unique within its company (realm) and entity type",
    ),
    Column(
        "sync_token",
        T.INTEGER,
        ("SyncToken",),
        "QuickBooks' version counter: 0 when created, one more with every change",
    ),
    Column(
        "created_at",
        T.TIMESTAMP,
        ("MetaData", "CreateTime"),
        "When the object was created in QuickBooks (MetaData.CreateTime), in UTC",
    ),
    Column(
        "updated_at",
        T.TIMESTAMP,
        ("MetaData", "LastUpdatedTime"),
        "When the object last changed in QuickBooks (MetaData.LastUpdatedTime), in UTC",
    ),
)

# Properties every entity accepts in WHERE and ORDERBY.
COMMON_FILTERABLE = frozenset({"Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime"})
