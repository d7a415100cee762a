"""The extraction engine: one entity of one realm brought up to date, deletes included.

A sync is four steps, each a function below:

1. plan: the cursor, QBO's clock as the run's upper bound, and the time ranges to read;
2. read: the ranges concurrently (`reading`), pages batched into the warehouse
   (`batches`), while CDC is asked for deletions on the side;
3. resolve deletions: CDC's answer, a count when CDC could not page through a bulk
   change, or a reconciliation after a full read (`deletes`);
4. commit: deletions and the cursor in one transaction.

The cursor becomes the run's upper bound only in that last transaction, so a run that
dies part-way leaves the old cursor and the next run reads those rows again (upserts make
that harmless). Memory is bounded by the queue between readers and writer and by the
batch size, not by the size of the company (a full read of transactions also keeps the
set of Ids it has seen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from qbo_pipeline.quickbooks.catalog import Entity, Kind
from qbo_pipeline.quickbooks.client import QueryPage, QuickBooksClient
from qbo_pipeline.quickbooks.query import MAX_RESULTS, created_before
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.batches import BatchWriter
from qbo_pipeline.sync.deletes import (
    Deletion,
    cdc_reaches,
    deletions_from_cdc,
    write_by_ids,
)
from qbo_pipeline.sync.ranges import SECOND, even_split, floor_second
from qbo_pipeline.sync.reading import Fetcher, read_pages
from qbo_pipeline.warehouse import Warehouse

log = logging.getLogger(__name__)

# Rows changed within this margin before the cursor are read again: equal-second updates
# straddle runs, and QBO's servers need not agree to the second.
DEFAULT_OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class SyncOptions:
    full: bool = False
    page_size: int = MAX_RESULTS
    batch_rows: int = 5000
    overlap: timedelta = DEFAULT_OVERLAP
    # Compare QBO's count with the warehouse after an incremental read even when CDC
    # answered in full, and read in full on a difference (the nightly reconciliation).
    reconcile: bool = False


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


@dataclass(frozen=True)
class _Plan:
    """What one read covers: rows stamped in [since, upper), all of them when since is
    None, in `ranges` read side by side."""

    previous: datetime | None  # the cursor before this run
    since: datetime | None
    upper: datetime  # QBO's clock when the run began, rounded up to the second
    ranges: list[tuple[datetime, datetime]]

    @property
    def full(self) -> bool:
        return self.since is None


@dataclass(frozen=True)
class _Resolved:
    """Deletions still to commit, those already applied, and the plan that found them (a
    full re-read replaces an incremental one when CDC could not account for a bulk change)."""

    deletions: list[Deletion]
    marked: int
    plan: _Plan


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
    fetcher = Fetcher(client, entity, options.page_size)
    plan = _plan(fetcher, warehouse, options)
    with BatchWriter(warehouse, entity, client.realm_id, options.batch_rows, on_batch) as writer:
        resolved = _read_and_resolve(fetcher, warehouse, plan, writer, reconcile=options.reconcile)
    deleted, cursor = _commit(warehouse, entity, client.realm_id, resolved)
    result = EntitySyncResult(
        entity=entity.name,
        realm_id=client.realm_id,
        mode="full" if resolved.plan.full else "incremental",
        rows=writer.rows,
        lines=writer.lines,
        deleted=deleted,
        pages=fetcher.pages,
        fetched=writer.fetched,
        seconds=time.monotonic() - started,
        cursor=cursor,
    )
    log.info(
        "realm %s %s: wrote %d rows and %d lines, marked %d deleted, from %d pages "
        "(%d rows read) in %.1f s",
        result.realm_id,
        result.entity,
        result.rows,
        result.lines,
        result.deleted,
        result.pages,
        result.fetched,
        result.seconds,
    )
    return result


def _plan(fetcher: Fetcher, warehouse: Warehouse, options: SyncOptions) -> _Plan:
    """The cursor, the run's bound (QBO's clock: rows stamped later belong to the next run)
    and the ranges from the oldest matching row to it."""
    entity, realm_id = fetcher.entity, fetcher.client.realm_id
    previous = None if options.full else warehouse.cursor(realm_id, entity.name)
    since = previous - options.overlap if previous else None
    probe = fetcher.probe(since)
    now = probe.server_time or datetime.now(UTC)
    if since and entity.kind is Kind.TRANSACTION and not cdc_reaches(since, now):
        log.info("realm %s %s: last sync beyond CDC's reach; reconciling", realm_id, entity.name)
        since = None
        probe = fetcher.probe(since)
    upper = floor_second(now) + SECOND
    plan = _Plan(previous, since, upper, _split(fetcher, probe, upper))
    log.info(
        "realm %s %s: %s sync of rows stamped before %s in %d ranges",
        realm_id,
        entity.name,
        "full" if plan.full else "incremental",
        plan.upper.isoformat(),
        len(plan.ranges),
    )
    return plan


def _split(fetcher: Fetcher, probe: QueryPage, upper: datetime) -> list[tuple[datetime, datetime]]:
    """[oldest matching row, upper) in whole-second ranges, one per reader."""
    if not probe.entities:
        return []
    first = floor_second(parse_instant(probe.entities[0]["MetaData"]["LastUpdatedTime"]))
    if first >= upper:
        return []
    return even_split(first, upper, fetcher.client.limiter.limits.max_in_flight)


def _read_and_resolve(
    fetcher: Fetcher, warehouse: Warehouse, plan: _Plan, writer: BatchWriter, *, reconcile: bool
) -> _Resolved:
    """Read the plan, and find what QBO deleted: from CDC while the pages are read, or by
    reconciling a full read; a bulk change CDC cannot page through costs a count, and
    only a difference a full re-read. `reconcile` counts after every incremental read."""
    client, entity = fetcher.client, fetcher.entity
    if plan.full:
        transactions = entity.kind is Kind.TRANSACTION
        seen = _read(fetcher, plan, writer, keep_ids=transactions)
        if not transactions:  # name-lists are never hard-deleted
            return _Resolved([], 0, plan)
        return _Resolved(
            _reconcile(client, warehouse, entity, seen, writer, at=plan.upper), 0, plan
        )
    if entity.kind is not Kind.TRANSACTION or not entity.cdc:
        _read(fetcher, plan, writer, keep_ids=False)
        deletions, complete = [], True
    else:
        with ThreadPoolExecutor(1, thread_name_prefix="qbo-cdc") as background:
            # Deletions do not depend on the pages: ask CDC while they are read.
            cdc: Future[tuple[list[Deletion], bool]] = background.submit(
                deletions_from_cdc, client, entity, plan.since
            )
            _read(fetcher, plan, writer, keep_ids=False)
            deletions, complete = cdc.result()
    if complete and not reconcile:
        return _Resolved(deletions, 0, plan)
    # A bulk change may hide deletions from CDC, and a reconciliation checks anyway: apply
    # what CDC did report, then count.
    marked = warehouse.apply_deletions(entity, client.realm_id, deletions) if deletions else 0
    if _counts_agree(client, warehouse, entity, plan.upper):
        return _Resolved([], marked, plan)
    log.info("realm %s %s: counts differ; reading in full", client.realm_id, entity.name)
    full = _Plan(plan.previous, None, plan.upper, _split(fetcher, fetcher.probe(None), plan.upper))
    return _Resolved(
        _read_and_resolve(fetcher, warehouse, full, writer, reconcile=False).deletions,
        marked,
        full,
    )


def _read(fetcher: Fetcher, plan: _Plan, writer: BatchWriter, *, keep_ids: bool) -> set[str]:
    """Write every page of the plan; the Ids read when `keep_ids` (for a reconciliation)."""
    seen: set[str] = set()
    for page in read_pages(fetcher, plan.ranges):
        writer.add(page)
        if keep_ids:
            seen.update(page.ids)
    writer.flush()
    return seen


def _commit(
    warehouse: Warehouse, entity: Entity, realm_id: str, resolved: _Resolved
) -> tuple[int, datetime]:
    """Deletions and the cursor in one transaction; rows marked deleted in all, and the
    cursor, which never moves back."""
    plan = resolved.plan
    cursor = max(plan.upper, plan.previous) if plan.previous else plan.upper
    if entity.kind is not Kind.TRANSACTION:
        warehouse.upsert(entity, realm_id, [], cursor=cursor)
        return 0, cursor
    marked = warehouse.apply_deletions(entity, realm_id, resolved.deletions, cursor=cursor)
    return resolved.marked + marked, cursor


def _counts_agree(
    client: QuickBooksClient, warehouse: Warehouse, entity: Entity, upper: datetime
) -> bool:
    """Does QBO hold as many rows (created before the run's bound) as the warehouse has
    live ones? Then no deletion is missing."""
    in_qbo = client.count(entity, created_before(entity, upper))
    return warehouse.rows_in_qbo(entity, client.realm_id, upper) == in_qbo


def _reconcile(
    client: QuickBooksClient,
    warehouse: Warehouse,
    entity: Entity,
    seen: set[str],
    writer: BatchWriter,
    *,
    at: datetime,
) -> list[Deletion]:
    """Stored rows the full read did not return: deleted, unless QBO still has them."""
    missing = set(warehouse.unseen_ids(entity, client.realm_id, seen))
    found, _ = write_by_ids(client, entity, missing, writer)
    return [(entity_id, at) for entity_id in sorted(missing - found)]
