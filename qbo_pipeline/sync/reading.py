"""Reading an entity's rows: a window of LastUpdatedTime read in offset pages, side by side,
with every seam between two pages checked.

A window is the rows stamped in [since, until), ordered by LastUpdatedTime (ties in
QBO's own stable order). While it is read, rows can only leave it: an update stamps a row
at or after `until`, a deletion removes it, and a new row is stamped now. A row that
leaves shifts every later row one position back, so a page read after the change starts
one row further on, and the row at the seam would be skipped. Pages therefore overlap by
a few rows, and each seam after a full page must show a row of that page again; those
rows are not handed over twice. A seam that does not (more rows left between the two
reads than the pages overlap) is read once more as a window of its own.

This costs one COUNT and about 1% more pages than the data: a full sync needs a call per
page of data and little else, where a probe and a partial last page per time range
would cost a third more for a small company.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from qbo_pipeline.errors import PipelineError
from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.query import select_page, sync_filter
from qbo_pipeline.warehouse.records import Records, record_typer

log = logging.getLogger(__name__)

SECOND = timedelta(seconds=1)
# Rows each page repeats of the page before it: how many rows may leave the window between
# two neighbouring pages' reads before a seam has to be read again.
SEAM_ROWS = 10
# A seam read again can itself tear if the company keeps changing that fast; past this
# depth the run fails (transiently) rather than chase it.
MAX_SEAM_DEPTH = 4


def floor_second(instant: datetime) -> datetime:
    return instant.replace(microsecond=0)


def bound_of(server_time: datetime | None) -> datetime:
    """A run's bound from QBO's clock: rows stamped before the next whole second. A row
    stamped later is the next run's; the next run starts before it (the overlap)."""
    return floor_second(server_time or datetime.now(UTC)) + SECOND


class WindowChanging(PipelineError):
    """The company changed faster than a window's seams could be read again."""

    transient = True


@dataclass(frozen=True)
class FirstPage:
    """Page 1 of a window, with QBO's clock when it answered (the run's bound)."""

    records: Records
    server_time: datetime | None


@dataclass(frozen=True)
class _Read:
    """One offset page, typed, with what its seams are checked by."""

    page: Records
    full: bool
    head: frozenset[str]  # Ids of its first rows, as many as pages overlap by
    tail: frozenset[str]  # Ids of its last rows
    first: datetime | None  # stamps of its first and last rows
    last: datetime | None


class Reader:
    """Reads one entity of one realm for the engine, counting the requests it makes."""

    def __init__(self, client: QuickBooksClient, entity: Entity, page_size: int) -> None:
        if page_size < 2:
            raise ValueError(f"pages must hold at least 2 rows to overlap; got {page_size}")
        self.client = client
        self.entity = entity
        self.typer = record_typer()
        self.page_size = page_size
        self.seam_rows = max(1, min(SEAM_ROWS, page_size // 5))  # small pages: tests
        self.requests = 0
        self._lock = threading.Lock()

    def counted(self, calls: int = 1) -> None:
        with self._lock:
            self.requests += calls

    def first_page(self, since: datetime | None) -> FirstPage:
        """Page 1 of everything stamped from `since` on: the oldest rows, and QBO's clock
        (the run's bound) in the same call."""
        self.counted()
        where = sync_filter(self.entity, since)
        statement = select_page(self.entity, where, start_position=1, max_results=self.page_size)

        def read(body: bytes) -> FirstPage:
            return FirstPage(*self.typer.page_and_time(self.entity, body))

        return self.client.query_body(statement, read)

    def _typed(self, body: bytes) -> Records:
        return self.typer.page(self.entity, body)

    def window(
        self,
        since: datetime | None,
        until: datetime,
        first: Records | None = None,
        *,
        depth: int = 0,
    ) -> Iterator[Records]:
        """Every row stamped in [since, until), as pages; `first` is page 1 when the caller
        has read it already (it may hold rows stamped from `until` on: they are newer
        versions, and harmless)."""
        where = sync_filter(self.entity, since, until)
        if first is None:
            head = self._read(where, 1)
        else:  # read without the bound, which it gave: rows from `until` on are the next run's
            head = self._seams(first.before(until), len(first))
        yield head.page
        if not head.full:
            return
        self.counted()
        total = self.client.count(self.entity, where)
        step = self.page_size - self.seam_rows
        starts = iter(range(1 + step, total + 1, step))
        previous = head
        for read in self._offsets(where, starts):
            yield read.page.without(previous.tail)
            yield from self._seam(previous, read, since, until, depth)
            previous = read
        # Rows may have entered at the end (stamped this second after the count).
        start = 1 + step * (1 + max(0, (total - 1) // step))
        while previous.full:
            read = self._read(where, start)
            yield read.page.without(previous.tail)
            yield from self._seam(previous, read, since, until, depth)
            previous, start = read, start + step

    def _seam(
        self, before: _Read, after: _Read, since: datetime | None, until: datetime, depth: int
    ) -> Iterator[Records]:
        """The rows between two neighbouring pages, when `after` starts past `before`'s end."""
        if not before.full or before.tail & after.head:
            return
        if depth >= MAX_SEAM_DEPTH:
            raise WindowChanging(
                f"{self.entity.name} rows of realm {self.client.realm_id} kept changing while "
                "they were read; the run will be retried"
            )
        low = before.last or since
        high = after.first + SECOND if after.first is not None else until
        if low is not None and low >= high:
            return
        log.info(
            "realm %s %s: rows left the window between two pages; reading %s to %s again",
            self.client.realm_id,
            self.entity.name,
            low,
            high,
        )
        yield from self.window(low, high, depth=depth + 1)

    def _offsets(self, where: str, starts: Iterator[int]) -> Iterator[_Read]:
        """The pages at `starts`, in order, read `max_in_flight` at a time.

        Taking them in order bounds memory to one page per worker and makes each seam a
        comparison with the page before.
        """
        workers = max(1, self.client.limiter.limits.max_in_flight)
        with ThreadPoolExecutor(workers, thread_name_prefix="qbo-page") as pool:
            pending: deque[Future[_Read]] = deque()
            try:
                for start in starts:
                    pending.append(pool.submit(self._read, where, start))
                    if len(pending) >= workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    def _read(self, where: str, start: int) -> _Read:
        self.counted()
        statement = select_page(
            self.entity, where, start_position=start, max_results=self.page_size
        )
        records = self.client.query_body(statement, self._typed)
        return self._seams(records, len(records))

    def _seams(self, page: Records, returned: int) -> _Read:
        """`returned`: how many rows QBO sent, before any were set aside."""
        ids = page.ids
        return _Read(
            page=page,
            full=returned >= self.page_size,
            head=frozenset(ids[: self.seam_rows]),
            tail=frozenset(ids[-self.seam_rows :]),
            first=page.first,
            last=page.last,
        )
