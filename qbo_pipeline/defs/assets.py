"""The warehouse tables as Dagster assets, one per catalog entity (and its line table).

An entity with lines is one multi-asset: invoices and invoice_lines come from the same
API pages and are written in the same transactions, so they materialise together.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg

from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.resources import (
    QuickBooksResource,
    WarehouseResource,
    warehouse_resource,
)
from qbo_pipeline.errors import PipelineError, is_transient
from qbo_pipeline.quickbooks.catalog import ENTITIES, Column, ColumnType, Entity
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.webhooks import WebhookEvent
from qbo_pipeline.sync.changes import BY_ID_LIMIT, apply_changes, distinct_ids
from qbo_pipeline.sync.engine import EntitySyncResult, SyncOptions, sync_entity
from qbo_pipeline.warehouse.base import Warehouse

GROUP = "quickbooks"
PROGRESS_SECONDS = 10.0
KEY_PREFIX = "qbo"
# Only transient failures are retried (see _as_dagster_failure); jitter keeps the retries
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


def _schema(keys: tuple[str, ...], columns: tuple[Column, ...]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn("realm_id", "string")]
        + [dg.TableColumn(key, "integer" if key == "line_index" else "string") for key in keys]
        + [dg.TableColumn(c.name, _DAGSTER_TYPES[c.type]) for c in columns]
        + [dg.TableColumn("raw", "json")]
    )


def table_key(table: str) -> dg.AssetKey:
    """Every QuickBooks table is an asset under `qbo/`, as it is a table in schema qbo."""
    return dg.AssetKey([KEY_PREFIX, table])


def _spec(
    table: str,
    description: str,
    columns: tuple[Column, ...],
    keys: tuple[str, ...] = (),
    *,
    warehouse_kind: str,
) -> dg.AssetSpec:
    return dg.AssetSpec(
        table_key(table),
        group_name=GROUP,
        kinds={"quickbooks", warehouse_kind},
        description=description,
        metadata={
            "dagster/table_name": f"qbo.{table}",
            "dagster/column_schema": _schema(keys, columns),
        },
    )


def _specs(entity: Entity, warehouse_kind: str) -> list[dg.AssetSpec]:
    specs = [_spec(entity.table, entity.description, entity.columns, warehouse_kind=warehouse_kind)]
    if entity.lines:
        lines = entity.lines
        specs.append(
            _spec(
                lines.table,
                lines.description,
                lines.columns,
                (lines.parent_key, "line_index"),
                warehouse_kind=warehouse_kind,
            )
        )
    return specs


def _materializations(
    entity: Entity, result: EntitySyncResult, warehouse: Warehouse, events: int
) -> Iterator[dg.MaterializeResult]:
    realm = result.realm_id
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
    yield dg.MaterializeResult(asset_key=table_key(entity.table), metadata=metadata)
    if entity.lines:
        yield dg.MaterializeResult(
            asset_key=table_key(entity.lines.table),
            metadata={
                "dagster/row_count": warehouse.count(entity.lines.table, realm),
                "lines_loaded": result.lines,
                "realm_id": realm,
            },
        )


@contextmanager
def _as_dagster_failure() -> Iterator[None]:
    """The project's errors fail the step with their one line; only transient ones (see
    qbo_pipeline.errors) may be retried by the retry policy."""
    try:
        yield
    except PipelineError as error:
        raise dg.Failure(description=str(error), allow_retries=is_transient(error)) from None


def _sync(
    context: dg.AssetExecutionContext,
    client: QuickBooksClient,
    store: Warehouse,
    entity: Entity,
    config: SyncConfig,
    events: list[tuple[int, WebhookEvent]],
) -> EntitySyncResult:
    """Webhook events name few Ids: read those; otherwise (or past the limit) sync."""
    if events and distinct_ids(event for _, event in events) <= config.by_id_limit:
        return apply_changes(client, store, entity, [event for _, event in events])
    return sync_entity(
        client,
        store,
        entity,
        SyncOptions(full=config.full_refresh, reconcile=config.reconcile),
        on_batch=_progress(context, client.realm_id, entity),
    )


def _progress(
    context: dg.AssetExecutionContext, realm: str, entity: Entity
) -> Callable[[int, int], None]:
    """A progress line for the first batch, then at most every PROGRESS_SECONDS: each line
    is an event the instance stores, and a line per 5,000-row batch cost more than the
    batch's own commit."""
    last = float("-inf")

    def report(rows: int, lines: int) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            context.log.info(
                f"realm {realm} {entity.name}: {rows} rows, {lines} lines loaded so far"
            )

    return report


def build_entity_asset(entity: Entity, *, warehouse_kind: str) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=entity.table,
        specs=_specs(entity, warehouse_kind),
        partitions_def=realm_partitions,
        retry_policy=RETRY_POLICY,
    )
    def _entity_asset(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        quickbooks: QuickBooksResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult]:
        realm = context.partition_key
        with _as_dagster_failure():
            events = (
                quickbooks.runtime.inbox.pending_events(
                    realm, entity.name, config.webhook_events_through
                )
                if config.webhook_events_through is not None
                else []
            )
            with quickbooks.client(realm) as client, warehouse.open() as store:
                result = _sync(context, client, store, entity, config, events)
                if events:  # committed: what they reported is in the warehouse
                    quickbooks.runtime.inbox.mark_processed(
                        [row_id for row_id, _ in events], run_id=context.run.run_id
                    )
                context.log.info(
                    f"realm {realm} {entity.name}: {result.mode} sync wrote {result.rows} rows "
                    f"and {result.lines} lines, marked {result.deleted} deleted, from "
                    f"{result.requests} API requests in {result.seconds:.1f} s"
                )
                yield from _materializations(entity, result, store, len(events))

    return _entity_asset


entity_assets = [
    build_entity_asset(entity, warehouse_kind=warehouse_resource.kind) for entity in ENTITIES
]
