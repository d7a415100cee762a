"""Running qbo_sync's checks against a real instance, and reading what they found."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
import httpx

from qbo_pipeline.definitions import defs


def check_results(instance: dg.DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    """Each check evaluated in the run, by "asset:check"."""
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    found = {}
    for event in events:
        evaluation = event.dagster_event.event_specific_data
        found[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = evaluation
    return found


def run_checks(
    instance: dg.DagsterInstance, realm_id: str, keys: Iterable[dg.AssetCheckKey]
) -> dict[str, dg.AssetCheckEvaluation]:
    """Only these checks, for the realm's partition: what a check launched from the UI does."""
    job = defs.resolve_job_def("qbo_sync").get_subset(asset_check_selection=set(keys))
    result = job.execute_in_process(instance=instance, partition_key=realm_id)
    assert result.success
    return check_results(instance, result.run_id)


def api_requests(company) -> int:
    stats = httpx.get(f"{company.emulator.base_url}/_emulator/stats").json()
    return stats["realms"].get(company.realm_id, {"requests": 0})["requests"]
