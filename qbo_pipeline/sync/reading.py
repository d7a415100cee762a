"""Reading an entity's rows: concurrent time ranges, keyset-paged, pages handed over
through a bounded queue.

Each range is read with keyset paging on MetaData.LastUpdatedTime, so rows updated or
deleted while the sync runs cannot make it skip another row (offset paging would). The
queue holds at most one page per reader, so a slow warehouse slows the readers instead
of filling memory.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.client import QueryPage, QuickBooksClient
from qbo_pipeline.quickbooks.query import select_page, sync_filter
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.ranges import SECOND, RangeQueue, floor_second
from qbo_pipeline.warehouse import encode_batch

_DONE = object()


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
class Page:
    """A page as the writer needs it: each record's Id and JSON text.

    Encoding on the reader's thread frees the parsed dictionaries (several times the
    size of their text) before the page waits in the queue.
    """

    ids: list[str]
    texts: list[str]

    @classmethod
    def of(cls, entity: Entity, rows: list[dict]) -> Page:
        texts = encode_batch(entity, rows)  # checks every record has an Id
        return cls([row["Id"] for row in rows], texts)


class Fetcher:
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
            page = Page.of(self.entity, new)
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
        page = Page.of(self.entity, [row for row in rows if _version(row) not in sent])
        del rows
        if page.ids:
            out.put(page)
        return full


def read_pages(fetcher: Fetcher, ranges: list[tuple[datetime, datetime]]) -> Iterator[Page]:
    """Pages as they arrive from up to `max_in_flight` range readers.

    The queue holds at most one page per reader, so a slow warehouse slows the readers
    instead of filling memory.
    """
    if not ranges:
        return
    # A fetcher may read twice (a full re-read after an incremental one); the readers of
    # the first read have all ended, so the second starts unstopped.
    fetcher.stop.clear()
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
