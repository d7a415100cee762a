"""Sensor and schedule ticks evaluated as the daemon evaluates them: with the definitions'
resources, set up before the tick and torn down after it."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from qbo_pipeline.definitions import defs


def sensor_tick(
    name: str, instance: dg.DagsterInstance, cursor: str | None = None
) -> dg.SensorResult | dg.SkipReason:
    sensor = defs.resolve_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources, sensor_name=name
    ) as context:
        return sensor(context)


def schedule_tick(
    name: str, instance: dg.DagsterInstance, scheduled_execution_time: datetime
) -> list[dg.RunRequest] | dg.SkipReason:
    schedule = defs.resolve_schedule_def(name)
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=scheduled_execution_time,
        resources=defs.resources,
    ) as context:
        return schedule(context)
