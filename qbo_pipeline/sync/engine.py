"""The extraction engine: plans the pages of an entity, fetches them concurrently within
the realm's limits and streams bounded batches into the warehouse.

The cursor is committed with the last batch, in the same transaction, so a run that dies
part-way leaves the old cursor and the next run fetches those rows again (upserts make
that harmless). Memory is bounded by the submission window and the batch size, not by
the size of the company.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.query import MAX_RESULTS, select_page, sync_filter
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.warehouse.base import Warehouse

log = logging.getLogger(__name__)

# Rows changed within this margin before the cursor are fetched again: QBO's clock and
# ours differ, and equal-second updates straddle page boundaries.
DEFAULT_OVERLAP = timedelta(minutes=5)


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
    rows: int
    lines: int
    pages: int
    seconds: float
    cursor: datetime | None


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
    started_at = datetime.now(UTC)
    realm_id = client.realm_id
    previous = None if options.full else warehouse.cursor(realm_id, entity.name)
    since = previous - options.overlap if previous else None
    where = sync_filter(entity, since)
    expected = client.count(entity, where)
    planned_pages = math.ceil(expected / options.page_size)
    log.info(
        "realm %s %s: %d rows to fetch in %d pages (%s)",
        realm_id,
        entity.name,
        expected,
        planned_pages,
        "incremental" if since else "full",
    )

    rows = lines = pages = 0
    newest: datetime | None = None
    batch: list[dict] = []
    for page in _fetch_pages(client, entity, where, planned_pages, options.page_size):
        pages += 1
        batch.extend(page)
        for raw in page:
            updated = parse_instant(raw["MetaData"]["LastUpdatedTime"])
            newest = updated if newest is None or updated > newest else newest
        if len(batch) >= options.batch_rows:
            result = warehouse.upsert(entity, realm_id, batch)
            rows, lines = rows + result.rows_written, lines + result.lines_written
            batch = []
            if on_batch:
                on_batch(rows, lines)

    # A row changed while the sync ran may have moved past our pages; a cursor no later
    # than the run's start makes the next run see it.
    cursor = min(newest, started_at) if newest else previous
    if batch or cursor != previous:
        result = warehouse.upsert(entity, realm_id, batch, cursor=cursor)
        rows, lines = rows + result.rows_written, lines + result.lines_written
    seconds = time.monotonic() - started
    log.info(
        "realm %s %s: loaded %d rows and %d lines from %d pages in %.1f s",
        realm_id,
        entity.name,
        rows,
        lines,
        pages,
        seconds,
    )
    return EntitySyncResult(
        entity=entity.name,
        realm_id=realm_id,
        mode="incremental" if since else "full",
        rows=rows,
        lines=lines,
        pages=pages,
        seconds=seconds,
        cursor=cursor,
    )


def _fetch_pages(
    client: QuickBooksClient, entity: Entity, where: str, planned: int, page_size: int
) -> Iterator[list[dict]]:
    """Yield pages as they arrive, keeping at most twice the in-flight limit outstanding.

    Pages past the planned count are fetched while the last one comes back full, so rows
    created after the COUNT are not left behind.
    """
    workers = client.limiter.limits.max_in_flight
    window = workers * 2

    def fetch(start: int) -> list[dict]:
        statement = select_page(entity, where, start_position=start, max_results=page_size)
        return client.query(statement).entities

    starts = iter(range(1, planned * page_size + 1, page_size))
    last_start = (planned - 1) * page_size + 1
    last_full = planned > 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qbo-page") as pool:
        pending: dict[Future[list[dict]], int] = {}

        def submit_more() -> None:
            for start in starts:
                pending[pool.submit(fetch, start)] = start
                if len(pending) >= window:
                    return

        submit_more()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                start = pending.pop(future)
                page = future.result()
                if start == last_start:
                    last_full = len(page) >= page_size
                yield page
            submit_more()

    start = planned * page_size + 1
    while last_full:
        page = fetch(start)
        start += page_size
        last_full = len(page) >= page_size
        if page:
            yield page
