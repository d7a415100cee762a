"""The extraction engine: reads an entity's changed rows in concurrent time ranges within
the realm's limits, streams bounded batches into the warehouse, and applies deletes.

Each range is read with keyset paging on MetaData.LastUpdatedTime, so rows updated or
deleted while the sync runs cannot make it skip another row (offset paging would). The
run's upper bound is QBO's own clock at the start; the cursor becomes that instant and is
committed with the last batch, in the same transaction, so a run that dies part-way
leaves the old cursor and the next run reads those rows again (upserts make that
harmless). Deleted transactions come from CDC, or from a reconciliation after a full read
(see `deletes`); they are marked in the transaction that commits the cursor. Memory is
bounded by the queue between fetchers and writer and by the batch size, not by the size
of the company (a full read of transactions also keeps the set of Ids it has seen).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from qbo_pipeline.quickbooks.catalog import Entity, Kind
from qbo_pipeline.quickbooks.client import QueryPage, QuickBooksClient
from qbo_pipeline.quickbooks.query import MAX_RESULTS, select_page, sync_filter
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.deletes import (
    Deletion,
    cdc_reaches,
    confirm_missing,
    deletions_from_cdc,
)
from qbo_pipeline.sync.ranges import SECOND, RangeQueue, even_split, floor_second
from qbo_pipeline.warehouse import PreparedBatch, Warehouse, encode_batch

log = logging.getLogger(__name__)

# Rows changed within this margin before the cursor are read again: equal-second updates
# straddle runs, and QBO's servers need not agree to the second.
DEFAULT_OVERLAP = timedelta(minutes=5)
_DONE = object()


@dataclass(frozen=True)
class SyncOptions:
    full: bool = False
    page_size: int = MAX_RESULTS
    batch_rows: int = 5000
    overlap: timedelta = DEFAULT_OVERLAP


@dataclass(frozen=True)
class EntitySyncResult:
    entity: str
    realm_id: str
    mode: str  # "full" or "incremental"
    rows: int  # rows written (new or changed)
    lines: int
    deleted: int  # rows newly marked deleted
    pages: int  # query requests made
    fetched: int  # rows received, duplicates at page boundaries included
    seconds: float
    cursor: datetime | None


def _stamp(row: dict) -> datetime:
    return floor_second(parse_instant(row["MetaData"]["LastUpdatedTime"]))


def _version(row: dict) -> tuple[object, object]:
    return row.get("Id"), row.get("SyncToken")


def _last_second(page: list[dict], second: datetime) -> Iterator[dict]:
    """The rows at the end of a page (ordered by stamp) stamped `second`."""
    for row in reversed(page):
        if _stamp(row) != second:
            return
        yield row


@dataclass(frozen=True)
class _Page:
    """A page as the writer needs it: each record's Id and JSON text.

    Encoding on the reader's thread frees the parsed dictionaries (several times the
    size of their text) before the page waits in the queue.
    """

    ids: list[str]
    texts: list[str]

    @classmethod
    def of(cls, entity: Entity, rows: list[dict]) -> _Page:
        texts = encode_batch(entity, rows)  # checks every record has an Id
        return cls([row["Id"] for row in rows], texts)


class _Fetcher:
    """Reads ranges on worker threads and hands pages to the writer through a bounded queue."""

    def __init__(self, client: QuickBooksClient, entity: Entity, page_size: int) -> None:
        self.client = client
        self.entity = entity
        self.page_size = page_size
        self.pages = 0
        self._pages_lock = threading.Lock()
        self.stop = threading.Event()

    def probe(self, since: datetime | None) -> QueryPage:
        """The oldest matching row (where the ranges start) and QBO's clock (where they end)."""
        with self._pages_lock:
            self.pages += 1
        where = sync_filter(self.entity, since)
        return self.client.query(select_page(self.entity, where, start_position=1, max_results=1))

    def query(self, where: str, start_position: int = 1) -> list[dict]:
        statement = select_page(
            self.entity, where, start_position=start_position, max_results=self.page_size
        )
        with self._pages_lock:
            self.pages += 1
        return self.client.query(statement).entities

    def read_ranges(self, ranges: RangeQueue, out: queue.Queue) -> None:
        try:
            while not self.stop.is_set() and (active := ranges.take()) is not None:
                try:
                    self._read_range(ranges, active, out)
                finally:
                    ranges.finish(active)
        except BaseException as error:  # the writer re-raises it on its thread
            out.put(error)
        finally:
            out.put(_DONE)

    def _read_range(self, ranges: RangeQueue, active, out: queue.Queue) -> None:
        position, end = active.position, active.end
        # Each page starts at the second the last one ended in, so it repeats that second's
        # rows: these versions were sent already and are dropped here, not written twice.
        sent: set[tuple[object, object]] = set()
        while position < end and not self.stop.is_set():
            rows = self.query(sync_filter(self.entity, position, end))
            full = len(rows) >= self.page_size
            last = _stamp(rows[-1]) if rows else position
            end = ranges.advance(active, max(position, last), busy=full)
            if last >= end:
                # Rows past a split made while this page was in flight belong to the new range.
                rows = [row for row in rows if _stamp(row) < end]
            new = [row for row in rows if _version(row) not in sent] if sent else rows
            page = _Page.of(self.entity, new)
            sent = {_version(row) for row in _last_second(rows, last)}
            # The parsed rows go before the wait for the queue: they are ~5x their text.
            del rows, new
            if page.ids:
                out.put(page)
            if not full or last >= end:
                return
            if last <= position:
                # A whole page within one second: read that second by offset, then move on.
                self._read_second(position, out, sent)
                last, sent = position + SECOND, set()
            position = last

    def _read_second(self, second: datetime, out: queue.Queue, sent: set) -> None:
        """Offset paging is safe here: only rows stamped this exact second are listed, and
        a row changed now gets a later stamp, which a later run reads. The first page
        repeats rows already `sent` (of this second), which are dropped.

        The second's pages do not depend on each other, so after counting its rows they
        are read at once (a bulk change of 3,000 rows takes one page's time, not three).
        """
        where = sync_filter(self.entity, None, at=second)
        with self._pages_lock:
            self.pages += 1
        starts = list(range(1, self.client.count(self.entity, where) + 1, self.page_size))
        workers = max(1, min(len(starts), self.client.limiter.limits.max_in_flight))
        with ThreadPoolExecutor(workers, thread_name_prefix="qbo-second") as pool:
            full = list(pool.map(lambda start: self._read_offset(where, start, sent, out), starts))
        # Rows stamped this second after the count (it may be the current second) follow.
        start = len(starts) * self.page_size + 1
        while (not starts or full[-1]) and not self.stop.is_set():
            full, starts = [self._read_offset(where, start, sent, out)], [start]
            start += self.page_size

    def _read_offset(self, where: str, start: int, sent: set, out: queue.Queue) -> bool:
        """Send one offset page of a second; whether it was full."""
        rows = self.query(where, start_position=start)
        full = len(rows) >= self.page_size
        page = _Page.of(self.entity, [row for row in rows if _version(row) not in sent])
        del rows
        if page.ids:
            out.put(page)
        return full


def sync_entity(
    client: QuickBooksClient,
    warehouse: Warehouse,
    entity: Entity,
    options: SyncOptions = SyncOptions(),
    *,
    on_batch: Callable[[int, int], None] | None = None,
) -> EntitySyncResult:
    """Bring one entity of the client's realm up to date in the warehouse, deletes included."""
    started = time.monotonic()
    realm_id = client.realm_id
    previous = None if options.full else warehouse.cursor(realm_id, entity.name)
    transactions = entity.kind is Kind.TRANSACTION
    since = previous - options.overlap if previous else None
    fetcher = _Fetcher(client, entity, options.page_size)
    probe = fetcher.probe(since)
    # QBO's clock bounds the run: rows stamped after this second belong to the next run.
    now = probe.server_time or datetime.now(UTC)
    if since and transactions and not cdc_reaches(since, now):
        log.info("realm %s %s: last sync beyond CDC's reach; reconciling", realm_id, entity.name)
        since = None
        probe = fetcher.probe(since)
    upper = floor_second(now) + SECOND
    # A full read of transactions is followed by a reconciliation, which needs every Id read.
    seen: set[str] | None = set() if transactions and since is None else None
    ranges: list[tuple[datetime, datetime]] = []
    if probe.entities:
        first = floor_second(parse_instant(probe.entities[0]["MetaData"]["LastUpdatedTime"]))
        if first < upper:
            ranges = even_split(first, upper, client.limiter.limits.max_in_flight)
    log.info(
        "realm %s %s: %s sync of rows stamped before %s in %d ranges",
        realm_id,
        entity.name,
        "incremental" if since else "full",
        upper.isoformat(),
        len(ranges),
    )

    writer = _BatchWriter(warehouse, entity, realm_id, options.batch_rows, on_batch)
    with ThreadPoolExecutor(1, thread_name_prefix="qbo-cdc") as background, writer:
        cdc: Future[tuple[list[Deletion], bool]] | None = None
        if transactions and seen is None and entity.cdc and since is not None:
            # Deletions do not depend on the pages: ask CDC while they are read.
            cdc = background.submit(deletions_from_cdc, client, entity, since)
        for page in _pages(fetcher, ranges):
            writer.add(page)
            if seen is not None:
                seen.update(page.ids)
        writer.flush()

        deletions: list[Deletion] = []
        marked = 0  # deletions already applied before the cursor's transaction
        if cdc is not None:
            deletions, complete = cdc.result()
            if not complete:
                # A bulk change may hide deletions from CDC: apply what it did report, then
                # count; only a difference costs a full read and reconciliation.
                marked = warehouse.apply_deletions(entity, realm_id, deletions)
                deletions = []
                if not _counts_agree(client, warehouse, entity, upper):
                    again = sync_entity(client, warehouse, entity, replace(options, full=True))
                    return replace(
                        again,
                        rows=again.rows + writer.rows,
                        lines=again.lines + writer.lines,
                        deleted=again.deleted + marked,
                    )
        if seen is not None:
            deletions = _reconcile(client, warehouse, entity, seen, writer, at=upper)

    cursor = max(upper, previous) if previous else upper
    if transactions:
        deleted = marked + warehouse.apply_deletions(entity, realm_id, deletions, cursor=cursor)
    else:  # name-lists are never hard-deleted: deactivations arrive as updates
        deleted = 0
        warehouse.upsert(entity, realm_id, [], cursor=cursor)
    seconds = time.monotonic() - started
    log.info(
        "realm %s %s: wrote %d rows and %d lines, marked %d deleted, from %d pages "
        "(%d rows read) in %.1f s",
        realm_id,
        entity.name,
        writer.rows,
        writer.lines,
        deleted,
        fetcher.pages,
        writer.fetched,
        seconds,
    )
    return EntitySyncResult(
        entity=entity.name,
        realm_id=realm_id,
        mode="incremental" if since else "full",
        rows=writer.rows,
        lines=writer.lines,
        deleted=deleted,
        pages=fetcher.pages,
        fetched=writer.fetched,
        seconds=seconds,
        cursor=cursor,
    )


class _BatchWriter:
    """Collects pages into batches of `batch_rows` and writes each as it fills.

    A full batch is prepared (encoded, and typed where the warehouse can) on a helper
    thread while the caller's thread writes the batch before it, so the warehouse's two
    halves of the work overlap. At most one batch is being prepared and one written.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        entity: Entity,
        realm_id: str,
        batch_rows: int,
        on_batch: Callable[[int, int], None] | None,
    ) -> None:
        self.warehouse, self.entity, self.realm_id = warehouse, entity, realm_id
        self.batch_rows = batch_rows
        self.on_batch = on_batch
        self.rows = self.lines = self.fetched = 0
        self._batch: list[str] = []  # JSON texts
        self._preparer = ThreadPoolExecutor(1, thread_name_prefix=f"qbo-prepare-{entity.name}")
        self._pending: Future[PreparedBatch] | None = None

    def add(self, page: _Page) -> None:
        self.fetched += len(page.texts)
        self._batch.extend(page.texts)
        if len(self._batch) >= self.batch_rows:
            self._hand_over()

    def flush(self) -> None:
        """Write everything added so far."""
        self._hand_over()
        self._write_pending()

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the helper thread; a batch still being prepared is dropped unwritten."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._preparer.shutdown(wait=True)

    def _hand_over(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        prepared = self._preparer.submit(self.warehouse.prepare, self.entity, batch)
        self._write_pending()
        self._pending = prepared

    def _write_pending(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        result = self.warehouse.upsert(self.entity, self.realm_id, pending.result())
        self.rows += result.rows_written
        self.lines += result.lines_written
        if self.on_batch:
            self.on_batch(self.rows, self.lines)


def _counts_agree(
    client: QuickBooksClient, warehouse: Warehouse, entity: Entity, upper: datetime
) -> bool:
    """Does QBO hold as many rows (stamped before the run's bound) as the warehouse has
    live ones? Then no deletion is missing."""
    in_qbo = client.count(entity, sync_filter(entity, None, upper))
    [(live,)] = warehouse.query(
        f"SELECT count(*) FROM qbo.{entity.table} WHERE realm_id = $1 AND deleted_at IS NULL",
        [client.realm_id],
    )
    return int(live) == in_qbo


def _reconcile(
    client: QuickBooksClient,
    warehouse: Warehouse,
    entity: Entity,
    seen: set[str],
    writer: _BatchWriter,
    *,
    at: datetime,
) -> list[Deletion]:
    """Stored rows the full read did not return: deleted, unless QBO still has them."""
    missing = set(warehouse.unseen_ids(entity, client.realm_id, seen))
    for rows in confirm_missing(client, entity, missing):
        page = _Page.of(entity, rows)
        writer.add(page)
        missing.difference_update(page.ids)
    writer.flush()
    return [(entity_id, at) for entity_id in sorted(missing)]


def _pages(fetcher: _Fetcher, ranges: list[tuple[datetime, datetime]]) -> Iterator[_Page]:
    """Pages as they arrive from up to `max_in_flight` range readers.

    The queue holds at most one page per reader, so a slow warehouse slows the readers
    instead of filling memory.
    """
    if not ranges:
        return
    workers = min(fetcher.client.limiter.limits.max_in_flight, 64)
    out: queue.Queue = queue.Queue(maxsize=workers)
    work = RangeQueue(pending=list(ranges))
    threads = [
        threading.Thread(
            target=fetcher.read_ranges, args=(work, out), name=f"qbo-range-{i}", daemon=True
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = out.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        fetcher.stop.set()
        while any(thread.is_alive() for thread in threads):
            with contextlib.suppress(queue.Empty):  # unblock readers waiting on a full queue
                out.get(timeout=0.05)
