"""The warehouse interface, and the upsert logic DuckDB and PostgreSQL share.

A backend supplies sessions: a transaction that can run SQL, stage rows under a name and
show a typed batch's Arrow tables as BATCH and BATCH_LINES. It may write entity rows its
own way, as DuckDB does. What a sync means (the newest SyncToken wins, lines are replaced with their
parent, the cursor moves forward with the rows it covers) is decided once, here and in the
SQL it runs (schema.py, normalise.py).
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol, runtime_checkable

import pyarrow as pa

from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.quickbooks.reports import ReportLine
from qbo_pipeline.warehouse import derived, evolution, report_tables, schema
from qbo_pipeline.warehouse.errors import UnfitColumn, UnfitValue
from qbo_pipeline.warehouse.normalise import (
    BATCH,
    BATCH_LINES,
    describe_bad_value,
    describe_value,
    first_unfit,
)
from qbo_pipeline.warehouse.records import Records, record_typer
from qbo_pipeline.warehouse.schema import DELETIONS, SEEN, Table, TableColumn
from qbo_pipeline.warehouse.sql import Dialect

WAREHOUSE_URL_VARIABLE = "QBO_WAREHOUSE_URL"


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
        raws: Sequence[dict] | Records,
        *,
        cursor: datetime | None = None,
    ) -> UpsertResult: ...

    def apply_deletions(
        self,
        entity: Entity,
        realm_id: str,
        deletions: Sequence[tuple[str, datetime]],
        *,
        cursor: datetime | None = None,
        reason: str = "deleted",
    ) -> int: ...

    def unseen_ids(self, entity: Entity, realm_id: str, seen_ids: Iterable[str]) -> list[str]: ...

    def bulk(self) -> AbstractContextManager[None]:
        """What this thread writes inside may go in one transaction, committed when the
        block ends, where the backend writes a large one more cheaply (DuckDB)."""
        ...

    def hold(self) -> AbstractContextManager[None]:
        """Sessions inside come one after another (a run's reads and writes): a backend
        that opens something per session may keep it between them."""
        ...

    def cursor(self, realm_id: str, entity_name: str) -> datetime | None: ...

    def replace_report(
        self,
        realm_id: str,
        report: str,
        period: tuple[date, date],
        raw: dict,
        lines: Sequence[ReportLine],
    ) -> int: ...

    def count(self, table: str, realm_id: str | None = None) -> int: ...

    def realm_rows(self, realm_id: str) -> dict[str, int]: ...

    def purge_realm(self, realm_id: str) -> dict[str, int]: ...

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]: ...

    def close(self) -> None: ...


class Session(Protocol):
    """One open transaction on a backend."""

    def run(self, sql: str, params: Sequence = ()) -> list[tuple]: ...

    def stage(
        self, name: str, columns: dict[str, str], rows: Iterable[tuple], *, keyed: bool = False
    ) -> None:
        """Load rows into a temporary table of the given columns (name: BIGINT or TEXT).

        `rows` may be a generator; backends consume it in bounded chunks. `keyed`: the
        rows will be looked up by their first column (an entity's Id), which a backend
        may index for it; a batch read whole by a scan is not keyed.
        """

    def show(self, name: str, rows: pa.Table, columns: Sequence[TableColumn]) -> None:
        """Make typed rows readable under `name` for the rest of the transaction.

        `rows` holds `columns`, in order and already of their types (records.py): the
        backend moves them, it does not type them.
        """

    def count(self, sql: str, params: Sequence = ()) -> int:
        """Run a write and return how many rows it touched, without fetching them."""

    def lock_schema(self) -> None: ...


class SqlWarehouse(ABC):
    """The Warehouse behaviour over any backend that can open a `Session`."""

    dialect: Dialect
    url_for_display: str

    def __init__(self, entities: Sequence[Entity] = ENTITIES) -> None:
        self._entities = tuple(entities)
        tables = [
            *schema.tables(self._entities),
            *report_tables.REPORT_TABLES,
            derived.VIEW_DIGESTS,
        ]
        self._tables = {table.name: table for table in tables}
        self._sources = evolution.sources(self._entities)
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @abstractmethod
    def _session(self, *, more_to_come: bool = False) -> AbstractContextManager[Session]:
        """A transaction: committed when the block ends, rolled back if it raises.

        `more_to_come` says a sync is writing batches, so a backend may keep its
        connection for the next one.
        """

    def close(self) -> None:  # noqa: B027 - backends without held resources need nothing
        pass

    def bulk(self) -> AbstractContextManager[None]:
        """A transaction per write, unless the backend gains by fewer (Warehouse.bulk)."""
        return nullcontext()

    def hold(self) -> AbstractContextManager[None]:
        """Nothing to keep, unless the backend opens something per session (Warehouse.hold)."""
        return nullcontext()

    def __enter__(self) -> SqlWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url_for_display!r})"

    # --- schema ------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create what is missing, migrate a table whose catalog columns changed (added or
        retyped, then filled from raw: evolution.py) and bring the comments in line with
        the catalog's descriptions; never drops anything.

        One transaction: a migration the stored data refuses leaves every table as it was,
        and the next run tries again.
        """
        with self._schema_lock:
            try:
                with self._session() as session:
                    self._ensure_tables(session)
                    self._ensure_views(session)
            except _MigrationFailed as failed:
                raise self._unfit_column(failed.change, failed.error) from failed.error
            self._schema_ready = True

    def _ensure_tables(self, session: Session) -> None:
        """Each table created, or brought to the catalog, as the database now holds it."""
        session.lock_schema()
        session.run(schema.CREATE_SCHEMA)
        comments: dict[str, dict[str | None, str | None]] = {}
        types: dict[str, dict[str, str]] = {}
        others: set[str] = set()  # tables another role owns: their comments stay
        for table_name, column_name, comment, ours, stored_type in session.run(
            schema.EXISTING_COLUMNS[self.dialect]
        ):
            comments.setdefault(table_name, {})[column_name] = comment
            if column_name is not None:
                types.setdefault(table_name, {})[column_name] = stored_type
            if not ours:
                others.add(table_name)
        for table in self._tables.values():
            if table.name not in comments:
                session.run(schema.create_table(table, self.dialect))
            else:
                self._migrate(session, table, types.get(table.name, {}))
            if table.name not in others:
                for statement in schema.comments_to_set(table, comments.get(table.name, {})):
                    session.run(statement)

    def _migrate(self, session: Session, table: Table, stored: dict[str, str]) -> None:
        """Bring an existing table to the catalog's columns (evolution.plan); a value its
        new type cannot hold is named once the transaction has been rolled back."""
        change = evolution.plan(table, self._sources.get(table.name), stored, self.dialect)
        try:
            for statement in change.statements:
                session.run(statement)
        except self._data_errors as error:
            raise _MigrationFailed(change, error) from error

    def _unfit_column(self, change: evolution.Change, error: Exception) -> UnfitColumn:
        """The one-line error for a migration the stored data refused: its first value
        that does not cast, found as the load finds a batch's (_naming_bad_values)."""
        source = change.source
        assert source is not None
        with self._session() as session:
            for column in change.filled:
                rows = session.run(evolution.stored_texts(source, column, self.dialect))
                index = first_unfit(column, [row[-1] for row in rows])
                if index is not None:
                    where = source.place(rows[index][:-1])
                    found = describe_value(source.entity, where, column, rows[index][-1])
                    return UnfitColumn(evolution.refusal(change, column.name, found))
        # The database refused a value this diagnosis casts: its own words, first line.
        names = ", ".join(column.name for column in change.filled)
        reason = f"{source.entity.name}: {str(error).strip().splitlines()[0]}"
        return UnfitColumn(evolution.refusal(change, names, reason))

    def _ensure_views(self, session: Session) -> None:
        """Create the views read out of raw JSON (derived.VIEWS) where missing or defined
        otherwise than the catalog now says, except those another role owns: their owner
        keeps them."""
        owned = dict(session.run(derived.existing(self.dialect)))
        created = dict(session.run(derived.READ_DIGESTS))
        for view in derived.VIEWS:
            create = derived.create_view(view, self._entities, self.dialect)
            if create is None or not owned.get(view.name, True):
                continue
            digest = derived.digest(create)
            if view.name in owned and created.get(view.name) == digest:
                continue
            session.run(create)
            for statement in derived.comments(view):
                session.run(statement)
            session.run(derived.FORGET_DIGEST, [view.name])
            session.run(derived.KEEP_DIGEST, [view.name, digest])

    def _ready(self) -> None:
        if not self._schema_ready:
            self.ensure_schema()

    # --- writes ------------------------------------------------------------------------

    # Errors a backend raises when a staged value does not fit its column's type.
    _data_errors: tuple[type[Exception], ...] = ()

    def _load_batch(self, session: Session, batch: Records) -> None:
        """Make BATCH and BATCH_LINES hold the batch's typed records, one version of each
        id (PostgreSQL cannot update one key twice in a statement)."""
        entity = batch.entity
        batch = Records.joined(entity, [batch])
        session.show(BATCH, batch.rows, schema.entity_table(entity).loaded[1:])
        lines = schema.line_table(entity)
        if batch.lines is not None and lines is not None:
            self._show_lines(session, batch.lines, lines)

    def _show_lines(self, session: Session, lines: pa.Table, table: Table) -> None:
        """BATCH_LINES: the lines as typed, each with its raw JSON."""
        session.show(BATCH_LINES, lines, table.loaded[1:])

    def _insert_lines(self, entity: Entity, table: Table) -> str:
        """The statement writing the BATCH_LINES of the parents listed in $2, for realm $1."""
        return schema.insert_lines(table, self.dialect)

    def _write_rows(
        self, session: Session, table: Table, realm_id: str
    ) -> tuple[list[str], list[str]]:
        """Write BATCH into `table` where it supersedes what is stored.

        Returns the ids written, and those of them that were stored before (whose old
        lines must go); a backend that cannot tell the two apart returns the ids twice.
        """
        written = [row[0] for row in session.run(schema.upsert_rows(table), [realm_id])]
        return written, written

    def upsert(
        self,
        entity: Entity,
        realm_id: str,
        raws: Sequence[dict] | Records,
        *,
        cursor: datetime | None = None,
    ) -> UpsertResult:
        """Write a batch and, in the same transaction, move the entity's cursor forward.

        Records are typed when they are read (records.py); a value that does not cast
        writes nothing of the batch and leaves the cursor, and the error then names the
        entity, field and value.
        """
        _check_aware(cursor, entity.name)
        batch = raws if isinstance(raws, Records) else record_typer().records(entity, raws)
        if batch.entity.name != entity.name:
            raise ValueError(f"a batch typed for {batch.entity.name} cannot load {entity.name}")
        self._ready()
        with (
            self._naming_bad_values(batch),
            self._session(more_to_come=True) as session,
        ):
            written: list[str] = []
            replaced: list[str] = []
            if batch.ids:
                self._load_batch(session, batch)
                table = schema.entity_table(entity)
                written, replaced = self._write_rows(session, table, realm_id)
            lines_written = 0
            if entity.lines is not None and written:
                lines_written = self._replace_lines(session, entity, realm_id, written, replaced)
            self._advance(session, realm_id, entity, cursor)
        return UpsertResult(rows_written=len(written), lines_written=lines_written)

    @contextmanager
    def _naming_bad_values(self, batch: Records) -> Iterator[None]:
        """Turn the backend's error for a value its column cannot hold into one naming the
        entity, field and value (normalise.describe_bad_value)."""
        try:
            yield
        except self._data_errors as error:
            described = describe_bad_value(batch.entity, batch.texts)
            if described is None:
                raise
            raise UnfitValue(described) from error

    def _replace_lines(
        self,
        session: Session,
        entity: Entity,
        realm_id: str,
        written: list[str],
        replaced: list[str],
    ) -> int:
        """Lines follow their parent: a parent that was not rewritten keeps its lines."""
        assert entity.lines is not None
        table = schema.line_table(entity)
        assert table is not None
        if replaced:
            delete = schema.delete_lines(table, entity.lines.parent_key, self.dialect)
            session.run(delete, [realm_id, replaced])
        return session.count(self._insert_lines(entity, table), [realm_id, written])

    def _advance(
        self, session: Session, realm_id: str, entity: Entity, cursor: datetime | None
    ) -> None:
        if cursor is not None:
            session.run(
                schema.ADVANCE_CURSOR, [realm_id, entity.name, cursor.astimezone(UTC).isoformat()]
            )

    # --- deletes -----------------------------------------------------------------------

    def apply_deletions(
        self,
        entity: Entity,
        realm_id: str,
        deletions: Sequence[tuple[str, datetime]],
        *,
        cursor: datetime | None = None,
        reason: str = "deleted",
    ) -> int:
        """Soft-delete rows QBO reported deleted (CDC, webhooks); returns the rows marked.

        Transactions are deleted and voided; a name-list row is only ever merged away
        (a webhook says which). A row keeps the first deletion instant recorded for it.
        Lines stay as they were:
        invoice_lines has no deleted_at, and analysts join through invoices.deleted_at.
        The cursor moves in the same transaction, so a crash cannot skip a deletion.
        """
        _check_aware(cursor, entity.name)
        if reason not in schema.DELETION_REASONS:
            raise ValueError(f"reason must be one of {schema.DELETION_REASONS}, not {reason!r}")
        if reason != "merged":
            _require_transaction(entity, f"apply_deletions ({reason})")
        instants: dict[str, str] = {}
        for entity_id, instant in deletions:
            _check_aware(instant, entity.name)
            instants.setdefault(str(entity_id), instant.astimezone(UTC).isoformat())
        table = schema.entity_table(entity)
        self._ready()
        with self._session() as session:
            marked = 0
            if instants:
                rows = ((i, at, reason) for i, at in instants.items())
                columns = {"id": "TEXT", "deleted_at": "TEXT", "reason": "TEXT"}
                session.stage(DELETIONS, columns, rows, keyed=True)
                marked = session.count(schema.mark_deleted(table), [realm_id])
            self._advance(session, realm_id, entity, cursor)
        return marked

    def unseen_ids(self, entity: Entity, realm_id: str, seen_ids: Iterable[str]) -> list[str]:
        """Live stored rows of the realm that a full re-read did not return.

        Each was deleted in QBO or changed while the read ran (and moved past its bound);
        the engine asks QBO which, by Id, before marking any deleted. Name-list entities
        are never hard-deleted (they turn Active=false): asking for one raises ValueError.
        The ids are streamed into a temporary table; none is held in a Python list.
        """
        _require_transaction(entity, "reconcile")
        table = schema.entity_table(entity)
        self._ready()
        with self._session() as session:
            ids = ((str(entity_id),) for entity_id in seen_ids)
            session.stage(SEEN, {"id": "TEXT"}, ids, keyed=True)
            rows = session.run(schema.select_unseen(table), [realm_id])
        return sorted(row[0] for row in rows)

    # --- a company's data ---------------------------------------------------------------

    def _realm_tables(self) -> list[Table]:
        return [
            table
            for table in self._tables.values()
            if any(column.name == schema.REALM_ID.name for column in table.columns)
        ]

    def realm_rows(self, realm_id: str) -> dict[str, int]:
        """The company's rows per table that has any: what `purge_realm` would delete."""
        self._ready()
        found = {}
        with self._session() as session:
            for table in self._realm_tables():
                sql = f"SELECT count(*) FROM {table.qualified} WHERE realm_id = $1"
                if rows := int(session.run(sql, [realm_id])[0][0]):
                    found[table.name] = rows
        return found

    def purge_realm(self, realm_id: str) -> dict[str, int]:
        """Delete every row of the company, its cursors included, in one transaction (a
        failure leaves everything); returns the rows deleted per table that had any."""
        self._ready()
        deleted: dict[str, int] = {}
        with self._session() as session:
            for table in self._realm_tables():
                count = session.count(
                    f"DELETE FROM {table.qualified} WHERE realm_id = $1", [realm_id]
                )
                if count:
                    deleted[table.name] = count
        return deleted

    # --- reports -----------------------------------------------------------------------

    def replace_report(
        self,
        realm_id: str,
        report: str,
        period: tuple[date, date],
        raw: dict,
        lines: Sequence[ReportLine],
    ) -> int:
        """Store one report period as QBO answered it and flattened, replacing what was
        stored of that period; returns the lines written."""
        self._ready()
        start, end = period
        head = [realm_id, report, start, end]
        with self._session() as session:
            for table in report_tables.REPORT_TABLES:
                session.run(report_tables.delete_period(table), head[:3])
            session.run(
                report_tables.insert(report_tables.REPORTS_TABLE),
                [*head, datetime.now(UTC), json.dumps(raw)],
            )
            insert = report_tables.insert(report_tables.REPORT_LINES_TABLE)
            for line in lines:
                cells = [line.row_index, line.column_index, line.section_path, line.row_type]
                cells += [line.account_id, line.label, line.column_title, line.amount]
                session.run(insert, [*head, *cells])
        return len(lines)

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

    def rows_in_qbo(self, entity: Entity, realm_id: str, bound: datetime) -> int:
        """The realm's rows created before `bound` that QBO still counts (see
        schema.still_in_qbo): what `COUNT(*)` with `created_before` must equal."""
        table = schema.entity_table(entity).qualified
        sql = (
            f"SELECT count(*) FROM {table} WHERE realm_id = $1 AND created_at < $2 "
            f"AND {schema.still_in_qbo(entity)}"
        )
        return int(self.query(sql, [realm_id, bound])[0][0])

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


class _MigrationFailed(Exception):
    """Carries a migration the database refused out of its transaction, which has to be
    rolled back before anything can be read to name the value."""

    def __init__(self, change: evolution.Change, error: Exception) -> None:
        super().__init__(str(error))
        self.change = change
        self.error = error


def _check_aware(instant: datetime | None, entity_name: str) -> None:
    if instant is not None and instant.utcoffset() is None:
        raise ValueError(f"instant {instant!r} for {entity_name} must be timezone-aware")


def _require_transaction(entity: Entity, operation: str) -> None:
    if entity.is_name_list:
        raise ValueError(
            f"{operation}: {entity.name} is a name-list entity; QBO never hard-deletes those "
            "(a delete sets Active=false, which the next sync writes)"
        )
