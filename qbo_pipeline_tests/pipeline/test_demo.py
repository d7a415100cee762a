"""`qbo-pipeline demo` end to end, as `make demo` runs it, twice."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.warehouse.url import connect_warehouse
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals, money
from qbo_pipeline_tests.pipeline.secret_scan import (
    assert_no_secret,
    command_output,
    vault_tokens,
)

SIZE = {"customers": 400, "invoices": 900}


def run_demo(cwd: Path) -> subprocess.CompletedProcess:
    env = clean_env()
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [CLI, "demo", "--customers", str(SIZE["customers"]), "--invoices", str(SIZE["invoices"])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def warehouse_contents(path: Path) -> list:
    warehouse = connect_warehouse(f"duckdb:///{path}", default_path=path)
    try:
        return [
            warehouse.query(f"SELECT * EXCLUDE (synced_at) FROM qbo.{table} ORDER BY id")
            for table in ("customers", "invoices")
        ] + [
            warehouse.query("SELECT * FROM qbo.invoice_lines ORDER BY invoice_id, line_index"),
            warehouse.query(
                "SELECT * FROM qbo.report_lines "
                "ORDER BY report, period_start, row_index, column_index"
            ),
        ]
    finally:
        warehouse.close()


def demo_secrets(state_dir: Path, label: str) -> dict[str, str]:
    """The key the demo generated and the tokens its vault holds now, read as the later
    commands read them (the embedded defaults: no key in the environment)."""
    runtime = Runtime(Settings.from_env({"QBO_STATE_DIR": str(state_dir)}))
    [connection] = runtime.store.list()
    return {
        "token key in .qbo/token.key": (state_dir / "token.key").read_text().strip(),
        **vault_tokens(runtime, connection.realm_id, label),
    }


@pytest.mark.slow
def test_demo_loads_exactly_the_emulator_company_and_is_idempotent(tmp_path, monkeypatch):
    for name in ("QBO_TOKEN_KEY", "QBO_TOKEN_KEYS", "QBO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)  # this process reads the demo's vault too
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "qbo.invoice_lines" in first.stdout
    assert "Top open balances" in first.stdout
    warehouse_file = tmp_path / ".qbo" / "warehouse.duckdb"
    assert warehouse_file.is_file()
    assert (tmp_path / ".qbo" / "token.key").is_file()
    secrets = demo_secrets(tmp_path / ".qbo", "first demo's")
    assert_no_secret(command_output(first), secrets)

    # The same seed and size give the same company: compare with a fresh emulator.
    with EmulatorServer(EmulatorConfig(**SIZE)) as emulator:
        realm = emulator.config.realm_id
        state = emulator.state

        def entities(name: str) -> list[dict]:
            url = f"{emulator.base_url}/_emulator/companies/{realm}/entities/{name}"
            return httpx.get(url).json()

        warehouse = connect_warehouse(f"duckdb:///{warehouse_file}", default_path=warehouse_file)
        try:
            assert_warehouse_equals(warehouse, realm, entities)
            (lines,) = warehouse.query("SELECT count(*) FROM qbo.invoice_lines")[0]
            (amount,) = warehouse.query("SELECT sum(amount) FROM qbo.invoice_lines")[0]
        finally:
            warehouse.close()
        summary = state.company.summary()
    assert lines == summary["Invoice"]["line_count"]
    assert money(amount) == money(summary["Invoice"]["line_amount_sum"])
    assert f"{SIZE['customers']:>8,} rows" in first.stdout
    # The last three months of QuickBooks' own reports, the generated data's last month
    # among them.
    assert "qbo_reports: 3 of 3 months read" in first.stdout
    assert "net income 2026-06:" in first.stdout
    # dbt's profit and loss, from the synced lines, says what QuickBooks' report says.
    assert "qbo_analytics: dbt models built" in first.stdout
    incomes = re.findall(r"net income \S+: +(\S+) \(QuickBooks' P&L\) +(\S+) \(dbt", first.stdout)
    assert len(incomes) == 3 and all(ours == theirs for ours, theirs in incomes)

    # Later commands on the embedded defaults read the demo's key from .qbo/token.key.
    env = clean_env()
    other = subprocess.run(
        [CLI, "sync", "--realm", "42"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert other.returncode == 2
    assert "no QuickBooks connection for realm 42" in other.stderr
    assert_no_secret(command_output(other), secrets)

    before = warehouse_contents(warehouse_file)
    second = run_demo(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert warehouse_contents(warehouse_file) == before
    secrets |= demo_secrets(tmp_path / ".qbo", "second demo's")
    assert_no_secret(command_output(second), secrets)


@pytest.mark.parametrize(
    ("sync_ok", "reports_ok", "analytics_error", "succeeded"),
    [
        (True, True, None, True),
        (False, True, None, False),
        (True, False, None, False),
        (True, True, "dbt: model general_ledger failed", False),  # the demo once exited 0
    ],
)
def test_the_demo_exits_non_zero_when_any_of_its_runs_failed(
    sync_ok: bool, reports_ok: bool, analytics_error: str | None, succeeded: bool
) -> None:
    from qbo_pipeline.commands.demo_run import DemoReport
    from qbo_pipeline.commands.execution import RealmRun

    def run(ok: bool) -> RealmRun:
        return RealmRun("9341453050298454", "run-id", ok, None if ok else "failed")

    report = DemoReport(
        realm_id="9341453050298454",
        run=run(sync_ok),
        table_rows={},
        example=[],
        seconds=1.0,
        warehouse="duckdb",
        report_runs=[run(True), run(reports_ok)],
        net_income=[],
        analytics_error=analytics_error,
        modelled_net_income={},
    )
    assert report.succeeded is succeeded
