"""Sensors: keep the realm partitions in step with the connections in the vault."""

import dagster as dg

from qbo_pipeline.defs.jobs import qbo_sync
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.settings import SettingsError
from qbo_pipeline.sync.runtime import Runtime
from qbo_pipeline.vault.errors import VaultError


@dg.sensor(job=qbo_sync, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def realm_partitions_sensor(
    context: dg.SensorEvaluationContext,
) -> dg.SensorResult | dg.SkipReason:
    """Adds a partition for each newly connected company and runs its first sync."""
    try:
        runtime = Runtime.from_env()
        active = {c.realm_id for c in runtime.store.list() if c.status == "active"}
    except (SettingsError, VaultError, ValueError) as error:
        return dg.SkipReason(f"cannot read the QuickBooks connections: {error}")
    known = set(context.instance.get_dynamic_partitions(realm_partitions.name))
    new = sorted(active - known)
    if new:
        context.log.info(f"new QuickBooks connections: {', '.join(new)}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=realm, run_key=f"first-sync-{realm}") for realm in new
        ],
        dynamic_partitions_requests=[realm_partitions.build_add_request(new)] if new else [],
    )
