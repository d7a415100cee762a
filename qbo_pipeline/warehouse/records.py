"""Records of one entity as the warehouse takes them: typed by DuckDB straight from the
bytes QBO sent, as Arrow tables, with no Python object per record.

A page of 1000 invoices is 2 MB of JSON. Parsing it into dictionaries, encoding each back
to text and having a database parse that text again cost ~130 µs of CPU an invoice;
DuckDB splitting and typing the page in one statement costs ~50 µs, and holds the page
as Arrow columns a fraction of the dictionaries' size. Python keeps only each page's Ids
(for the seams between pages and for reconciliation) and its first and last stamps.

Records built from dictionaries (CDC answers, tests) go through the same SQL as text.
A record the fast path cannot take (no usable Id, a value that does not cast, a body
that is not JSON) is looked at again record by record, to name it in the error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.warehouse.errors import UnfitValue
from qbo_pipeline.warehouse.normalise import (
    BATCH,
    LINES,
    describe_bad_value,
    encode_batch,
    lines_select,
    records_select,
)
from qbo_pipeline.warehouse.sql import literal, quote

# Each typing database's buffer pool: it types one page at a time (~30 MB at its peak).
TYPER_MEMORY_LIMIT = "160MB"
_TEXTS = "_qbo_texts"
_BODY = "_qbo_body"


def _floor(instant: datetime | None) -> datetime | None:
    return instant.replace(microsecond=0) if instant is not None else None


@dataclass(frozen=True)
class Records:
    """Typed records of one entity (`rows`, raw JSON included) and their lines, in the
    order QBO returned them."""

    entity: Entity
    rows: pa.Table
    lines: pa.Table | None  # the line table's columns but realm_id (normalise.lines_select)
    ids: list[str]

    @classmethod
    def empty(cls, entity: Entity) -> Records:
        return cls(entity, pa.table({"id": pa.array([], pa.string())}), None, [])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def texts(self) -> list[str]:
        """Each record's JSON text, for a backend that types records itself."""
        return [] if not self.ids else self.rows.column("raw").to_pylist()

    def stamp(self, index: int) -> datetime | None:
        """The LastUpdatedTime of a record, to the second."""
        return _floor(self.rows.column("updated_at")[index].as_py())

    @property
    def first(self) -> datetime | None:
        return self.stamp(0) if self.ids else None

    @property
    def last(self) -> datetime | None:
        return self.stamp(len(self.ids) - 1) if self.ids else None

    def before(self, until: datetime) -> Records:
        """The records stamped before `until` (a whole second), or without a stamp."""
        if not self.ids:
            return self
        stamps = self.rows.column("updated_at")
        early = pc.fill_null(pc.less(stamps, pa.scalar(until, stamps.type)), True)
        return self._keep(pc.indices_nonzero(early).to_pylist())

    def without(self, ids: Iterable[str]) -> Records:
        """The records less those whose Id is in `ids` (a seam the page before handed over)."""
        dropped = set(ids).intersection(self.ids)
        if not dropped:
            return self
        return self._keep([i for i, entity_id in enumerate(self.ids) if entity_id not in dropped])

    def _keep(self, indices: list[int]) -> Records:
        if len(indices) == len(self.ids):
            return self
        rows = self.rows.take(pa.array(indices, pa.int64()))
        ids = [self.ids[i] for i in indices]
        lines = self.lines
        if lines is not None:
            assert self.entity.lines is not None
            parents = lines.column(self.entity.lines.parent_key)
            kept = pc.is_in(parents, value_set=pa.array(ids, pa.string()))
            lines = lines.filter(kept)
        return Records(self.entity, rows, lines, ids)

    @classmethod
    def joined(cls, entity: Entity, parts: Sequence[Records]) -> Records:
        """One batch of several pages, holding the newest version of each record: the
        higher SyncToken, else the one read later (pages overlap, and a window read again
        repeats rows)."""
        parts = [part for part in parts if part.ids]
        if not parts:
            return cls.empty(entity)
        parts = _newest_only(parts)
        rows = pa.concat_tables([part.rows for part in parts])
        lines = None
        if entity.lines is not None:
            lines = pa.concat_tables([part.lines for part in parts if part.lines is not None])
        return cls(entity, rows, lines, [i for part in parts for i in part.ids])


def _newest_only(parts: list[Records]) -> list[Records]:
    """Each part less the records a newer version elsewhere in the batch supersedes."""
    ids = [entity_id for part in parts for entity_id in part.ids]
    if len(set(ids)) == len(ids):
        return parts
    newest: dict[str, tuple[int, int, int]] = {}  # id -> (token, part, row) kept
    for part_index, part in enumerate(parts):
        tokens = part.rows.column("sync_token").to_pylist()
        for row, (entity_id, token) in enumerate(zip(part.ids, tokens, strict=True)):
            token = -1 if token is None else token
            held = newest.get(entity_id)
            if held is None or token >= held[0]:
                newest[entity_id] = (token, part_index, row)
    kept: list[list[int]] = [[] for _ in parts]
    for _, part_index, row in newest.values():
        kept[part_index].append(row)
    return [part._keep(sorted(rows)) for part, rows in zip(parts, kept, strict=True)]


def _newest_of_each(rows: Sequence[dict]) -> Sequence[dict]:
    """One version of each Id, the higher SyncToken, else the later (a page of QBO's
    holds each once; records built by hand may not)."""
    newest: dict[object, tuple[int, int]] = {}
    for index, row in enumerate(rows):
        entity_id = row.get("Id") if isinstance(row, dict) else None
        if not isinstance(entity_id, str | int):
            return rows  # encode_batch names the record
        token = _token(row.get("SyncToken"))
        held = newest.get(entity_id)
        if held is None or token >= held[0]:
            newest[entity_id] = (token, index)
    if len(newest) == len(rows):
        return rows
    return [rows[index] for _, index in sorted(newest.values(), key=lambda kept: kept[1])]


def _token(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return -1


def _usable_id(entity_id: object) -> bool:
    """What the fast path may take as an Id; anything else is looked at record by record
    (encode_batch names what is wrong)."""
    return (
        isinstance(entity_id, str)
        and entity_id != ""
        and entity_id[0] not in "{["
        and entity_id not in ("true", "false")
    )


class RecordTyper:
    """Types records in in-memory DuckDB databases of its own, one per thread at work, so
    reader threads type their pages side by side (DuckDB releases the GIL)."""

    def __init__(
        self, memory_limit: str = TYPER_MEMORY_LIMIT, concurrency: int | None = None
    ) -> None:
        self._config = {"threads": 1, "memory_limit": memory_limit}
        self._free: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        # Typing a page takes ~30 MB while it runs: more pages at once than cores add
        # memory, not speed (ten reader threads typing at once held ~280 MiB in DuckDB).
        self._turns = threading.BoundedSemaphore(concurrency or os.cpu_count() or 2)

    def page(self, entity: Entity, body: bytes) -> Records:
        """The records of a query answer's body (`QueryResponse.<Entity>`).

        Raises ValueError when the body is not JSON (a response cut short)."""
        return self._page(entity, body, with_time=False)[0]

    def page_and_time(self, entity: Entity, body: bytes) -> tuple[Records, datetime | None]:
        """The records of a query answer, and its envelope's `time`: QBO's clock."""
        return self._page(entity, body, with_time=True)

    def _page(
        self, entity: Entity, body: bytes, *, with_time: bool
    ) -> tuple[Records, datetime | None]:
        # One parse of the body, each record written out once as its own JSON text: a
        # json_extract and a cast to JSON[] parsed and wrote the whole page twice (5 µs of
        # an invoice's 62).
        envelope = literal(orjson.dumps({"QueryResponse": {entity.name: "JSON[]"}}).decode())
        split = (
            f"SELECT unnest(from_json(body, {envelope}).QueryResponse.{quote(entity.name)}) "
            f"AS raw FROM {_BODY}"
        )
        try:
            with self._connection() as connection:
                # The body goes in as an Arrow string over the response's own bytes: bound
                # as a parameter instead, 2 MB cost 10 ms of CPU, holding the GIL.
                connection.register(_BODY, _arrow_text(body))
                try:
                    records = self._typed(connection, entity, split)
                    stamp = self._server_time(connection) if with_time else None
                finally:
                    connection.unregister(_BODY)
        except (duckdb.Error, _Unusable):
            document = orjson.loads(body)  # ValueError for a body cut short
            stamp = document.get("time") if isinstance(document, dict) else None
            records = self.records(entity, _entities(document, entity))
            return records, parse_instant(stamp) if isinstance(stamp, str) else None
        return records, stamp

    @staticmethod
    def _server_time(connection: duckdb.DuckDBPyConnection) -> datetime | None:
        found = connection.execute(
            f"SELECT json_extract_string(body, '$.time') FROM {_BODY}"
        ).fetchall()  # all: a result left open would block the connection's next use
        stamp = found[0][0] if found else None
        return parse_instant(stamp) if isinstance(stamp, str) else None

    def records(self, entity: Entity, rows: Sequence[dict]) -> Records:
        """Records from dictionaries, the newest version of each; a record without a usable
        Id raises UnfitValue."""
        return self.texts(entity, encode_batch(entity, _newest_of_each(rows)))

    def texts(self, entity: Entity, texts: Sequence[str]) -> Records:
        """Records from their JSON texts (encode_batch's); raises UnfitValue naming the
        first value that does not type."""
        if not texts:
            return Records.empty(entity)
        split = f"SELECT raw FROM {_TEXTS}"
        with self._connection() as connection:
            connection.register(_TEXTS, pa.table({"raw": pa.array(texts, pa.string())}))
            try:
                return self._typed(connection, entity, split)
            except (duckdb.Error, _Unusable) as error:
                described = describe_bad_value(entity, texts)
                if described is None:
                    raise
                raise UnfitValue(described) from error
            finally:
                connection.unregister(_TEXTS)

    def close(self) -> None:
        with self._lock:
            for connection in self._free:
                connection.close()
            self._free.clear()

    def _typed(self, connection: duckdb.DuckDBPyConnection, entity: Entity, split: str) -> Records:
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {BATCH} AS {records_select(entity, split)}"
        )
        try:
            if entity.lines is None:
                rows = connection.sql(f"SELECT * FROM {BATCH}").to_arrow_table()
                lines = None
            else:
                rows = connection.sql(f"SELECT * EXCLUDE ({LINES}) FROM {BATCH}").to_arrow_table()
                lines = connection.sql(lines_select(entity)).to_arrow_table()
        finally:
            connection.execute(f"DROP TABLE {BATCH}")
        ids = rows.column("id").to_pylist()
        if not all(_usable_id(entity_id) for entity_id in ids):
            raise _Unusable
        return Records(entity, rows, lines, ids)

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._turns:
            yield from self._pooled()

    def _pooled(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            connection = self._free.pop() if self._free else None
        if connection is None:
            # A database each: connections of one database share its catalog, and two
            # threads creating their temporary tables there conflict.
            connection = duckdb.connect(config=self._config)
            connection.execute("SET TimeZone = 'UTC'")
        try:
            yield connection
        finally:
            with self._lock:
                self._free.append(connection)


class _Unusable(Exception):
    """A record the fast path cannot take; the slow path names what is wrong with it."""


def _arrow_text(body: bytes) -> pa.Table:
    """A one-row table whose string is `body`, without copying it (DuckDB checks UTF-8)."""
    offsets = pa.array([0, len(body)], pa.int32()).buffers()[1]
    return pa.table({"body": pa.StringArray.from_buffers(1, offsets, pa.py_buffer(body))})


def _entities(document: object, entity: Entity) -> list[dict]:
    if not isinstance(document, dict):
        raise ValueError("the response is not a JSON object")
    response = document.get("QueryResponse") or {}
    rows = response.get(entity.name, []) if isinstance(response, dict) else []
    return rows if isinstance(rows, list) else [rows]


_default: RecordTyper | None = None
_default_lock = threading.Lock()


def record_typer() -> RecordTyper:
    """The process's typer (its in-memory databases live as long as the process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RecordTyper()
        return _default
