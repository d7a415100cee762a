"""What a Dagster user types by habit in the repository root, with no environment set:
`dagster dev` and `dg dev` start, and the UI's API lists the QuickBooks assets, sensors
and schedules (the root dagster.yaml is the embedded instance, needing no server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from qbo_pipeline.definitions import defs
from qbo_pipeline.quickbooks.catalog import ENTITIES
from qbo_pipeline.quickbooks.reports import REPORTS
from qbo_pipeline.warehouse.schema import tables
from qbo_pipeline_tests.browser import ROOT, free_port, wait_for_dagster

pytestmark = pytest.mark.slow

QUERY = """{
  assetNodes { assetKey { path } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { name } schedules { name } } } }
}"""


@pytest.mark.parametrize("command", [["dagster", "dev"], ["dg", "dev"]])
def test_typed_in_the_repository_root_with_no_environment_it_serves_the_assets(
    command, tmp_path: Path
) -> None:
    binary = Path(sys.executable).parent / command[0]
    port = free_port()
    log = tmp_path / "dev.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(binary), *command[1:], "-p", str(port), "-h", "127.0.0.1"],
            cwd=ROOT,
            env={"PATH": f"{binary.parent}:/usr/bin:/bin", "HOME": str(tmp_path)},
            stdout=output,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_dagster(base, process)
        answer = httpx.post(f"{base}/graphql", json={"query": QUERY}, timeout=60).json()
        started = log.read_text()  # before shutting down, which logs its own noise
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    keys = {"/".join(node["assetKey"]["path"]) for node in answer["data"]["assetNodes"]}
    synced = {f"qbo/{table.name}" for table in tables(ENTITIES) if table.name[0] != "_"}
    reports = {f"qbo/reports/{report.table_name}" for report in REPORTS}
    assert synced | reports <= keys
    # and the dbt models downstream of them, as the definitions load in this process
    assert keys == {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "analytics/general_ledger" in keys
    [repository] = answer["data"]["repositoriesOrError"]["nodes"]
    assert {s["name"] for s in repository["sensors"]} >= {
        "qbo_webhook_sensor",
        "realm_partitions_sensor",
        "token_health_sensor",
        "qbo_analytics_after_sync",
    }
    assert {s["name"] for s in repository["schedules"]} == {
        "qbo_incremental_schedule",
        "qbo_reconciliation_schedule",
        "qbo_reports_schedule",
    }
    assert "Error" not in started
