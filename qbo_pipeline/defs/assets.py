"""The warehouse tables as Dagster assets: one asset per table, all from one step.

One multi-asset (`SYNC_OP`) holds every catalog table, as a connector's tables are one
Dagster multi-asset: a run syncs the selected entities side by side, under the realm's one
limiter, and each table materialises as its entity commits. An entity's line table comes
from the same API pages and transactions as the entity, so selecting either syncs both.
"""

import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from queue import SimpleQueue

import dagster as dg

from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.resources import (
    QuickBooksResource,
    WarehouseResource,
    warehouse_resource,
)
from qbo_pipeline.errors import PipelineError, is_transient
from qbo_pipeline.quickbooks.catalog import ENTITIES, ColumnType, Entity
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.webhooks import WebhookEvent
from qbo_pipeline.sync.cdc import SharedChanges
from qbo_pipeline.sync.changes import BY_ID_LIMIT, apply_changes, distinct_ids
from qbo_pipeline.sync.engine import (
    NOT_DUE,
    EntitySyncResult,
    SyncOptions,
    share_run_changes,
    sync_entity,
)
from qbo_pipeline.warehouse.base import Warehouse
from qbo_pipeline.warehouse.schema import Table, entity_table, line_table
from qbo_pipeline.warehouse.sql import JSON

GROUP = "quickbooks"
# The one step that syncs a realm's tables, and the name its run config goes under.
SYNC_OP = "quickbooks"
# Entities synced side by side in a run: enough to overlap one entity's first page, count
# and last pages with another's reading; the realm's limiter shares out the requests.
ENTITIES_AT_ONCE = 4
PROGRESS_SECONDS = 10.0
KEY_PREFIX = "qbo"
# Only transient failures are retried (see as_dagster_failure); jitter keeps the retries
# of many realms' runs that failed together (Intuit down) from returning together.
RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
_DAGSTER_TYPES = {
    ColumnType.TEXT: "string",
    ColumnType.BOOLEAN: "boolean",
    ColumnType.INTEGER: "integer",
    ColumnType.DECIMAL: "decimal",
    ColumnType.DATE: "date",
    ColumnType.TIMESTAMP: "timestamp",
    JSON: "json",
}


class SyncConfig(dg.Config):
    full_refresh: bool = False
    """Ignore the cursor and fetch every row again (upserts keep this idempotent)."""
    reconcile: bool = False
    """After the incremental read, compare QBO's count with the warehouse (one call per
    entity) and read in full only on a difference: the nightly reconciliation."""
    webhook_events_through: int | None = None
    """Apply the realm's pending webhook events up to this inbox row (qbo_webhook_sensor
    sets it): the Ids they name are read, or, past BY_ID_LIMIT, the entity is synced
    incrementally. The events are marked processed once the warehouse has committed."""
    by_id_limit: int = BY_ID_LIMIT
    """Up to this many changed Ids are read by Id (200 to a query); more, and the run
    syncs the entity incrementally instead."""


def table_metadata(table: Table) -> dict[str, object]:
    """The warehouse table an asset is (or writes into), with its columns as the Dagster
    UI lists them, each with its comment."""
    return {
        "dagster/table_name": table.qualified.replace('"', ""),
        "dagster/column_schema": _schema(table),
    }


def _schema(table: Table) -> dg.TableSchema:
    """The warehouse table's columns as the Dagster UI lists them, with their comments."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, _DAGSTER_TYPES[c.type], description=c.description or None)
            for c in table.columns
        ]
    )


def table_key(table: str) -> dg.AssetKey:
    """Every QuickBooks table is an asset under `qbo/`, as it is a table in schema qbo."""
    return dg.AssetKey([KEY_PREFIX, table])


def _spec(table: Table, *, warehouse_kind: str, skippable: bool = False) -> dg.AssetSpec:
    return dg.AssetSpec(
        table_key(table.name),
        group_name=GROUP,
        skippable=skippable,
        kinds={"quickbooks", warehouse_kind},
        description=table.description,
        metadata=table_metadata(table),
    )


def entity_keys(entity: Entity) -> list[dg.AssetKey]:
    """The entity's tables: its own, and its lines'."""
    keys = [table_key(entity.table)]
    if entity.lines:
        keys.append(table_key(entity.lines.table))
    return keys


def _specs(entity: Entity, warehouse_kind: str) -> list[dg.AssetSpec]:
    """An entity CDC cannot track is not read by every run (engine.UNTRACKED_EVERY): a run
    that skips it leaves its table unmaterialised."""
    tables = [entity_table(entity), line_table(entity)]
    skippable = not entity.cdc
    return [
        _spec(table, warehouse_kind=warehouse_kind, skippable=skippable)
        for table in tables
        if table
    ]


def _materializations(
    entity: Entity,
    result: EntitySyncResult,
    warehouse: Warehouse,
    events: int,
    selected: AbstractSet[dg.AssetKey],
) -> Iterator[dg.MaterializeResult]:
    realm = result.realm_id
    if result.mode == NOT_DUE:
        return
    metadata: dict[str, object] = {
        "dagster/row_count": warehouse.count(entity.table, realm),
        "rows_loaded": result.rows,
        "rows_deleted": result.deleted,
        "api_requests": result.requests,
        "mode": result.mode,
        "webhook_events": events,
        "seconds": round(result.seconds, 3),
        "realm_id": realm,
    }
    if result.cursor is not None:
        metadata["cursor"] = dg.MetadataValue.timestamp(result.cursor)
    if table_key(entity.table) in selected:
        yield dg.MaterializeResult(asset_key=table_key(entity.table), metadata=metadata)
    if entity.lines and table_key(entity.lines.table) in selected:
        yield dg.MaterializeResult(
            asset_key=table_key(entity.lines.table),
            metadata={
                "dagster/row_count": warehouse.count(entity.lines.table, realm),
                "lines_loaded": result.lines,
                "realm_id": realm,
            },
        )


@contextmanager
def as_dagster_failure() -> Iterator[None]:
    """The project's errors fail the step with their one line; only transient ones (see
    qbo_pipeline.errors) may be retried by the retry policy."""
    try:
        yield
    except PipelineError as error:
        raise dg.Failure(description=str(error), allow_retries=is_transient(error)) from None


class EntitiesFailed(PipelineError):
    """Some entities of the run failed while the others were written: one line each, and
    transient only if every one of them was."""

    def __init__(self, errors: list[PipelineError]) -> None:
        super().__init__("; ".join(dict.fromkeys(str(error) for error in errors)))
        self.transient = all(is_transient(error) for error in errors)


def _by_id(events: list[tuple[int, WebhookEvent]], config: SyncConfig) -> bool:
    """Webhook events name few Ids: read those; otherwise (or past the limit) sync."""
    return bool(events) and distinct_ids(event for _, event in events) <= config.by_id_limit


def _sync(
    client: QuickBooksClient,
    store: Warehouse,
    entity: Entity,
    options: SyncOptions,
    events: list[tuple[int, WebhookEvent]],
    by_id: bool,
    shared: SharedChanges | None,
    on_batch: Callable[[int, int], None],
) -> EntitySyncResult:
    if by_id:
        return apply_changes(client, store, entity, [event for _, event in events])
    if events and not entity.cdc:  # events wait on this read: it is due whenever they come
        options = replace(options, untracked_every=timedelta(0))
    return sync_entity(client, store, entity, options, on_batch=on_batch, shared=shared)


def _progress(
    lines: SimpleQueue[str | Future[EntitySyncResult]], realm: str, entity: Entity
) -> Callable[[int, int], None]:
    """A progress line for the first batch, then at most every PROGRESS_SECONDS: each line
    is an event the instance stores, and a line per 5,000-row batch cost more than the
    batch's own commit. The lines are queued for the step's own thread to log."""
    last = float("-inf")

    def report(rows: int, written_lines: int) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            lines.put(
                f"realm {realm} {entity.name}: {rows} rows, {written_lines} lines loaded so far"
            )

    return report


def selected_entities(selected: AbstractSet[dg.AssetKey]) -> list[Entity]:
    """The entities a run syncs: those with a selected table (a line table brings its
    entity, since both come from the same pages)."""
    return [entity for entity in ENTITIES if any(key in selected for key in entity_keys(entity))]


def _sync_side_by_side(
    context: dg.AssetExecutionContext,
    client: QuickBooksClient,
    store: Warehouse,
    entities: list[Entity],
    config: SyncConfig,
    events: dict[str, list[tuple[int, WebhookEvent]]],
    mark_processed: Callable[[list[int]], None],
) -> Iterator[dg.MaterializeResult]:
    """Each entity synced on a thread of its own, all under the realm's one limiter, so
    one entity's first page, count and last pages overlap another's reading; each table
    materialises as soon as its entity is committed. An entity that fails does not stop
    the others: the step fails after they are written, naming each failure."""
    realm, selected = client.realm_id, context.selected_asset_keys
    # The workers' progress lines and finished entities, in the order they happen: the
    # step's own thread logs and materialises each at once.
    happenings: SimpleQueue[str | Future[EntitySyncResult]] = SimpleQueue()
    failures: list[PipelineError] = []
    options = SyncOptions(full=config.full_refresh, reconcile=config.reconcile)
    by_id = {entity.name: _by_id(events[entity.name], config) for entity in entities}
    syncing = [entity for entity in entities if not by_id[entity.name]]
    shared = share_run_changes(client, store, syncing, options)
    workers = max(1, min(ENTITIES_AT_ONCE, len(entities)))
    with ThreadPoolExecutor(workers, thread_name_prefix=f"qbo-sync-{realm}") as pool:
        futures: dict[Future[EntitySyncResult], Entity] = {}
        for entity in entities:
            future = pool.submit(
                _sync,
                client,
                store,
                entity,
                options,
                events[entity.name],
                by_id[entity.name],
                shared,
                _progress(happenings, realm, entity),
            )
            futures[future] = entity
            future.add_done_callback(happenings.put)
        for _ in futures:
            happening = happenings.get()
            while isinstance(happening, str):
                context.log.info(happening)
                happening = happenings.get()
            entity = futures[happening]
            try:
                result = happening.result()
            except PipelineError as error:
                context.log.error(f"realm {realm} {entity.name}: {error}")
                failures.append(error)
                continue
            entity_events = events[entity.name]
            if entity_events:  # committed: what they reported is in the warehouse
                mark_processed([row_id for row_id, _ in entity_events])
            context.log.info(
                f"realm {realm} {entity.name}: not read, as CDC cannot track it: read in "
                f"full every {options.untracked_every} and on a full or reconciling run"
                if result.mode == NOT_DUE
                else f"realm {realm} {entity.name}: {result.mode} sync wrote {result.rows} "
                f"rows and {result.lines} lines, marked {result.deleted} deleted, from "
                f"{result.requests} API requests in {result.seconds:.1f} s"
            )
            yield from _materializations(entity, result, store, len(entity_events), selected)
    while not happenings.empty():  # lines queued after the last entity finished
        happening = happenings.get_nowait()
        if isinstance(happening, str):
            context.log.info(happening)
    if failures:
        raise failures[0] if len(failures) == 1 else EntitiesFailed(failures)


def build_sync_asset(*, warehouse_kind: str) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=SYNC_OP,
        specs=[spec for entity in ENTITIES for spec in _specs(entity, warehouse_kind)],
        partitions_def=realm_partitions,
        retry_policy=RETRY_POLICY,
        can_subset=True,
    )
    def _sync_asset(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        quickbooks: QuickBooksResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult]:
        realm = context.partition_key
        inbox = quickbooks.runtime.inbox
        entities = selected_entities(context.selected_asset_keys)
        with as_dagster_failure():
            events = {
                entity.name: (
                    inbox.pending_events(realm, entity.name, config.webhook_events_through)
                    if config.webhook_events_through is not None
                    else []
                )
                for entity in entities
            }

            def mark_processed(row_ids: list[int]) -> None:
                inbox.mark_processed(row_ids, run_id=context.run.run_id)

            with quickbooks.client(realm) as client, warehouse.open() as store, store.hold():
                yield from _sync_side_by_side(
                    context, client, store, entities, config, events, mark_processed
                )

    return _sync_asset


sync_asset = build_sync_asset(warehouse_kind=warehouse_resource.kind)
