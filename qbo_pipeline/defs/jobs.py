"""The sync job: every QuickBooks asset of one realm partition, in one process.

One process per run keeps the realm's request budget in one limiter and lets the embedded
DuckDB warehouse have a single writer; runs of different realms run side by side.
"""

import dagster as dg

from qbo_pipeline.defs.assets import GROUP

qbo_sync = dg.define_asset_job(
    name="qbo_sync",
    selection=dg.AssetSelection.groups(GROUP),
    executor_def=dg.in_process_executor,
    description="Bring one connected QuickBooks company's tables up to date in the warehouse.",
)


@dg.definitions
def default_executor() -> dg.Definitions:
    """Runs launched from the asset graph or catalog (Dagster's implicit asset job) also run
    in one process, for the same reasons as qbo_sync: one limiter per realm, one writer."""
    return dg.Definitions(executor=dg.in_process_executor)
