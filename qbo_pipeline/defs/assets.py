"""The warehouse tables as Dagster assets, one per catalog entity (and its line table).

An entity with lines is one multi-asset: invoices and invoice_lines come from the same
API pages and are written in the same transactions, so they materialise together.
"""

from collections.abc import Iterator
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
from qbo_pipeline.sync.engine import EntitySyncResult, SyncOptions, sync_entity
from qbo_pipeline.warehouse.base import Warehouse

GROUP = "quickbooks"
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
    entity: Entity, result: EntitySyncResult, warehouse: Warehouse
) -> Iterator[dg.MaterializeResult]:
    realm = result.realm_id
    metadata: dict[str, object] = {
        "dagster/row_count": warehouse.count(entity.table, realm),
        "rows_loaded": result.rows,
        "rows_deleted": result.deleted,
        "pages": result.pages,
        "mode": result.mode,
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
        options = SyncOptions(full=config.full_refresh)
        with (
            _as_dagster_failure(),
            quickbooks.client(realm) as client,
            warehouse.open() as store,
        ):
            result = sync_entity(
                client,
                store,
                entity,
                options,
                on_batch=lambda rows, lines: context.log.info(
                    f"realm {realm} {entity.name}: {rows} rows, {lines} lines loaded so far"
                ),
            )
            context.log.info(
                f"realm {realm} {entity.name}: {result.mode} sync wrote {result.rows} rows and "
                f"{result.lines} lines, marked {result.deleted} deleted, from {result.pages} "
                f"pages in {result.seconds:.1f} s"
            )
            yield from _materializations(entity, result, store)

    return _entity_asset


entity_assets = [
    build_entity_asset(entity, warehouse_kind=warehouse_resource.kind) for entity in ENTITIES
]
