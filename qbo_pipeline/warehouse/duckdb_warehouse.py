"""The embedded DuckDB warehouse: one file, held only while batches arrive, so processes share it.

DuckDB lets one process at a time open a file for writing. Retrying the open while another
process holds it lets two Dagster runs in two processes write the same warehouse in turns.
Closing the file checkpoints it, which costs more than the batch itself (~50 µs an invoice),
so a connection lingers for a moment after a transaction for the next batch of the same
sync, and is let go once idle, or after a few seconds when another process has asked for
the file (a minute when none has). A process asks by touching `<file>.wanted` while it
waits: without that, a long sync would checkpoint every few seconds for nobody (a tenth of
a full sync's time).

Being the only writer also lets it write entity rows without ON CONFLICT, in cheaper steps
whose SQL is here since no other backend runs it (see stored_ids).

A sync's batches of one entity go in one transaction (`bulk`). DuckDB writes an append
that fills whole row groups straight into the file, compressed, instead of logging it and
compressing it again at the next checkpoint: 200,000 invoices committed batch by batch
cost 16 s of CPU, 9 of them in the checkpoint when the file closes; in one transaction,
8 s, and the file closes at once. Nothing is lost that a commit per batch would keep:
the entity's cursor moves only after its last batch.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import duckdb
import pyarrow as pa
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.warehouse.base import Session, SqlWarehouse
from qbo_pipeline.warehouse.errors import WarehouseBusy, WarehouseError
from qbo_pipeline.warehouse.normalise import BATCH, BATCH_LINES
from qbo_pipeline.warehouse.schema import Table, TableColumn, insert_batch, revived, supersedes
from qbo_pipeline.warehouse.sql import Dialect, quote, temp_table_as, text_array

DEFAULT_LOCK_TIMEOUT = 60.0
DEFAULT_LINGER = 2.0  # seconds a connection waits for the next transaction
DEFAULT_MAX_HOLD = 5.0  # seconds after which the file is let go when another process asks
DEFAULT_MAX_HOLD_UNASKED = 60.0  # ...and when nobody asked (a reader that cannot ask)
# After letting the file go for a process that asked, wait this long before opening it
# again: longer than that process's longest wait between tries (0.5 s plus jitter), so it
# gets its turn instead of finding the file taken again.
_YIELD_PAUSE = 0.6
# DuckDB's default is 80% of RAM; a bounded buffer pool keeps a long sync's memory flat.
DEFAULT_MEMORY_LIMIT = "160MB"
# Staged rows go in through Arrow tables of this many rows, so staging 200,000 ids for
# unseen_ids holds one chunk of staged ids in Arrow at a time.
_STAGE_CHUNK = 50_000

# Threads of one process share DuckDB's in-process database instance; concurrent writers
# there would hit write-write conflicts, so a process takes turns per file.
_file_locks: dict[Path, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _file_locks_guard:
        return _file_locks.setdefault(path, threading.Lock())


def is_lock_conflict(error: BaseException) -> bool:
    """Whether DuckDB refused to open the file because another process holds it."""
    if not isinstance(error, duckdb.IOException):
        return False
    message = str(error)
    return "Could not set lock" in message or "Conflicting lock" in message


# --- entity rows without ON CONFLICT ---------------------------------------------------

# DuckDB (2.0) runs ON CONFLICT as a join that reads every column of every stored row,
# raw JSON included: ~0.4 s a batch at 150,000 invoices, for the handful of rows a page
# boundary repeats. A single writer (which DuckDB's file lock guarantees) can do the same
# in cheap steps instead: find the stored ids, replace the superseded rows (a delete and
# an insert: an in-place update of raw JSON makes the next checkpoint rewrite the whole
# column, 2 s for 1,750 invoices out of 200,000), and insert the new ids.

REPLACED = "_qbo_replaced"  # (id, deleted_at, deleted_reason) of the rows a batch supersedes
_STORED_IDS = text_array("$2", Dialect.DUCKDB)  # what stored_ids found, bound as $2


def stored_ids(table: Table) -> str:
    """Ids in BATCH that realm $1 already holds (reads only the key columns)."""
    return f"SELECT id FROM {BATCH} WHERE {_stored(table)}"


def _stored(table: Table) -> str:
    return (
        f"EXISTS (SELECT 1 FROM {table.qualified} AS s WHERE s.realm_id = $1 AND s.id = {BATCH}.id)"
    )


def find_superseded(table: Table) -> str:
    """REPLACED: the stored rows of realm $1 listed in $2 that BATCH supersedes, with the
    deleted_at their new version keeps."""
    select = (
        f"SELECT b.id, {revived('b', 't')} AS deleted_at, "
        f"{revived('b', 't', 'deleted_reason')} AS deleted_reason\n"
        f"FROM {table.qualified} AS t JOIN {BATCH} AS b ON t.id = b.id\n"
        f"WHERE t.realm_id = $1 AND t.id IN (SELECT unnest({_STORED_IDS}))\n"
        f"AND ({supersedes('b', 't', table)})"
    )
    return temp_table_as(REPLACED, select, Dialect.DUCKDB)


def delete_superseded(table: Table) -> str:
    return (
        f"DELETE FROM {table.qualified} WHERE realm_id = $1 AND id IN (SELECT id FROM {REPLACED})"
    )


def insert_superseding(table: Table) -> str:
    """The new versions of the REPLACED rows, for realm $1; returns their ids."""
    names = [c.name for c in table.loaded]
    target = ", ".join(
        quote(name) for name in [*names, "synced_at", "deleted_at", "deleted_reason"]
    )
    source = ", ".join(f"b.{quote(name)}" for name in names if name != "realm_id")
    return (
        f"INSERT INTO {table.qualified} ({target})\n"
        f"SELECT $1, {source}, current_timestamp, r.deleted_at, r.deleted_reason\n"
        f"FROM {BATCH} AS b JOIN {REPLACED} AS r ON r.id = b.id\n"
        "RETURNING id"
    )


def insert_new_rows(table: Table) -> str:
    """Insert the BATCH rows whose ids are not among the stored ones listed in $2, for
    realm $1; returns their ids."""
    return f"{insert_batch(table)}WHERE id NOT IN (SELECT unnest({_STORED_IDS}))\nRETURNING id"


# --- the writer ------------------------------------------------------------------------


class _DuckSession:
    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._connection = connection
        self._shown: dict[str, pa.Table] = {}

    def show(self, name: str, rows: pa.Table, columns: Sequence[TableColumn]) -> None:
        """Make an Arrow table readable as BATCH or BATCH_LINES for this session (no copy).

        Read through DuckDB's replacement scan, which finds a Python object by the name a
        statement uses among the variables of the frame that runs it (`_execute`). A view
        made by register() stays referenced until the transaction ends, even once
        unregistered, so a bulk transaction kept every batch's buffers: 780 MiB at 200,000
        invoices."""
        del columns  # the Arrow columns already have the names and types the SQL reads
        if name not in (BATCH, BATCH_LINES):
            raise ValueError(f"only {BATCH} and {BATCH_LINES} can be shown, not {name}")
        self._shown[name] = rows

    def _execute(self, sql: str, params: Sequence) -> duckdb.DuckDBPyConnection:
        # DuckDB reads these two by their names (see show).
        _qbo_batch = self._shown.get(BATCH)
        _qbo_batch_lines = self._shown.get(BATCH_LINES)
        return self._connection.execute(sql, list(params) if params else None)

    def run(self, sql: str, params: Sequence = ()) -> list[tuple]:
        result = self._execute(sql, params)
        if result.description is None:
            return []
        return result.fetchall()

    def stage(
        self, name: str, columns: dict[str, str], rows: Iterable[tuple], *, keyed: bool = False
    ) -> None:
        del keyed  # DuckDB joins on equality by hashing: no nested loop to steer clear of
        definition = ", ".join(f"{quote(column)} {kind}" for column, kind in columns.items())
        self._connection.execute(f"CREATE TEMP TABLE {name} ({definition})")
        pending = iter(rows)
        while chunk := list(islice(pending, _STAGE_CHUNK)):
            # An Arrow scan is DuckDB's fastest way in from Python (pyarrow builds the
            # columns in C), and spares the process pandas' import and memory. A
            # relation's insert keeps no reference to the chunk once it returns.
            values = zip(*chunk, strict=True)
            frame = pa.table({column: pa.array(next(values)) for column in columns})
            self._connection.from_arrow(frame).insert_into(name)

    def count(self, sql: str, params: Sequence = ()) -> int:
        found = self._execute(sql, params).fetchone()
        return int(found[0]) if found else 0

    def lock_schema(self) -> None:
        """The file lock already makes this process the only writer."""

    def drop_temporary(self) -> None:
        """Temporary tables live as long as the connection, which outlives the transaction."""
        self._shown.clear()
        found = self._connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary"
        ).fetchall()
        for (name,) in found:
            self._connection.execute(f"DROP TABLE {quote(name)}")


class DuckDBWarehouse(SqlWarehouse):
    dialect = Dialect.DUCKDB
    _data_errors = (duckdb.ConversionException,)

    def _write_rows(
        self, session: Session, table: Table, realm_id: str
    ) -> tuple[list[str], list[str]]:
        """A single writer's cheaper equivalent of ON CONFLICT (see stored_ids)."""
        stored = [row[0] for row in session.run(stored_ids(table), [realm_id])]
        updated: list[str] = []
        if stored:
            session.run(find_superseded(table), [realm_id, stored])
            session.run(delete_superseded(table), [realm_id])
            updated = [row[0] for row in session.run(insert_superseding(table), [realm_id])]
        insert = insert_new_rows(table)
        inserted = [row[0] for row in session.run(insert, [realm_id, stored])]
        return updated + inserted, updated

    def __init__(
        self,
        path: Path | str,
        *,
        entities: Sequence[Entity] = ENTITIES,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        linger: float = DEFAULT_LINGER,
        max_hold: float = DEFAULT_MAX_HOLD,
        max_hold_unasked: float = DEFAULT_MAX_HOLD_UNASKED,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        super().__init__(entities)
        self.path = Path(path).absolute()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url_for_display = f"duckdb:///{self.path}"
        self._lock_timeout = lock_timeout
        self._linger = linger
        self._max_hold = max_hold
        self._max_hold_unasked = max_hold_unasked
        self._wanted = self.path.with_name(self.path.name + ".wanted")
        self._memory_limit = memory_limit
        self._lock = _lock_for(self.path)
        self._held: duckdb.DuckDBPyConnection | None = None
        self._held_since = 0.0  # time.time(), comparable with the marker's mtime
        self._release: threading.Timer | None = None
        self._bulk_threads: set[int] = set()
        self._holding = 0  # hold() blocks under way: every session's file is kept
        # A thread in bulk(): its cursor on the held connection, in an open transaction.
        self._open_bulk: dict[int, duckdb.DuckDBPyConnection] = {}
        # A bulk transaction that failed to commit, for its own thread to raise.
        self._lost_bulk: dict[int, Exception] = {}

    def _open(self) -> duckdb.DuckDBPyConnection:
        retrying = Retrying(
            retry=retry_if_exception(is_lock_conflict),
            stop=stop_after_delay(self._lock_timeout),
            wait=wait_exponential_jitter(multiplier=0.01, max=0.5, jitter=0.05),
            before_sleep=lambda _: self._ask_for_file(),
        )
        try:
            connection = retrying(duckdb.connect, str(self.path))
        except RetryError as error:
            raise WarehouseBusy(
                f"DuckDB warehouse {self.path} stayed locked by another process for "
                f"{self._lock_timeout:g} s; is a long-running query holding it open?"
            ) from error.last_attempt.exception()
        self._configure(connection)
        connection.execute("SET checkpoint_threshold = '1GB'")
        self._held_since = time.time()
        return connection

    def _configure(self, connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """Settings every connection of this warehouse shares, the file's and the typers'.

        One thread: the sync's readers and typer already keep both cores busy, and DuckDB's
        own workers only added contention (22.4 s of CPU against 25.4 s for a 60,000-entity
        sync). Background allocator threads hand freed memory back to the system, which
        DuckDB's allocator otherwise keeps resident after a batch."""
        self._use_utc(connection)
        connection.execute(f"SET memory_limit = '{self._memory_limit}'")
        connection.execute("SET threads = 1")
        connection.execute("SET allocator_background_threads = true")
        return connection

    def _ask_for_file(self) -> None:
        """Tell the process holding the file that another one is waiting for it."""
        with contextlib.suppress(OSError):
            self._wanted.touch()

    def _asked_for(self) -> bool:
        try:
            return self._wanted.stat().st_mtime >= self._held_since
        except OSError:
            return False

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Sessions this thread opens inside share one transaction, committed when the
        block ends, or before, when the file is let go for another process."""
        self._ready()  # the schema is committed before any bulk transaction starts
        thread = threading.get_ident()
        self._bulk_threads.add(thread)
        try:
            yield
        finally:
            with self._lock:
                self._bulk_threads.discard(thread)
                self._end_bulk(thread)
                self._raise_if_lost(thread)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the file open between the block's sessions, as between a sync's batches:
        a run's dozens of small reads and commits (cursors, counts, the cursor's commit)
        otherwise each opened and checkpointed the file, 25 ms apiece. The linger and the
        hold limits still let it go for another process."""
        with self._lock:
            self._holding += 1
        try:
            yield
        finally:
            with self._lock:
                self._holding -= 1

    @contextmanager
    def _session(self, *, more_to_come: bool = False) -> Iterator[_DuckSession]:
        with self._lock:
            self._cancel_release()
            thread = threading.get_ident()
            in_bulk = thread in self._bulk_threads
            if in_bulk:
                self._raise_if_lost(thread)
            lingering = self._held is not None
            connection, self._held = self._held or self._open(), None
            try:
                if in_bulk:
                    with self._bulk_session(connection) as session:
                        yield session
                else:
                    with self._own_transaction(connection) as session:
                        yield session
            except BaseException:
                self._close(connection)
                raise
            kept = in_bulk or more_to_come or lingering or self._holding > 0
            self._keep_or_close(connection, kept)

    @staticmethod
    @contextmanager
    def _own_transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[_DuckSession]:
        connection.begin()
        session = _DuckSession(connection)
        try:
            yield session
            session.drop_temporary()
        except BaseException:
            connection.rollback()
            raise
        connection.commit()

    @contextmanager
    def _bulk_session(self, connection: duckdb.DuckDBPyConnection) -> Iterator[_DuckSession]:
        """The calling thread's open transaction, begun on a cursor of its own (the
        threads of a sync each write their own tables)."""
        thread = threading.get_ident()
        cursor = self._open_bulk.get(thread)
        if cursor is None:
            cursor = self._open_bulk[thread] = connection.cursor()
            self._use_utc(cursor)
            cursor.begin()
        session = _DuckSession(cursor)
        try:
            yield session
            session.drop_temporary()
        except BaseException:
            del self._open_bulk[thread]
            with contextlib.suppress(duckdb.Error):
                cursor.rollback()
            cursor.close()
            raise

    @staticmethod
    def _use_utc(connection: duckdb.DuckDBPyConnection) -> None:
        """The time zone is a connection's own: a cursor shares its database's other
        settings but not this one."""
        connection.execute("SET TimeZone = 'UTC'")

    def _end_bulk(self, thread: int) -> None:
        """Commit the thread's bulk transaction, if one is open (the lock is held); a
        failure is the thread's own to raise (`_raise_if_lost`), whichever thread
        committed, so the others' transactions are still committed."""
        cursor = self._open_bulk.pop(thread, None)
        if cursor is None:
            return
        try:
            cursor.commit()
        except duckdb.Error as error:
            self._lost_bulk[thread] = error
        finally:
            cursor.close()

    def _raise_if_lost(self, thread: int) -> None:
        """A thread whose batches failed to commit must not go on as if they were
        written: its entity's cursor would move past them."""
        if (error := self._lost_bulk.pop(thread, None)) is not None:
            raise WarehouseError(
                f"DuckDB warehouse {self.path}: committing this sync's batches failed "
                f"({error}); run the sync again"
            ) from error

    def _close(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Commit every open bulk transaction, then let the file go (the lock is held)."""
        for thread in list(self._open_bulk):
            self._end_bulk(thread)
        connection.close()

    def _keep_or_close(self, connection: duckdb.DuckDBPyConnection, more_to_come: bool) -> None:
        """Keep the file for the next transaction, unless others have waited long enough.

        `more_to_come`: a batch, or a read between batches (the sync's cursor, counts and
        Ids). Closing the file checkpoints it, and a close after each such read cost 2 to
        3.5 s of a 60,000-entity sync's CPU. A lone read lets the file go at once."""
        held_for = time.time() - self._held_since
        asked = held_for >= self._max_hold and self._asked_for()
        overdue = asked or held_for >= self._max_hold_unasked
        if not more_to_come or self._linger <= 0 or overdue:
            self._close(connection)
            if asked:
                time.sleep(_YIELD_PAUSE)
            return
        self._held = connection
        self._release = threading.Timer(self._linger, self._let_go, args=(connection,))
        self._release.daemon = True
        self._release.start()

    def _let_go(self, connection: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            if self._held is connection:
                self._held = None
                self._close(connection)

    def _cancel_release(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def close(self) -> None:
        with self._lock:
            self._cancel_release()
            held, self._held = self._held, None
            if held is not None:
                self._close(held)
