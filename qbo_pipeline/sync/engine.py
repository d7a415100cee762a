"""The extraction engine: one entity of one realm brought up to date, deletes included.

A sync reads, resolves deletions, and commits:

1. read: an incremental sync asks CDC what changed since the cursor (minus an overlap),
   rows and deletions together (`cdc`); a full sync, or an entity CDC does not cover,
   reads a window of LastUpdatedTime in offset pages side by side (`reading`). Pages are
   batched into the warehouse (`batches`);
2. resolve deletions: CDC's stubs, a count when CDC could not page through a bulk change,
   or a reconciliation after a full read (`deletes`);
3. commit: deletions and the cursor in one transaction.

The run's bound comes from QBO's clock in the first answer. The cursor becomes that bound
only in the last transaction, so a run that dies part-way leaves the old cursor and the
next run reads those rows again (upserts make that harmless). Memory is bounded by the
pages in flight and by the batch size, not by the size of the company (a full read of
transactions also keeps the set of Ids it has seen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from qbo_pipeline.quickbooks.catalog import Entity, Kind
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.faults import ValidationFault
from qbo_pipeline.quickbooks.query import MAX_RESULTS, created_before
from qbo_pipeline.sync.batches import BatchWriter
from qbo_pipeline.sync.cdc import (
    Changes,
    SharedChanges,
    cdc_reaches,
    is_beyond_reach,
    read_changes,
    share_changes,
)
from qbo_pipeline.sync.deletes import Deletion, write_by_ids
from qbo_pipeline.sync.reading import Reader, bound_of
from qbo_pipeline.warehouse import Warehouse

log = logging.getLogger(__name__)

# Rows changed within this margin before the cursor are read again: equal-second updates
# straddle runs, and QBO's servers need not agree to the second.
DEFAULT_OVERLAP = timedelta(minutes=5)
# What CDC cannot track (TaxAgency, TaxCode, TaxRate, CompanyInfo, Preferences) costs a
# full read, so incremental runs read it only this long after the last read: hourly runs
# would spend a call per entity each to find rows that change a few times a year.
UNTRACKED_EVERY = timedelta(hours=24)
# The cursor is QBO's clock at the read, taken after its run began: a run one period later
# finds it a little younger than the period, and must still read.
UNTRACKED_SLACK = timedelta(minutes=10)
NOT_DUE = "not due"  # the mode of an entity an incremental run did not read


@dataclass(frozen=True)
class SyncOptions:
    full: bool = False
    page_size: int = MAX_RESULTS
    batch_rows: int = 5000
    overlap: timedelta = DEFAULT_OVERLAP
    # Compare QBO's count with the warehouse after an incremental read even when CDC
    # answered in full, and read in full on a difference (the nightly reconciliation).
    reconcile: bool = False
    untracked_every: timedelta = UNTRACKED_EVERY


@dataclass(frozen=True)
class EntitySyncResult:
    entity: str
    realm_id: str
    mode: str  # "full", "incremental" or NOT_DUE
    rows: int  # rows written (new or changed)
    lines: int
    deleted: int  # rows newly marked deleted
    requests: int  # API calls made: queries, counts and CDC
    fetched: int  # rows received, duplicates at page seams included
    seconds: float
    cursor: datetime | None


@dataclass(frozen=True)
class _Outcome:
    """What a read found: its bound, the deletions still to commit and those already
    applied, and whether it read everything (a full read may follow an incremental one
    when CDC could not account for a bulk change)."""

    previous: datetime | None  # the cursor before this run
    full: bool
    upper: datetime
    deletions: list[Deletion]
    marked: int = 0


def share_run_changes(
    client: QuickBooksClient,
    warehouse: Warehouse,
    entities: list[Entity],
    options: SyncOptions = SyncOptions(),
) -> SharedChanges | None:
    """One CDC call for the entities of a run that will ask CDC, before they sync; pass it
    to each `sync_entity`."""
    asking = []
    for entity in entities:
        previous = None if options.full else warehouse.cursor(client.realm_id, entity.name)
        if entity.cdc and previous is not None:
            since, reachable = _changes_since(previous, options)
            if reachable:
                asking.append((entity, since))
    return share_changes(client, asking)


def _changes_since(previous: datetime, options: SyncOptions) -> tuple[datetime, bool]:
    """Where an incremental read starts (the cursor less the overlap), and whether CDC
    reaches back that far by our clock."""
    since = previous - options.overlap
    return since, cdc_reaches(since, datetime.now(UTC))


def sync_entity(
    client: QuickBooksClient,
    warehouse: Warehouse,
    entity: Entity,
    options: SyncOptions = SyncOptions(),
    *,
    on_batch: Callable[[int, int], None] | None = None,
    shared: SharedChanges | None = None,
) -> EntitySyncResult:
    """Bring one entity of the client's realm up to date in the warehouse, deletes included;
    `shared`: the run's one CDC answer (`share_run_changes`)."""
    started = time.monotonic()
    reader = Reader(client, entity, options.page_size)
    previous = None if options.full else warehouse.cursor(client.realm_id, entity.name)
    if not entity.cdc and not _due(previous, options):
        log.info(
            "realm %s %s: read in full at %s; not due again for %s",
            client.realm_id,
            entity.name,
            previous.isoformat() if previous else "",
            options.untracked_every,
        )
        return EntitySyncResult(
            entity=entity.name,
            realm_id=client.realm_id,
            mode=NOT_DUE,
            rows=0,
            lines=0,
            deleted=0,
            requests=0,
            fetched=0,
            seconds=0.0,
            cursor=previous,
        )
    with BatchWriter(warehouse, entity, client.realm_id, options.batch_rows, on_batch) as writer:
        outcome = _read_and_resolve(reader, warehouse, writer, previous, options, shared)
    deleted, cursor = _commit(warehouse, entity, client.realm_id, outcome)
    result = EntitySyncResult(
        entity=entity.name,
        realm_id=client.realm_id,
        mode="full" if outcome.full else "incremental",
        rows=writer.rows,
        lines=writer.lines,
        deleted=deleted,
        requests=reader.requests,
        fetched=writer.fetched,
        seconds=time.monotonic() - started,
        cursor=cursor,
    )
    log.info(
        "realm %s %s: %s sync of rows stamped before %s wrote %d rows and %d lines, marked "
        "%d deleted, in %d requests (%d rows read) and %.1f s",
        result.realm_id,
        result.entity,
        result.mode,
        outcome.upper.isoformat(),
        result.rows,
        result.lines,
        result.deleted,
        result.requests,
        result.fetched,
        result.seconds,
    )
    return result


def _due(previous: datetime | None, options: SyncOptions) -> bool:
    """Is an entity CDC cannot track due for its full read? Always on a full or reconciling
    run; otherwise once its last read is `untracked_every` old."""
    if previous is None or options.reconcile:
        return True
    return datetime.now(UTC) - previous >= options.untracked_every - UNTRACKED_SLACK


def _read_and_resolve(
    reader: Reader,
    warehouse: Warehouse,
    writer: BatchWriter,
    previous: datetime | None,
    options: SyncOptions,
    shared: SharedChanges | None,
) -> _Outcome:
    """Read what changed since the cursor, or everything, and find what QBO deleted; a
    bulk change CDC cannot page through costs a count, and only a difference a full
    read. `reconcile` counts after every incremental read."""
    client, entity = reader.client, reader.entity
    if previous is None or not entity.cdc:  # what CDC cannot track is read in full
        return _read_in_full(reader, warehouse, writer, previous)
    since, reachable = _changes_since(previous, options)
    if entity.kind is Kind.TRANSACTION and not reachable:
        log.info("realm %s %s: last sync beyond CDC's reach; reading in full", *_names(reader))
        return _read_in_full(reader, warehouse, writer, previous)
    changes = _try_changes(reader, writer, since, shared) if entity.cdc and reachable else None
    if changes is None and entity.kind is Kind.TRANSACTION and entity.cdc:
        return _read_in_full(reader, warehouse, writer, previous)
    if changes is not None:
        upper, deletions, complete = changes.upper, changes.deletions, changes.complete
    else:  # no deletions to find: name-lists are never deleted, and CDC does not say
        upper, deletions, complete = _read_since(reader, writer, since), [], True
    if complete and not options.reconcile:
        return _Outcome(previous, False, upper, deletions)
    # A bulk change may hide deletions from CDC, and a reconciliation checks anyway: apply
    # what CDC did report, then count.
    marked = warehouse.apply_deletions(entity, client.realm_id, deletions) if deletions else 0
    if _counts_agree(reader, warehouse, upper):
        return _Outcome(previous, False, upper, [], marked)
    log.info("realm %s %s: counts differ; reading in full", *_names(reader))
    return replace(_read_in_full(reader, warehouse, writer, previous), marked=marked)


def _try_changes(
    reader: Reader, writer: BatchWriter, since: datetime, shared: SharedChanges | None
) -> Changes | None:
    """CDC's changes since `since`; None when QBO's clock puts `since` beyond its reach."""
    try:
        return read_changes(reader, writer, since, shared)
    except ValidationFault as fault:
        if not is_beyond_reach(fault):
            raise
        log.info("realm %s %s: QBO says the cursor is beyond CDC's reach", *_names(reader))
        return None


def _read_since(reader: Reader, writer: BatchWriter, since: datetime) -> datetime:
    """Write the rows stamped from `since` on; returns the run's bound."""
    first = reader.first_page(since)
    upper = bound_of(first.server_time)
    for page in reader.window(since, upper, first.records):
        writer.add(page)
    writer.flush()
    return upper


def _read_in_full(
    reader: Reader, warehouse: Warehouse, writer: BatchWriter, previous: datetime | None
) -> _Outcome:
    """Read every row; a stored transaction the read did not return was deleted, unless
    QBO still returns it by Id."""
    client, entity = reader.client, reader.entity
    transactions = entity.kind is Kind.TRANSACTION
    first = reader.first_page(None)
    upper = bound_of(first.server_time)
    seen: set[str] = set()
    for page in reader.window(None, upper, first.records):
        writer.add(page)
        if transactions:
            seen.update(page.ids)
    writer.flush()
    if not transactions:  # name-lists are never hard-deleted
        return _Outcome(previous, True, upper, [])
    missing = set(warehouse.unseen_ids(entity, client.realm_id, seen))
    found, queries = write_by_ids(client, entity, missing, writer)
    reader.counted(queries)
    deletions = [(entity_id, upper) for entity_id in sorted(missing - found)]
    return _Outcome(previous, True, upper, deletions)


def _commit(
    warehouse: Warehouse, entity: Entity, realm_id: str, outcome: _Outcome
) -> tuple[int, datetime]:
    """Deletions and the cursor in one transaction; rows marked deleted in all, and the
    cursor, which never moves back."""
    cursor = max(outcome.upper, outcome.previous) if outcome.previous else outcome.upper
    if entity.kind is not Kind.TRANSACTION:
        warehouse.upsert(entity, realm_id, [], cursor=cursor)
        return 0, cursor
    marked = warehouse.apply_deletions(entity, realm_id, outcome.deletions, cursor=cursor)
    return outcome.marked + marked, cursor


def _counts_agree(reader: Reader, warehouse: Warehouse, upper: datetime) -> bool:
    """Does QBO hold as many rows (created before the run's bound) as the warehouse has
    live ones? Then no deletion is missing."""
    client, entity = reader.client, reader.entity
    reader.counted()
    in_qbo = client.count(entity, created_before(entity, upper))
    return warehouse.rows_in_qbo(entity, client.realm_id, upper) == in_qbo


def _names(reader: Reader) -> tuple[str, str]:
    return reader.client.realm_id, reader.entity.name
