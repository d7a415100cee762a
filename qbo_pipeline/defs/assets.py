"""The warehouse tables as Dagster assets, one per catalog entity (and its line table).

An entity with lines is one multi-asset: invoices and invoice_lines come from the same
API pages and are written in the same transactions, so they materialise together.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.resources import QuickBooksResource, WarehouseResource
from qbo_pipeline.quickbooks.catalog import ENTITIES, Column, ColumnType, Entity
from qbo_pipeline.quickbooks.faults import QuickBooksError, ValidationFault
from qbo_pipeline.sync.engine import EntitySyncResult, SyncOptions, sync_entity
from qbo_pipeline.vault.errors import VaultError
from qbo_pipeline.warehouse.base import Warehouse

GROUP = "quickbooks"
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


def _kinds() -> set[str]:
    """The warehouse kind shown in the UI follows QBO_WAREHOUSE_URL at load time."""
    url = os.environ.get("QBO_WAREHOUSE_URL", "")
    return {"quickbooks", "postgres" if url.startswith("postgres") else "duckdb"}


def _specs(entity: Entity) -> list[dg.AssetSpec]:
    specs = [
        dg.AssetSpec(
            entity.table,
            group_name=GROUP,
            kinds=_kinds(),
            description=entity.description,
            metadata={
                "dagster/table_name": f"qbo.{entity.table}",
                "dagster/column_schema": _schema((), entity.columns),
            },
        )
    ]
    if entity.lines:
        specs.append(
            dg.AssetSpec(
                entity.lines.table,
                group_name=GROUP,
                kinds=_kinds(),
                description=entity.lines.description,
                metadata={
                    "dagster/table_name": f"qbo.{entity.lines.table}",
                    "dagster/column_schema": _schema(
                        (entity.lines.parent_key, "line_index"), entity.lines.columns
                    ),
                },
            )
        )
    return specs


def _materializations(
    entity: Entity, result: EntitySyncResult, warehouse: Warehouse
) -> Iterator[dg.MaterializeResult]:
    realm = result.realm_id
    yield dg.MaterializeResult(
        asset_key=entity.table,
        metadata={
            "dagster/row_count": warehouse.count(entity.table, realm),
            "rows_loaded": result.rows,
            "rows_deleted": result.deleted,
            "pages": result.pages,
            "mode": result.mode,
            "seconds": round(result.seconds, 3),
            "cursor": result.cursor.isoformat() if result.cursor else "none",
            "realm_id": realm,
        },
    )
    if entity.lines:
        yield dg.MaterializeResult(
            asset_key=entity.lines.table,
            metadata={
                "dagster/row_count": warehouse.count(entity.lines.table, realm),
                "lines_loaded": result.lines,
                "realm_id": realm,
            },
        )


@contextmanager
def _as_dagster_failure() -> Iterator[None]:
    """Errors a retry cannot fix fail the run at once; transient ones may be retried."""
    try:
        yield
    except (VaultError, ValidationFault) as error:  # reconnect, key or realm problems
        raise dg.Failure(description=str(error), allow_retries=False) from None
    except QuickBooksError as error:
        raise dg.Failure(description=str(error)) from None


def build_entity_asset(entity: Entity) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=entity.table,
        specs=_specs(entity),
        partitions_def=realm_partitions,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
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


entity_assets = [build_entity_asset(entity) for entity in ENTITIES]
