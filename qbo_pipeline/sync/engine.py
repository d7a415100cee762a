"""The extraction engine: reads an entity's changed rows in concurrent time ranges within
the realm's limits and streams bounded batches into the warehouse.

Each range is read with keyset paging on MetaData.LastUpdatedTime, so rows updated or
deleted while the sync runs cannot make it skip another row (offset paging would). The
run's upper bound is QBO's own clock at the start; the cursor becomes that instant and is
committed with the last batch, in the same transaction, so a run that dies part-way
leaves the old cursor and the next run reads those rows again (upserts make that
harmless). Memory is bounded by the queue between fetchers and writer and by the batch
size, not by the size of the company.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.query import MAX_RESULTS, select_page, sync_filter
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.ranges import SECOND, RangeQueue, even_split, floor_second
from qbo_pipeline.warehouse.base import Warehouse

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
    pages: int  # query requests made
    fetched: int  # rows received, duplicates at page boundaries included
    seconds: float
    cursor: datetime | None


class _Fetcher:
    """Reads ranges on worker threads and hands pages to the writer through a bounded queue."""

    def __init__(self, client: QuickBooksClient, entity: Entity, page_size: int) -> None:
        self.client = client
        self.entity = entity
        self.page_size = page_size
        self.pages = 0
        self._pages_lock = threading.Lock()
        self.stop = threading.Event()

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
        while position < end and not self.stop.is_set():
            page = self.query(sync_filter(self.entity, position, end))
            full = len(page) >= self.page_size
            stamps = [floor_second(parse_instant(r["MetaData"]["LastUpdatedTime"])) for r in page]
            last = stamps[-1] if page else position
            end = ranges.advance(active, max(position, last), busy=full)
            # Rows past a split made while this page was in flight belong to the new range.
            mine = [row for row, stamp in zip(page, stamps, strict=True) if stamp < end]
            if mine:
                out.put(mine)
            if not full or last >= end:
                return
            if last <= position:
                # A whole page within one second: read that second by offset, then move on.
                self._read_second(position, out)
                last = position + SECOND
            position = last

    def _read_second(self, second: datetime, out: queue.Queue) -> None:
        """Offset paging is safe here: only rows stamped this exact second are listed, and
        a row changed now gets a later stamp, which a later run reads."""
        where = sync_filter(self.entity, None, at=second)
        start = 1
        while True:
            page = self.query(where, start_position=start)
            if page:
                out.put(page)
            if len(page) < self.page_size:
                return
            start += self.page_size


def sync_entity(
    client: QuickBooksClient,
    warehouse: Warehouse,
    entity: Entity,
    options: SyncOptions = SyncOptions(),
    *,
    on_batch: Callable[[int, int], None] | None = None,
) -> EntitySyncResult:
    """Bring one entity of the client's realm up to date in the warehouse."""
    started = time.monotonic()
    realm_id = client.realm_id
    previous = None if options.full else warehouse.cursor(realm_id, entity.name)
    since = previous - options.overlap if previous else None
    fetcher = _Fetcher(client, entity, options.page_size)

    probe = client.query(
        select_page(entity, sync_filter(entity, since), start_position=1, max_results=1)
    )
    fetcher.pages += 1
    # QBO's clock bounds the run: rows stamped after this second belong to the next run.
    upper = floor_second(probe.server_time or datetime.now(UTC)) + SECOND
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

    rows = lines = fetched = 0
    batch: list[dict] = []
    for page in _pages(fetcher, ranges):
        fetched += len(page)
        batch.extend(page)
        if len(batch) >= options.batch_rows:
            result = warehouse.upsert(entity, realm_id, batch)
            rows, lines = rows + result.rows_written, lines + result.lines_written
            batch = []
            if on_batch:
                on_batch(rows, lines)

    cursor = max(upper, previous) if previous else upper
    result = warehouse.upsert(entity, realm_id, batch, cursor=cursor)
    rows, lines = rows + result.rows_written, lines + result.lines_written
    seconds = time.monotonic() - started
    log.info(
        "realm %s %s: wrote %d rows and %d lines from %d pages (%d rows read) in %.1f s",
        realm_id,
        entity.name,
        rows,
        lines,
        fetcher.pages,
        fetched,
        seconds,
    )
    return EntitySyncResult(
        entity=entity.name,
        realm_id=realm_id,
        mode="incremental" if since else "full",
        rows=rows,
        lines=lines,
        pages=fetcher.pages,
        fetched=fetched,
        seconds=seconds,
        cursor=cursor,
    )


def _pages(fetcher: _Fetcher, ranges: list[tuple[datetime, datetime]]) -> Iterator[list[dict]]:
    """Pages as they arrive from up to `max_in_flight` range readers.

    The queue holds at most two pages per reader, so a slow warehouse slows the readers
    instead of filling memory.
    """
    if not ranges:
        return
    workers = min(fetcher.client.limiter.limits.max_in_flight, 64)
    out: queue.Queue = queue.Queue(maxsize=workers * 2)
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
