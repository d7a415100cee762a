"""One Dagster partition per connected QuickBooks company (realm)."""

import dagster as dg

realm_partitions = dg.DynamicPartitionsDefinition(name="realm")
