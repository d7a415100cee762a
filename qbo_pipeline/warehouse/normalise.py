"""Pure functions that turn raw QBO entities into typed warehouse rows.

The catalog says which columns exist and where their values live; this module compiles
that into one extractor per entity (once, cached), so normalising a batch costs a few
dictionary look-ups and conversions per column and no catalog walking.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from qbo_pipeline.quickbooks.catalog import DETAIL, Column, ColumnType, Entity
from qbo_pipeline.quickbooks.timestamps import parse_date, parse_instant

Row = dict[str, object]
Converter = Callable[[object], object]

LINE_INDEX = "line_index"


class _Unconvertible(Exception):
    """A value of the wrong shape; turned into a ValueError naming entity, id and field."""


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _Unconvertible


def _integer(value: object) -> int:
    # SyncToken and LineNum arrive as strings or numbers; a bool is never an integer here.
    if isinstance(value, bool):
        raise _Unconvertible
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value)
    raise _Unconvertible


def _decimal(value: object) -> Decimal:
    # Through str() so 23.28 stays 23.28 rather than 23.280000000000001136...
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Unconvertible
    result = Decimal(value) if isinstance(value, int) else Decimal(str(value))
    if not result.is_finite():
        raise _Unconvertible
    return result


def _date(value: object) -> date:
    if not isinstance(value, str):
        raise _Unconvertible
    return parse_date(value)


def _timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise _Unconvertible
    # QBO's own form (2023-02-18T12:57:24-08:00) parses directly; parse_instant covers
    # the rest, including offset-less stamps that mean Pacific time.
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        parsed = parse_instant(value)
    return parsed.astimezone(UTC)


_CONVERTERS: dict[ColumnType, Converter] = {
    ColumnType.TEXT: _text,
    ColumnType.BOOLEAN: _boolean,
    ColumnType.INTEGER: _integer,
    ColumnType.DECIMAL: _decimal,
    ColumnType.DATE: _date,
    ColumnType.TIMESTAMP: _timestamp,
}


Getter = Callable[[dict], object]


def _plain_getter(path: tuple[str, ...]) -> Getter:
    """Follow keys through nested objects; None as soon as one is missing."""
    if len(path) == 1:
        (key,) = path

        def get_one(record: dict) -> object:
            return record.get(key)

        return get_one

    def get_nested(record: dict) -> object:
        found: object = record
        for key in path:
            if found is None:
                return None
            if not isinstance(found, dict):
                raise _Unconvertible
            found = found.get(key)
        return found

    return get_nested


def _detail_getter(path: tuple[str, ...]) -> Getter:
    """DETAIL stands for the key the line's DetailType names, e.g. SalesItemLineDetail."""
    at = path.index(DETAIL)
    head = _plain_getter(path[:at]) if at else None
    tail = _plain_getter(path[at + 1 :]) if at + 1 < len(path) else None

    def get(record: dict) -> object:
        key = record.get("DetailType")
        if not isinstance(key, str):
            return None
        container = record if head is None else head(record)
        if container is None:
            return None
        if not isinstance(container, dict):
            raise _Unconvertible
        detail = container.get(key)
        if detail is None or tail is None:
            return detail
        if not isinstance(detail, dict):
            raise _Unconvertible
        return tail(detail)

    return get


@dataclass(frozen=True, slots=True)
class _Field:
    """One column compiled: where to look, how to convert, and what to call it in errors."""

    name: str
    get: Getter
    convert: Converter
    column: Column

    def describe(self) -> str:
        return ".".join("<DetailType>" if key == DETAIL else key for key in self.column.path)


def _compile(columns: Sequence[Column]) -> tuple[_Field, ...]:
    return tuple(
        _Field(
            name=column.name,
            get=(_detail_getter if DETAIL in column.path else _plain_getter)(column.path),
            convert=_CONVERTERS[column.type],
            column=column,
        )
        for column in columns
    )


# Keyed by id(): hashing a frozen Entity walks every column, which cost more than the
# normalising itself. The entity is kept in the value so its id cannot be reused.
_compiled: dict[int, tuple[Entity, tuple[_Field, ...], tuple[_Field, ...]]] = {}


def _fields(entity: Entity) -> tuple[tuple[_Field, ...], tuple[_Field, ...]]:
    held = _compiled.get(id(entity))
    if held is None or held[0] is not entity:
        line_columns = entity.lines.columns if entity.lines is not None else ()
        held = (entity, _compile(entity.columns), _compile(line_columns))
        _compiled[id(entity)] = held
    return held[1], held[2]


# Keys stay in the order QBO sent them; non-ASCII text stays readable in the warehouse.
# One encoder, because json.dumps with options builds a new one on every call.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _entity_id(entity: Entity, raw: object) -> str:
    if not isinstance(raw, dict):
        raise ValueError(
            f"{entity.name} record is a {type(raw).__name__}, not a JSON object: {_short(raw)}"
        )
    entity_id = raw.get("Id")
    if entity_id is None or entity_id == "" or isinstance(entity_id, dict | list | bool):
        raise ValueError(f"{entity.name} record has no usable Id (field Id = {_short(entity_id)})")
    return entity_id if isinstance(entity_id, str) else str(entity_id)


def _fill(row: Row, fields: tuple[_Field, ...], record: dict, where: str) -> None:
    spec = None
    try:
        for spec in fields:
            value = spec.get(record)
            row[spec.name] = None if value is None else spec.convert(value)
    except (_Unconvertible, ValueError, TypeError, ArithmeticError):
        assert spec is not None
        raise ValueError(
            f"{where}: field {spec.describe()} ({spec.name}) = {_short(_raw_value(record, spec))} "
            f"is not a valid {spec.column.type.value}"
        ) from None


def _raw_value(record: dict, spec: _Field) -> object:
    """The unconverted value, for error messages only."""
    found: object = record
    for key in spec.column.path:
        if not isinstance(found, dict):
            return found
        found = found.get(record.get("DetailType") if key == DETAIL else key)
    return found


def entity_row(entity: Entity, realm_id: str, raw: dict) -> Row:
    """The entity's typed row, keyed by (realm_id, id), with the untouched entity as `raw`."""
    entity_id = _entity_id(entity, raw)
    row: Row = {"realm_id": realm_id}
    _fill(row, _fields(entity)[0], raw, f"{entity.name} {entity_id!r}")
    row["id"] = entity_id
    row["raw"] = _dumps(raw)
    return row


def line_rows(entity: Entity, realm_id: str, raw: dict) -> list[Row]:
    """Every element of the entity's line field, sub-total and discount lines included.

    Lines are keyed by position because only item lines carry an Id.
    """
    if entity.lines is None:
        return []
    entity_id = _entity_id(entity, raw)
    lines = raw.get(entity.lines.field)
    if lines is None:
        return []
    where = f"{entity.name} {entity_id!r}"
    if not isinstance(lines, list):
        raise ValueError(f"{where}: field {entity.lines.field} is not a list: {_short(lines)}")
    parent_key = entity.lines.parent_key
    fields = _fields(entity)[1]
    rows: list[Row] = []
    for index, line in enumerate(lines):
        line_where = f"{where} {entity.lines.field}[{index}]"
        if not isinstance(line, dict):
            raise ValueError(f"{line_where} is a {type(line).__name__}, not a JSON object")
        row: Row = {"realm_id": realm_id, parent_key: entity_id, LINE_INDEX: index}
        _fill(row, fields, line, line_where)
        row["raw"] = _dumps(line)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Batch:
    """A batch ready to write: one row per entity id (the newest) and those entities' lines."""

    rows: list[Row]
    lines: list[Row]


def _sync_order(row: Row) -> int:
    token = row.get("sync_token")
    return token if isinstance(token, int) else -1


def normalise_batch(entity: Entity, realm_id: str, raws: Iterable[dict]) -> Batch:
    """Normalise a page batch, keeping only the highest SyncToken of each Id.

    Pages overlap (incremental syncs use >= on LastUpdatedTime), so one batch can hold
    two versions of an entity; the databases cannot update one key twice in a statement.
    On equal SyncTokens the later record wins, being the more recently fetched.
    """
    newest: dict[str, tuple[Row, dict]] = {}
    for raw in raws:
        row = entity_row(entity, realm_id, raw)
        key = row["id"]
        held = newest.get(key)  # type: ignore[arg-type]
        if held is None or _sync_order(row) >= _sync_order(held[0]):
            newest[key] = (row, raw)  # type: ignore[index]
    rows = [row for row, _ in newest.values()]
    lines: list[Row] = []
    if entity.lines is not None:
        for _, raw in newest.values():
            lines.extend(line_rows(entity, realm_id, raw))
    return Batch(rows=rows, lines=lines)
