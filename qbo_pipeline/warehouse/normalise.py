"""Typed rows from raw QBO entities: SQL generated from the catalog, run by the database.

Python only checks that each record is an object with an Id and encodes it as JSON text
(orjson: ~4 µs for an invoice where json.dumps takes ~26 µs). The database parses that
text once per record and casts every catalog column in bulk, which costs a fraction of a
Python loop over dictionaries. When a cast fails, `describe_bad_value` runs the same
expressions with TRY_CAST in an in-memory DuckDB to name the entity, the field and the value
(and `first_unfit` does the same for values already stored, when a migration fails).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import duckdb
import orjson
import pyarrow as pa

from qbo_pipeline.quickbooks.catalog import DETAIL, Column, ColumnType, Entity
from qbo_pipeline.warehouse.errors import UnfitValue
from qbo_pipeline.warehouse.sql import JSON, SQL_TYPES, Dialect, literal, quote

LINE_INDEX = "line_index"
STAGE = "_qbo_stage"  # (seq, raw): records as text, in order, for a diagnosis
BATCH = "_qbo_batch"  # typed: the newest record of each id, with its lines still as JSON
BATCH_LINES = "_qbo_batch_lines"  # typed: the lines of BATCH (see lines_select)
LINES = "_lines"  # the BATCH column holding the entity's line list
SEQ = "seq"

# Pacific time, QBO's own zone, is what a stamp without an offset means.
_PACIFIC = "America/Los_Angeles"
_HAS_OFFSET = r"([zZ]|[+-]\d\d(:?\d\d)?)$"


# --- Python side: the only per-record work ---------------------------------------------


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_id(entity: Entity, raw: object) -> None:
    if not isinstance(raw, dict):
        raise UnfitValue(
            f"{entity.name} record is a {type(raw).__name__}, not a JSON object: {_short(raw)}"
        )
    entity_id = raw.get("Id")
    if entity_id is None or entity_id == "" or isinstance(entity_id, dict | list | bool):
        raise UnfitValue(f"{entity.name} record has no usable Id (field Id = {_short(entity_id)})")


def _encode(raw: dict) -> str:
    try:
        return orjson.dumps(raw).decode()
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits, or non-JSON values a caller built by hand.
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)


def encode_batch(entity: Entity, raws: Iterable[dict]) -> list[str]:
    """Each record as compact JSON text (keys in QBO's order), after checking its Id.

    The Id check stays in Python because it is cheap and a record without one cannot be
    named in any later error.
    """
    texts: list[str] = []
    for raw in raws:
        _check_id(entity, raw)
        texts.append(_encode(raw))
    return texts


# --- SQL side: one expression per catalog column -----------------------------------------

Cast = Callable[[str, str], str]


def _cast(expr: str, sql_type: str) -> str:
    return f"CAST({expr} AS {sql_type})"


def _try_cast(expr: str, sql_type: str) -> str:
    return f"TRY_CAST({expr} AS {sql_type})"


def typed(text: str, column_type: ColumnType, dialect: Dialect, cast: Cast = _cast) -> str:
    """The SQL turning a JSON value's text into the column's type."""
    sql_type = SQL_TYPES[dialect][column_type]
    if column_type is ColumnType.TEXT:
        return text
    if column_type is ColumnType.DATE:
        # QBO dates are YYYY-MM-DD; a stamp where a date belongs keeps its date part.
        return cast(f"left({text}, 10)", sql_type)
    if column_type is ColumnType.TIMESTAMP:
        return _instant(text, dialect, cast)
    return cast(text, sql_type)


def _instant(text: str, dialect: Dialect, cast: Cast) -> str:
    if dialect is Dialect.DUCKDB:
        has_offset = f"regexp_matches({text}, {literal(_HAS_OFFSET)})"
        pacific = f"timezone({literal(_PACIFIC)}, {cast(text, 'TIMESTAMP')})"
    else:
        has_offset = f"{text} ~ {literal(_HAS_OFFSET)}"
        pacific = f"({cast(text, 'TIMESTAMP')} AT TIME ZONE {literal(_PACIFIC)})"
    return f"CASE WHEN {has_offset} THEN {cast(text, 'TIMESTAMPTZ')} ELSE {pacific} END"


def _detail_tail(column: Column) -> tuple[str, ...] | None:
    """The path inside the line's detail object, or None for a path without DETAIL."""
    if DETAIL not in column.path:
        return None
    if column.path[0] != DETAIL:
        raise ValueError(f"{column.name}: DETAIL must start a line column's path")
    return column.path[1:]


def json_structure(paths: Iterable[tuple[str, ...]]) -> dict:
    """DuckDB's from_json structure: every leaf read as text, so SQL casts it afterwards."""
    tree: dict = {}
    for path in paths:
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], "VARCHAR")
    return tree


def _duck_path(source: str, path: Sequence[str]) -> str:
    return ".".join([source, *(quote(key) for key in path)])


def _pg_path(source: str, path: Sequence[str]) -> str:
    *head, last = path
    return "".join([source, *(f"->{literal(key)}" for key in head), f"->>{literal(last)}"])


@dataclass(frozen=True)
class Projection:
    """The column expressions of one entity (or its lines) in one dialect."""

    parse: str  # FROM-clause items that parse the JSON once per record
    texts: tuple[tuple[Column, str], ...]  # each catalog column and its value as text

    def typed(self, dialect: Dialect, cast: Cast = _cast) -> tuple[tuple[str, str], ...]:
        """(column name, SQL expression of the column's type), in catalog order."""
        return tuple(
            (column.name, typed(text, column.type, dialect, cast)) for column, text in self.texts
        )


def entity_projection(entity: Entity, dialect: Dialect) -> Projection:
    """Columns of STAGE rows; the JSON text is `raw`, the parsed record `j`."""
    paths = [column.path for column in entity.columns]
    if dialect is Dialect.DUCKDB:
        structure = json_structure(paths)
        if entity.lines is not None:
            structure[entity.lines.field] = ["JSON"]
        parse = f"from_json(raw, {literal(json.dumps(structure))}) AS j"
        path = _duck_path
    else:
        parse = "CAST(raw AS JSONB) AS j"
        path = _pg_path
    return Projection(parse, tuple((column, path("j", column.path)) for column in entity.columns))


def line_projection(entity: Entity, dialect: Dialect) -> Projection:
    """Line columns; the line's JSON is `line`, its parsed fields `l`, its detail `d`.

    DETAIL in a path is the key the line's own DetailType names, so one column reads
    SalesItemLineDetail.Qty on an item line and DiscountLineDetail.Qty on a discount line.
    """
    assert entity.lines is not None
    line_columns = entity.lines.columns
    tails = {column.name: _detail_tail(column) for column in line_columns}
    texts: list[tuple[Column, str]] = []
    if dialect is Dialect.DUCKDB:
        plain = json_structure(c.path for c in line_columns if tails[c.name] is None)
        detail = json_structure(tail for tail in tails.values() if tail)
        # from_json refuses an empty structure: lines without a detail object (a
        # payment's) have no DETAIL columns, and a migration may fill only those.
        parsed = []
        if plain:
            parsed.append(f"from_json(line, {literal(json.dumps(plain))}) AS l")
        if detail:
            parsed.append(
                f"from_json(line -> (line ->> 'DetailType'), {literal(json.dumps(detail))}) AS d"
            )
        parse = ", ".join(parsed)
        for column in line_columns:
            tail = tails[column.name]
            texts.append(
                (column, _duck_path("l", column.path) if tail is None else _duck_path("d", tail))
            )
    else:
        parse = ""
        detail_object = "(line->(line->>'DetailType'))"
        for column in line_columns:
            tail = tails[column.name]
            texts.append(
                (
                    column,
                    _pg_path("line", column.path)
                    if tail is None
                    else _pg_path(detail_object, tail),
                )
            )
    return Projection(parse, tuple(texts))


def records_select(entity: Entity, source: str) -> str:
    """DuckDB: the records of `source` (a query yielding JSON `raw`) typed, in order, with
    their lines still as JSON (records.RecordTyper; one page holds one version of each)."""
    projection = entity_projection(entity, Dialect.DUCKDB)
    selected = [f"{expr} AS {quote(name)}" for name, expr in projection.typed(Dialect.DUCKDB)]
    selected.append(f"CAST(raw AS {SQL_TYPES[Dialect.DUCKDB][JSON]}) AS raw")
    if entity.lines is not None:
        selected.append(f"j.{quote(entity.lines.field)} AS {LINES}")
    return f"SELECT {', '.join(selected)} FROM (SELECT raw, {projection.parse} FROM ({source}))"


def lines_select(entity: Entity) -> str:
    """Every line of BATCH typed, numbered from 0 in order (only item lines carry an Id),
    in the line table's columns and with its names, while the batch is prepared and before
    the writer knows which parents it will write (records.RecordTyper)."""
    assert entity.lines is not None
    projection = line_projection(entity, Dialect.DUCKDB)
    typed_columns = ", ".join(
        f"{expr} AS {quote(name)}" for name, expr in projection.typed(Dialect.DUCKDB)
    )
    exploded = f"SELECT id, unnest({LINES}) AS line, unnest(range(len({LINES}))) AS n FROM {BATCH}"
    return (
        f"SELECT id AS {quote(entity.lines.parent_key)}, n AS {LINE_INDEX}, {typed_columns}, "
        "line AS raw\n"
        f"FROM (SELECT id, n, line, {projection.parse} FROM ({exploded}) AS e) AS p"
    )


# --- diagnosis of a batch the database refused ------------------------------------------


def _field_name(column: Column) -> str:
    return ".".join("<DetailType>" if key == DETAIL else key for key in column.path)


def _failures(projection: Projection) -> str:
    """The values of a record that are present but do not cast, as (pos, value) structs."""
    lenient = projection.typed(Dialect.DUCKDB, _try_cast)
    checks = ", ".join(
        f"CASE WHEN {text} IS NOT NULL AND {expr} IS NULL "
        f"THEN struct_pack(pos := {index}, value := {text}) END"
        for index, ((_, text), (_, expr)) in enumerate(zip(projection.texts, lenient, strict=True))
    )
    return f"list_filter([{checks}], lambda x: x IS NOT NULL)"


def describe_bad_value(entity: Entity, texts: Sequence[str]) -> str | None:
    """Name the first record, field and value that a typed column cannot hold, if any."""
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute(f"CREATE TEMP TABLE {STAGE} ({SEQ} BIGINT, raw VARCHAR)")
        connection.executemany(f"INSERT INTO {STAGE} VALUES (?, ?)", list(enumerate(texts)))
        projection = entity_projection(entity, Dialect.DUCKDB)
        found = connection.execute(
            f"SELECT j.Id, {_failures(projection)} FROM "
            f"(SELECT {SEQ}, raw, {projection.parse} FROM {STAGE}) ORDER BY {SEQ}"
        ).fetchall()
        for entity_id, failures in found:
            if failures:
                column = entity.columns[failures[0]["pos"]]
                return describe_value(entity, f"{entity_id!r}", column, failures[0]["value"])
        if entity.lines is not None:
            return _describe_bad_line(connection, entity)
        return None
    finally:
        connection.close()


def _describe_bad_line(connection: duckdb.DuckDBPyConnection, entity: Entity) -> str | None:
    assert entity.lines is not None
    field = entity.lines.field
    structure = literal(json.dumps({"Id": "VARCHAR", field: ["JSON"]}))
    lines = line_projection(entity, Dialect.DUCKDB)
    found = connection.execute(
        f"SELECT id, n, json_type(line), {_failures(lines)} FROM ("
        f"  SELECT {SEQ}, id, n, line, {lines.parse} FROM ("
        f"    SELECT {SEQ}, j.Id AS id, "
        f"      unnest(j.{quote(field)}) AS line, unnest(range(len(j.{quote(field)}))) AS n "
        f"    FROM (SELECT {SEQ}, raw, from_json(raw, {structure}) AS j FROM {STAGE})))"
        f" ORDER BY {SEQ}, n"
    ).fetchall()
    for entity_id, index, line_type, failures in found:
        where = f"{entity_id!r} {field}[{index}]"
        if line_type != "OBJECT":
            return f"{entity.name} {where} is a {line_type}, not a JSON object"
        if failures:
            column = entity.lines.columns[failures[0]["pos"]]
            return describe_value(entity, where, column, failures[0]["value"])
    return None


def first_unfit(column: Column, values: Sequence[str]) -> int | None:
    """The index of the first of `values` (a column's texts as the load reads them out of
    raw JSON; none NULL) that the column's type cannot hold, by the load's own typing with
    TRY_CAST, in an in-memory DuckDB as describe_bad_value does: PostgreSQL has no
    TRY_CAST, and one diagnosis serves both backends."""
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        numbered = pa.array(range(len(values)), pa.int64())
        staged = pa.table({SEQ: numbered, "v": pa.array(values, pa.string())})
        connection.register(STAGE, staged)
        found = connection.execute(
            f"SELECT {SEQ} FROM {STAGE} "
            f"WHERE {typed('v', column.type, Dialect.DUCKDB, _try_cast)} IS NULL "
            f"ORDER BY {SEQ} LIMIT 1"
        ).fetchone()
        return None if found is None else int(found[0])
    finally:
        connection.close()


def describe_value(entity: Entity, where: str, column: Column, value: str) -> str:
    """One line naming the entity, the record (`where`), the field, the column and the
    value its type cannot hold."""
    return (
        f"{entity.name} {where}: field {_field_name(column)} ({column.name}) = {_short(value)} "
        f"is not a valid {column.type.value}"
    )
