"""QBO's query language: tokenizer, parser, binding to the catalog, and evaluation.

All pure functions over plain values. Stored entities are reduced once to a tuple of
their filterable properties in comparable form (instants as epoch seconds, dates as
ordinals, money as cents), so a query over 200,000 invoices never re-parses a timestamp.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from qbo_pipeline.quickbooks import catalog
from qbo_pipeline.quickbooks.catalog import ColumnType, Entity
from qbo_pipeline.quickbooks.timestamps import parse_date, parse_instant

DEFAULT_MAX_RESULTS = 100
LAST_UPDATED = "MetaData.LastUpdatedTime"
MAX_RESULTS_LIMIT = 1000
INVALID_QUERY = "Invalid query"
PARSE_ERROR = "Error parsing query"

Literal = str | Decimal | bool


class QueryError(Exception):
    """A statement QBO would answer with ValidationFault 4001."""

    def __init__(self, detail: str, message: str = INVALID_QUERY) -> None:
        super().__init__(detail)
        self.detail = detail
        self.message = message


# Syntax ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, op, punct, word, end
    text: str
    column: int  # 1-based, for error messages

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


_TOKEN = re.compile(
    r"""(?P<string>'(?:\\.|[^'\\])*')
       |(?P<number>-?\d+(?:\.\d+)?)
       |(?P<op><=|>=|!=|<>|=|<|>)
       |(?P<punct>[(),*])
       |(?P<word>[A-Za-z_][A-Za-z0-9_.]*)""",
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            tokens.append(Token("end", "<EOF>", position + 1))
            return tokens
        match = _TOKEN.match(text, position)
        if match is None:
            raise _parse_error(Token("char", text[position], position + 1))
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(), position + 1))
        position = match.end()


@dataclass(frozen=True)
class Condition:
    property: str
    operator: str  # = < > <= >= IN LIKE
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Order:
    property: str
    descending: bool = False


@dataclass(frozen=True)
class Statement:
    entity: str
    count: bool = False
    where: tuple[Condition, ...] = ()
    order: tuple[Order, ...] = ()
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


def parse(text: str) -> Statement:
    """The statement's structure; names are checked against the catalog by `bind`."""
    return _Parser(tokenize(text)).statement()


def _parse_error(token: Token) -> QueryError:
    return QueryError(
        f'QueryParserError: Encountered "{token.text}" at line 1, column {token.column}.',
        PARSE_ERROR,
    )


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def accept(self, *keywords: str) -> bool:
        if self.current.keyword in keywords:
            self.index += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> Token:
        token = self.current
        matches = token.kind == kind and (text is None or token.text.upper() == text)
        if not matches:
            raise _parse_error(token)
        return self.advance()

    def statement(self) -> Statement:
        self.expect("word", "SELECT")
        count = self._projection()
        self.expect("word", "FROM")
        entity = self.expect("word").text
        where = self._where()
        order = self._order()
        start, max_results = self._paging()
        if self.current.kind != "end":
            raise _parse_error(self.current)
        if max_results > MAX_RESULTS_LIMIT:
            raise QueryError(
                f"QueryValidationError: value {max_results} is too large. "
                f"Max allowed value is {MAX_RESULTS_LIMIT}"
            )
        return Statement(entity, count, where, order, max(start, 1), max_results)

    def _projection(self) -> bool:
        if self.current.kind == "punct" and self.current.text == "*":
            self.advance()
            return False
        self.expect("word", "COUNT")
        self.expect("punct", "(")
        self.expect("punct", "*")
        self.expect("punct", ")")
        return True

    def _where(self) -> tuple[Condition, ...]:
        if not self.accept("WHERE"):
            return ()
        conditions = [self._condition()]
        while self.accept("AND"):
            conditions.append(self._condition())
        return tuple(conditions)

    def _condition(self) -> Condition:
        name = self._property()
        if self.accept("IN"):
            self.expect("punct", "(")
            values = [self._literal()]
            while self.current.text == ",":
                self.advance()
                values.append(self._literal())
            self.expect("punct", ")")
            return Condition(name, "IN", tuple(values))
        if self.accept("LIKE"):
            token = self.expect("string")
            return Condition(name, "LIKE", (_unquote(token.text),))
        operator = self.current
        if operator.kind != "op" or operator.text in ("!=", "<>"):
            raise _parse_error(operator)
        self.advance()
        return Condition(name, operator.text, (self._literal(),))

    def _property(self) -> str:
        token = self.current
        if token.kind != "word" or token.keyword in _RESERVED:
            raise _parse_error(token)
        return self.advance().text

    def _literal(self) -> Literal:
        token = self.advance()
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind == "number":
            return Decimal(token.text)
        if token.keyword in ("TRUE", "FALSE"):
            return token.keyword == "TRUE"
        raise _parse_error(token)

    def _order(self) -> tuple[Order, ...]:
        if not self.accept("ORDERBY"):
            if self.current.keyword != "ORDER":
                return ()
            self.advance()
            self.expect("word", "BY")
        orders = [self._order_item()]
        while self.current.text == ",":
            self.advance()
            orders.append(self._order_item())
        return tuple(orders)

    def _order_item(self) -> Order:
        name = self._property()
        if self.accept("DESC"):
            return Order(name, True)
        self.accept("ASC")
        return Order(name)

    def _paging(self) -> tuple[int, int]:
        start, max_results = 1, DEFAULT_MAX_RESULTS
        seen: set[str] = set()
        while self.current.keyword in {"STARTPOSITION", "MAXRESULTS"} - seen:
            keyword = self.advance().keyword
            seen.add(keyword)
            value = self.expect("number")
            if "." in value.text or value.text.startswith("-"):
                raise _parse_error(value)
            if keyword == "STARTPOSITION":
                start = int(value.text)
            else:
                max_results = int(value.text)
        return start, max_results


_RESERVED = frozenset(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "IN",
        "LIKE",
        "ORDERBY",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "STARTPOSITION",
        "MAXRESULTS",
    ]
)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


# Binding to the catalog -----------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    name: str  # as the catalog spells it: "MetaData.LastUpdatedTime"
    path: tuple[str, ...]  # where it lives in the entity
    type: ColumnType


@dataclass(frozen=True)
class Schema:
    """An entity's filterable properties, in the order of its projection tuples."""

    entity: Entity
    properties: tuple[Property, ...]

    def position(self, name: str) -> int:
        wanted = name.lower()
        for index, prop in enumerate(self.properties):
            if prop.name.lower() == wanted:
                return index
        raise QueryError(f"QueryValidationError: property '{name}' is not queryable")


_SCHEMAS: dict[str, Schema] = {}


def schema_for(entity: Entity) -> Schema:
    if entity.name not in _SCHEMAS:
        types = {column.path: column.type for column in entity.columns}
        properties = []
        for name in sorted(entity.filterable):
            path = (name, "value") if name.endswith("Ref") else tuple(name.split("."))
            kind = ColumnType.INTEGER if name == "Id" else types.get(path, ColumnType.TEXT)
            properties.append(Property(name, path, kind))
        _SCHEMAS[entity.name] = Schema(entity, tuple(properties))
    return _SCHEMAS[entity.name]


def lookup_entity(name: str) -> Entity:
    try:
        return catalog.entity(name)
    except KeyError:
        raise QueryError(f"QueryValidationError: Metadata not found for Entity: {name}") from None


Projection = tuple[Any, ...]


def project(schema: Schema, entity: dict[str, Any]) -> Projection:
    """The entity's filterable values in comparable form; None where it has no value."""
    values = []
    for prop in schema.properties:
        value: Any = entity
        for key in prop.path:
            value = value.get(key) if isinstance(value, dict) else None
        values.append(None if value is None else _comparable(prop, value))
    return tuple(values)


def _comparable(prop: Property, value: Any) -> Any:
    kind = prop.type
    if kind is ColumnType.TIMESTAMP:
        return _epoch(str(value))
    if kind is ColumnType.DATE:
        return parse_date(str(value)).toordinal()
    if kind is ColumnType.DECIMAL:
        return Decimal(str(value)) * 100
    if kind is ColumnType.INTEGER:
        return int(str(value))
    if kind is ColumnType.BOOLEAN:
        return value if isinstance(value, bool) else str(value).lower() == "true"
    return str(value)


def _epoch(text: str) -> float:
    """Epoch seconds of a stamp; QBO's own form skips the general parser (hot in bulk loads)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        parsed = parse_instant(text)
    return parsed.timestamp()


def _literal_value(prop: Property, literal: Literal) -> Any:
    try:
        boolean = prop.type is ColumnType.BOOLEAN and not isinstance(literal, bool)
        if boolean and str(literal).lower() not in ("true", "false"):
            raise ValueError(literal)
        if prop.type is ColumnType.TEXT and isinstance(literal, Decimal):
            return str(literal)
        return _comparable(prop, literal)
    except (ValueError, InvalidOperation):
        raise QueryError(
            f"QueryValidationError: value '{literal}' is not valid for property '{prop.name}'"
        ) from None


Predicate = Callable[[Projection], bool]


@dataclass(frozen=True)
class Keyset:
    """A plan answerable from the (LastUpdatedTime, Id) index without a scan.

    The bounds come from the LastUpdatedTime conditions; every other condition (and the
    implied `Active = true` of name-lists) is tested on the rows inside them; `Active IN
    (true, false)` tests nothing. This is the shape of the sync's windows, so a page costs
    O(log n + page), at any offset.
    """

    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True
    residual: tuple[Predicate, ...] = ()

    @property
    def bounded(self) -> bool:
        return self.low is not None or self.high is not None

    def narrowed(self, operator: str, value: float) -> Keyset:
        keyset = self
        if operator in ("=", ">", ">="):
            keyset = keyset._with_low(value, operator != ">")
        if operator in ("=", "<", "<="):
            keyset = keyset._with_high(value, operator != "<")
        return keyset

    def _with_low(self, value: float, inclusive: bool) -> Keyset:
        if self.low is None or value > self.low:
            return replace(self, low=value, low_inclusive=inclusive)
        if value == self.low:
            return replace(self, low_inclusive=self.low_inclusive and inclusive)
        return self

    def _with_high(self, value: float, inclusive: bool) -> Keyset:
        if self.high is None or value < self.high:
            return replace(self, high=value, high_inclusive=inclusive)
        if value == self.high:
            return replace(self, high_inclusive=self.high_inclusive and inclusive)
        return self


@dataclass(frozen=True)
class Plan:
    """A bound statement: what to keep, how to sort and which slice to return."""

    schema: Schema
    count: bool
    predicates: tuple[Predicate, ...]
    order: tuple[tuple[int, bool], ...]
    start_position: int
    max_results: int
    # What identifies the matching rows in order, for caching across pages.
    selection_key: tuple[Any, ...]
    # Set when the time index can answer the plan (see Keyset).
    keyset: Keyset | None = None


def bind(statement: Statement) -> Plan:
    """Check names against the catalog and turn conditions into predicates."""
    entity = lookup_entity(statement.entity)
    schema = schema_for(entity)
    predicates = [_predicate(schema, condition) for condition in statement.where]
    mentions_active = any(c.property.lower() == "active" for c in statement.where)
    if entity.hides_inactive and not mentions_active:
        active = schema.position("Active")
        predicates.append(lambda row: row[active] is True)
    order = tuple((schema.position(item.property), item.descending) for item in statement.order)
    where_key = tuple((schema.position(c.property), c.operator, c.values) for c in statement.where)
    key = (entity.name, where_key, mentions_active, () if statement.count else order)
    return Plan(
        schema,
        statement.count,
        tuple(predicates),
        order,
        statement.start_position,
        statement.max_results,
        key,
        _keyset(schema, statement, order, predicates),
    )


def _keyset(
    schema: Schema, statement: Statement, order: tuple[tuple[int, bool], ...], predicates: list
) -> Keyset | None:
    """The plan's LastUpdatedTime bounds, when rows in (LastUpdatedTime, Id) order answer it.

    That is when the result is ordered by LastUpdatedTime ascending (ties by Id, as
    `select` orders them) or only counted.
    """
    position = schema.position(LAST_UPDATED)
    if not statement.count and order != ((position, False),):
        return None
    keyset = Keyset()
    residual = list(predicates[len(statement.where) :])  # the implied Active = true
    for condition, predicate in zip(statement.where, predicates, strict=False):
        indexed = schema.position(condition.property) == position
        if indexed and condition.operator in _COMPARISONS:
            value = _literal_value(schema.properties[position], condition.values[0])
            keyset = keyset.narrowed(condition.operator, value)
        elif not _admits_every_flag(schema, condition):
            residual.append(predicate)
    return replace(keyset, residual=tuple(residual))


def _admits_every_flag(schema: Schema, condition: Condition) -> bool:
    """`Active IN (true, false)`, which every sync sends to see inactive rows too: testing
    it row by row would make an offset page cost a walk from the window's start."""
    prop = schema.properties[schema.position(condition.property)]
    if prop.type is not ColumnType.BOOLEAN or condition.operator != "IN":
        return False
    return {_literal_value(prop, value) for value in condition.values} == {True, False}


def _predicate(schema: Schema, condition: Condition) -> Predicate:
    index = schema.position(condition.property)
    prop = schema.properties[index]
    operator = condition.operator
    if operator == "LIKE":
        if prop.type is not ColumnType.TEXT:
            raise QueryError(f"QueryValidationError: LIKE is not supported for '{prop.name}'")
        pattern = _like_pattern(str(condition.values[0]))
        return lambda row: row[index] is not None and pattern.fullmatch(row[index]) is not None
    values = [_literal_value(prop, value) for value in condition.values]
    if operator == "IN":
        allowed = set(values)
        return lambda row: row[index] in allowed
    target = values[0]
    compare = _COMPARISONS[operator]
    return lambda row: row[index] is not None and compare(row[index], target)


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _like_pattern(text: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in text.split("%"))
    return re.compile(".*".join(parts), re.IGNORECASE | re.DOTALL)


# Evaluation -------------------------------------------------------------------------------------


Row = tuple[int, Projection]  # (numeric Id, projection)


def select(plan: Plan, rows: Iterable[Row]) -> list[int]:
    """Ids of the matching rows in result order: ORDERBY keys, ties by Id ascending."""
    matching = [row for row in rows if all(test(row[1]) for test in plan.predicates)]
    matching.sort(key=lambda row: row[0])
    for index, descending in reversed(plan.order):
        matching.sort(key=lambda row, i=index: _sort_key(row[1][i]), reverse=descending)
    return [row[0] for row in matching]


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is not None, value)


def page(plan: Plan, ids: Sequence[int]) -> Sequence[int]:
    start = plan.start_position - 1
    return ids[start : start + plan.max_results]
