"""Relations read out of the raw JSON the sync already stores: the links between
transactions, their sales tax lines and their custom fields.

QBO nests each of these as a list inside a transaction (LinkedTxn, TxnTaxDetail.TaxLine,
CustomField) or inside its lines (a payment line's LinkedTxn). Views over the `raw`
columns turn each list into rows an analyst joins, cost the sync nothing, and are never
out of step with the tables; a deleted transaction drops out of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from qbo_pipeline.quickbooks.catalog import ColumnType, Entity
from qbo_pipeline.warehouse.normalise import LINE_INDEX, json_structure, typed
from qbo_pipeline.warehouse.schema import (
    REALM_ID,
    SCHEMA,
    Table,
    TableColumn,
    entity_table,
    line_table,
)
from qbo_pipeline.warehouse.sql import Dialect, literal, quote


@dataclass(frozen=True)
class Field:
    """A column of a view: a value inside each element of the list."""

    name: str
    type: ColumnType
    path: tuple[str, ...]  # inside the element
    description: str


@dataclass(frozen=True)
class JsonView:
    name: str
    description: str
    array: tuple[str, ...]  # where the list sits in a transaction (or a line)
    fields: tuple[Field, ...]
    on_lines: bool  # also read the list from the lines of entities whose lines link

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{quote(self.name)}"

    @property
    def columns(self) -> tuple[TableColumn, ...]:
        head = [
            REALM_ID,
            TableColumn("parent_type", ColumnType.TEXT, "The transaction's entity, e.g. Invoice"),
            TableColumn("parent_id", ColumnType.TEXT, "The Id of that transaction"),
        ]
        if self.on_lines:
            head.append(
                TableColumn(
                    LINE_INDEX,
                    ColumnType.INTEGER,
                    "The line the entry is on (joins the lines table); empty for the header",
                )
            )
        fields = (TableColumn(f.name, f.type.value, f.description) for f in self.fields)
        return (*head, *fields)


LINKED_TRANSACTIONS = JsonView(
    "linked_transactions",
    "Every link QuickBooks records between two transactions, such as the invoices a "
    "payment pays; from the live transactions' raw JSON",
    ("LinkedTxn",),
    (
        Field(
            "linked_type",
            ColumnType.TEXT,
            ("TxnType",),
            "QuickBooks' TxnType of the one linked to: Invoice, Payment, BillPaymentCheck...",
        ),
        Field("linked_id", ColumnType.TEXT, ("TxnId",), "The Id of the transaction linked to"),
    ),
    on_lines=True,
)

TAX_LINES = JsonView(
    "tax_lines",
    "The sales tax lines of every transaction (TxnTaxDetail.TaxLine): each rate, what it "
    "was charged on and the tax",
    ("TxnTaxDetail", "TaxLine"),
    (
        Field(
            "tax_rate_id",
            ColumnType.TEXT,
            ("TaxLineDetail", "TaxRateRef", "value"),
            "The rate charged; joins tax_rates.id",
        ),
        Field(
            "tax_percent",
            ColumnType.DECIMAL,
            ("TaxLineDetail", "TaxPercent"),
            "The rate, in percent, of a percent-based tax line",
        ),
        Field(
            "net_amount_taxable",
            ColumnType.DECIMAL,
            ("TaxLineDetail", "NetAmountTaxable"),
            "The amount the tax was charged on",
        ),
        Field("amount", ColumnType.DECIMAL, ("Amount",), "The tax, in the transaction's currency"),
    ),
    on_lines=False,
)

CUSTOM_FIELDS = JsonView(
    "custom_fields",
    "The custom fields filled in on every transaction, one row per field, keyed by its definition",
    ("CustomField",),
    (
        Field(
            "definition_id",
            ColumnType.TEXT,
            ("DefinitionId",),
            "The custom field's definition, the same on every form that has it",
        ),
        Field("name", ColumnType.TEXT, ("Name",), "The field's name, such as Crew #"),
        Field("type", ColumnType.TEXT, ("Type",), "StringType, NumberType or DateType"),
        Field("string_value", ColumnType.TEXT, ("StringValue",), "The value of a text field"),
        Field("number_value", ColumnType.DECIMAL, ("NumberValue",), "The value of a number field"),
        Field("date_value", ColumnType.DATE, ("DateValue",), "The value of a date field"),
    ),
    on_lines=False,
)

VIEWS = (LINKED_TRANSACTIONS, TAX_LINES, CUSTOM_FIELDS)

# Each view's definition as last created, by digest: a view is replaced only when its
# definition changed, since CREATE OR REPLACE VIEW waits for every query reading it (an
# analyst's long one would hold up each run's start).
VIEW_DIGESTS = Table(
    "_view_digests",
    (
        TableColumn("view_name", ColumnType.TEXT, "A view in schema qbo"),
        TableColumn("digest", ColumnType.TEXT, "SHA-256 of the statement that last created it"),
    ),
    ("view_name",),
    (),
    "Which definition of each derived view the warehouse holds",
)
READ_DIGESTS = f"SELECT view_name, digest FROM {VIEW_DIGESTS.qualified}"
FORGET_DIGEST = f"DELETE FROM {VIEW_DIGESTS.qualified} WHERE view_name = $1"
KEEP_DIGEST = f"INSERT INTO {VIEW_DIGESTS.qualified} (view_name, digest) VALUES ($1, $2)"


def digest(statement: str) -> str:
    return hashlib.sha256(statement.encode()).hexdigest()


def existing(dialect: Dialect) -> str:
    """(view name, whether this role may replace it) of the views in schema qbo."""
    if dialect is Dialect.DUCKDB:
        return (
            f"SELECT view_name, true FROM duckdb_views() WHERE schema_name = '{SCHEMA}' "
            "AND database_name = current_database()"
        )
    return (
        "SELECT c.relname, pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{SCHEMA}' "
        "AND c.relkind = 'v'"
    )


def _part(
    view: JsonView,
    dialect: Dialect,
    parent: Entity,
    source: str,
    parent_id: str,
    line_index: str | None,
    join: str,
    live: str,
) -> str:
    """The view's rows from `source`'s raw JSON (a lines table is joined to its parent
    by `join`), of live parents only (`live`: the alias whose deleted_at is empty)."""
    where = f"WHERE {live}.deleted_at IS NULL"
    head = ["s.realm_id", literal(parent.name), f"s.{parent_id}"]
    if view.on_lines:
        head.append(f"CAST({line_index or 'NULL'} AS BIGINT)")
    if dialect is Dialect.DUCKDB:
        structure = literal(json.dumps([json_structure(field.path for field in view.fields)]))
        path = literal("$." + ".".join(view.array))
        named = ", ".join(f"{expr} AS c{n}" for n, expr in enumerate(head))
        values = (
            typed(".".join(["e", *(quote(key) for key in field.path)]), field.type, dialect)
            for field in view.fields
        )
        return (
            f"SELECT {', '.join(f'c{n}' for n in range(len(head)))}, {', '.join(values)} "
            f"FROM (SELECT {named}, unnest(from_json(s.raw -> {path}, {structure})) AS e "
            f"FROM {source} AS s {join} {where})"
        )
    array = "s.raw #> " + literal("{" + ",".join(view.array) + "}")
    values = (
        typed("(e #>> " + literal("{" + ",".join(field.path) + "}") + ")", field.type, dialect)
        for field in view.fields
    )
    elements = (
        f"jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' "
        f"THEN {array} ELSE '[]'::jsonb END) AS e"
    )
    return (
        f"SELECT {', '.join(head)}, {', '.join(values)} "
        f"FROM {source} AS s {join} CROSS JOIN LATERAL {elements} {where}"
    )


def create_view(view: JsonView, entities: Sequence[Entity], dialect: Dialect) -> str | None:
    """CREATE OR REPLACE VIEW over the transactions among `entities`; None if none."""
    parts = []
    for entity in entities:
        if not entity.is_form:
            continue
        parent = entity_table(entity).qualified
        parts.append(_part(view, dialect, entity, parent, "id", None, "", "s"))
        lines = line_table(entity)
        if view.on_lines and entity.lines.links and lines is not None:
            key = quote(entity.lines.parent_key)
            join = f"JOIN {parent} AS p ON p.realm_id = s.realm_id AND p.id = s.{key}"
            index = f"s.{LINE_INDEX}"
            parts.append(_part(view, dialect, entity, lines.qualified, key, index, join, "p"))
    if not parts:
        return None
    names = ", ".join(quote(column.name) for column in view.columns)
    union = "\nUNION ALL\n".join(parts)
    return f"CREATE OR REPLACE VIEW {view.qualified} ({names}) AS\n{union}"


def comments(view: JsonView) -> list[str]:
    """The view's and its columns' comments (both dialects take COMMENT ON VIEW/COLUMN)."""
    return [
        f"COMMENT ON VIEW {view.qualified} IS {literal(view.description)}",
        *(
            f"COMMENT ON COLUMN {view.qualified}.{quote(c.name)} IS {literal(c.description)}"
            for c in view.columns
        ),
    ]
