"""The warehouse interface, and the upsert logic DuckDB and PostgreSQL share.

A backend supplies only sessions: a transaction that can run SQL and stage columns of text
under a name. Everything that decides what a sync means (newest SyncToken wins, lines are
replaced with their parent, the cursor moves forward with the rows it covers) is here once.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.warehouse import schema
from qbo_pipeline.warehouse.normalise import normalise_batch
from qbo_pipeline.warehouse.schema import STAGE_LINES, STAGE_ROWS, Dialect, Table


class WarehouseError(RuntimeError):
    """The warehouse could not be reached or written; the message never holds a password."""


@dataclass(frozen=True)
class UpsertResult:
    rows_written: int  # entity rows inserted or changed; unchanged replays count 0
    lines_written: int  # line rows inserted for the parents that were written


@runtime_checkable
class Warehouse(Protocol):
    """Where analysts query synced QBO data: schema qbo, one table per catalog entity.

    `query` takes `$1, $2, ...` placeholders on every backend.
    """

    url_for_display: str

    def ensure_schema(self) -> None: ...

    def upsert(
        self,
        entity: Entity,
        realm_id: str,
        raws: Sequence[dict],
        *,
        cursor: datetime | None = None,
    ) -> UpsertResult: ...

    def cursor(self, realm_id: str, entity_name: str) -> datetime | None: ...

    def count(self, table: str, realm_id: str | None = None) -> int: ...

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]: ...

    def close(self) -> None: ...


class Session(Protocol):
    """One open transaction on a backend."""

    def run(self, sql: str, params: Sequence = ()) -> list[tuple]: ...

    def stage(self, name: str, columns: dict[str, list[str | None]]) -> None: ...

    def lock_schema(self) -> None: ...


class SqlWarehouse(ABC):
    """The Warehouse behaviour over any backend that can open a `Session`."""

    dialect: Dialect
    url_for_display: str

    def __init__(self, entities: Sequence[Entity] = ENTITIES) -> None:
        self._entities = tuple(entities)
        self._tables = {table.name: table for table in schema.tables(self._entities)}
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @abstractmethod
    def _session(self) -> AbstractContextManager[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""

    def close(self) -> None:  # noqa: B027 - backends without held resources need nothing
        pass

    def __enter__(self) -> SqlWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url_for_display!r})"

    # --- schema ------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create what is missing and add columns the catalog gained; never drops anything."""
        with self._schema_lock, self._session() as session:
            session.lock_schema()
            session.run(schema.CREATE_SCHEMA)
            existing: dict[str, set[str]] = {}
            for table_name, column_name in session.run(schema.EXISTING_COLUMNS):
                existing.setdefault(table_name, set()).add(column_name)
            for table in self._tables.values():
                have = existing.get(table.name)
                if have is None:
                    session.run(schema.create_table(table, self.dialect))
                    continue
                for column in table.columns:
                    if column.name not in have:
                        session.run(schema.add_column(table, column, self.dialect))
            self._schema_ready = True

    def _ready(self) -> None:
        if not self._schema_ready:
            self.ensure_schema()

    # --- writes ------------------------------------------------------------------------

    def upsert(
        self,
        entity: Entity,
        realm_id: str,
        raws: Sequence[dict],
        *,
        cursor: datetime | None = None,
    ) -> UpsertResult:
        """Write a batch and, in the same transaction, move the entity's cursor forward.

        Normalisation runs before the transaction opens, so a malformed record fails the
        batch without touching the database.
        """
        if cursor is not None and cursor.utcoffset() is None:
            raise ValueError(f"cursor {cursor!r} for {entity.name} must be timezone-aware")
        batch = normalise_batch(entity, realm_id, raws)
        rows_table = schema.entity_table(entity)
        lines_table = schema.line_table(entity)
        self._ready()
        with self._session() as session:
            written: list[str] = []
            if batch.rows:
                session.stage(STAGE_ROWS, schema.text_columns(rows_table, batch.rows))
                upsert = schema.upsert_rows(rows_table, self.dialect)
                written = [row[0] for row in session.run(upsert)]
            lines_written = 0
            if lines_table is not None and entity.lines is not None and written:
                lines_written = self._replace_lines(
                    session, lines_table, entity.lines.parent_key, realm_id, written, batch.lines
                )
            if cursor is not None:
                session.run(
                    schema.ADVANCE_CURSOR,
                    [realm_id, entity.name, cursor.astimezone(UTC).isoformat()],
                )
        return UpsertResult(rows_written=len(written), lines_written=lines_written)

    def _replace_lines(
        self,
        session: Session,
        table: Table,
        parent_key: str,
        realm_id: str,
        written: list[str],
        lines: list[dict],
    ) -> int:
        """Lines follow their parent: a parent that was not rewritten keeps its lines."""
        session.run(schema.delete_lines(table, parent_key, self.dialect), [realm_id, written])
        keep = set(written)
        fresh = [line for line in lines if line[parent_key] in keep]
        if fresh:
            session.stage(STAGE_LINES, schema.text_columns(table, fresh))
            session.run(schema.insert_lines(table, self.dialect))
        return len(fresh)

    # --- reads -------------------------------------------------------------------------

    def cursor(self, realm_id: str, entity_name: str) -> datetime | None:
        self._ready()
        with self._session() as session:
            found = session.run(schema.READ_CURSOR, [realm_id, entity_name])
        if not found or found[0][0] is None:
            return None
        return found[0][0].astimezone(UTC)

    def count(self, table: str, realm_id: str | None = None) -> int:
        known = self._table(table)
        sql = f"SELECT count(*) FROM {known.qualified}"
        params: list[str] = []
        if realm_id is not None:
            sql += " WHERE realm_id = $1"
            params.append(realm_id)
        self._ready()
        with self._session() as session:
            return int(session.run(sql, params)[0][0])

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        self._ready()
        with self._session() as session:
            return session.run(sql, list(params))

    def _table(self, name: str) -> Table:
        bare = name.removeprefix(f"{schema.SCHEMA}.")
        table = self._tables.get(bare)
        if table is None:
            known = ", ".join(sorted(self._tables))
            raise ValueError(f"no warehouse table {name!r}; the tables are {known}")
        return table
