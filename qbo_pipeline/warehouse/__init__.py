"""Destinations analysts query: DuckDB or PostgreSQL tables in schema qbo, from the catalog.

Imports no Dagster and no HTTP; the sync engine hands it raw entities and a cursor.
"""

from qbo_pipeline.urls import mask_url
from qbo_pipeline.warehouse.base import UpsertResult, Warehouse
from qbo_pipeline.warehouse.errors import (
    UnfitColumn,
    UnfitValue,
    WarehouseBusy,
    WarehouseError,
)
from qbo_pipeline.warehouse.normalise import encode_batch
from qbo_pipeline.warehouse.records import Records
from qbo_pipeline.warehouse.url import connect_warehouse

__all__ = [
    "Records",
    "UnfitColumn",
    "UnfitValue",
    "UpsertResult",
    "Warehouse",
    "WarehouseBusy",
    "WarehouseError",
    "connect_warehouse",
    "encode_batch",
    "mask_url",
]
