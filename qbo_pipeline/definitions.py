"""The one Definitions object of the project: assets, job, sensors and resources."""

import dagster as dg

from qbo_pipeline.defs.assets import entity_assets
from qbo_pipeline.defs.jobs import qbo_sync
from qbo_pipeline.defs.resources import QuickBooksResource, WarehouseResource
from qbo_pipeline.defs.sensors import realm_partitions_sensor, token_health_sensor

defs = dg.Definitions(
    assets=entity_assets,
    jobs=[qbo_sync],
    sensors=[realm_partitions_sensor, token_health_sensor],
    resources={"quickbooks": QuickBooksResource(), "warehouse": WarehouseResource()},
)
