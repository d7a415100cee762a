"""Two processes sharing one DuckDB file: each waits its turn instead of failing."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qbo_pipeline.quickbooks.catalog import INVOICE
from qbo_pipeline.warehouse import WarehouseError, duckdb_warehouse
from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse
from qbo_pipeline_tests.sandbox import copies

REPO = Path(__file__).resolve().parents[2]

HOLD_FILE = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""

WRITE_BATCHES = """
import json, sys
from datetime import UTC, datetime, timedelta
from qbo_pipeline.quickbooks.catalog import INVOICE
from qbo_pipeline.warehouse import duckdb_warehouse
from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse

path, realm, fixtures = sys.argv[1], sys.argv[2], sys.argv[3]
invoices = []
for line in open(fixtures):
    message = json.loads(line)
    if message["stream"] == "invoices":
        message["data"].pop("airbyte_cursor")
        invoices.append(message["data"])
warehouse = DuckDBWarehouse(path)
start = datetime(2023, 2, 18, tzinfo=UTC)
for step in range(15):
    for invoice in invoices:
        invoice["SyncToken"] = str(step)
    warehouse.upsert(INVOICE, realm, invoices, cursor=start + timedelta(minutes=step))
print("done", flush=True)
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FILE, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_waits_for_another_process_to_let_go(tmp_path: Path, invoices: list[dict]) -> None:
    path = tmp_path / "shared.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_schema()
    holder = _hold(path, 1.0)
    try:
        started = time.monotonic()
        result = warehouse.upsert(INVOICE, "realm", invoices)
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=10)

    assert result.rows_written == 5
    assert waited > 0.5  # it really was blocked, and retried rather than failing
    assert warehouse.count("invoices") == 5


def test_a_writer_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    warehouse = DuckDBWarehouse(path, lock_timeout=0.3)
    holder = _hold(path, 3.0)
    try:
        with pytest.raises(WarehouseError, match="stayed locked by another process"):
            warehouse.ensure_schema()
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_two_processes_writing_one_file_both_succeed(tmp_path: Path, fixtures_dir: Path) -> None:
    path = tmp_path / "shared.duckdb"
    DuckDBWarehouse(path).ensure_schema()
    fixtures = fixtures_dir / "qbo_sandbox_records.jsonl"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITE_BATCHES), str(path), realm, str(fixtures)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for realm in ("4620816365213455", "4620816365213456")
    ]
    outcomes = [writer.communicate(timeout=120) for writer in writers]

    for writer, (out, err) in zip(writers, outcomes, strict=True):
        assert writer.returncode == 0, err
        assert out.strip() == "done"
    warehouse = DuckDBWarehouse(path)
    for realm in ("4620816365213455", "4620816365213456"):
        assert warehouse.count("invoices", realm) == 5
        assert warehouse.count("invoice_lines", realm) == 21
        assert warehouse.query(
            "SELECT DISTINCT sync_token FROM qbo.invoices WHERE realm_id = $1", [realm]
        ) == [(14,)]
        assert (
            warehouse.cursor(realm, "Invoice")
            == warehouse.query("SELECT TIMESTAMPTZ '2023-02-18 00:14:00+00'")[0][0]
        )


WRITE_ONCE = """
import json, sys
from qbo_pipeline.quickbooks.catalog import INVOICE
from qbo_pipeline.warehouse import duckdb_warehouse
from qbo_pipeline.warehouse.duckdb_warehouse import DuckDBWarehouse

invoices = json.loads(sys.stdin.read())
warehouse = DuckDBWarehouse(sys.argv[1], lock_timeout=20)
print(warehouse.upsert(INVOICE, "realm-late", invoices).rows_written, flush=True)
warehouse.close()
"""


def _write_once_later(path: Path, invoices: list[dict]) -> subprocess.Popen:
    """Another process that writes five invoices of realm-late once it gets the file."""
    late = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITE_ONCE), str(path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert late.stdin is not None
    late.stdin.write(json.dumps(invoices))
    late.stdin.close()
    return late


@pytest.mark.parametrize("bulk", [False, True], ids=["batch by batch", "in bulk"])
def test_a_long_sync_lets_a_waiting_process_in_between_batches(
    tmp_path: Path, invoices: list[dict], bulk: bool
) -> None:
    """The holder keeps the file between batches (each close checkpoints), but lets go
    soon after another process asks for it, not only when its sync ends. In bulk, letting
    go commits what the sync wrote so far, and none of its batches is lost."""
    path = tmp_path / "shared.duckdb"
    holder = DuckDBWarehouse(path, max_hold=0.5, max_hold_unasked=600)
    holder.ensure_schema()
    late = _write_once_later(path, invoices)
    batches = 0
    deadline = time.monotonic() + 60
    with holder.bulk() if bulk else contextlib.nullcontext():
        while late.poll() is None and time.monotonic() < deadline:
            # a sync that never pauses, each batch new invoices
            holder.upsert(INVOICE, "realm-long", copies(invoices, 1 + batches * 5, 5))
            batches += 1
    holder.close()

    late.wait(timeout=30)
    assert late.stdout is not None and late.stderr is not None
    assert late.returncode == 0, late.stderr.read()
    assert late.stdout.read().strip() == "5"
    assert batches > 1 and time.monotonic() < deadline  # it got in while the sync ran
    reopened = DuckDBWarehouse(path)
    assert reopened.count("invoices", "realm-late") == 5
    assert reopened.count("invoices", "realm-long") == 5 * batches


def test_a_runs_reads_share_one_open_file_and_still_let_another_process_in(
    tmp_path: Path, invoices: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside hold() (a sync step), the cursor reads and commits of a run keep the file
    open between them instead of opening (and checkpointing) it each time; a process
    that asks for the file still gets it while they go on."""
    path = tmp_path / "shared.duckdb"
    holder = DuckDBWarehouse(path, max_hold=0.5, max_hold_unasked=600)
    holder.ensure_schema()
    opened: list[str] = []
    connect = duckdb_warehouse.duckdb.connect
    monkeypatch.setattr(
        duckdb_warehouse.duckdb, "connect", lambda *a, **k: opened.append(a[0]) or connect(*a, **k)
    )
    for _ in range(5):
        holder.cursor("realm-long", INVOICE.name)
    alone = len(opened)
    opened.clear()
    with holder.hold():
        for _ in range(5):
            holder.cursor("realm-long", INVOICE.name)
        held = len(opened)

        late = _write_once_later(path, invoices)
        deadline = time.monotonic() + 60
        while late.poll() is None and time.monotonic() < deadline:
            holder.cursor("realm-long", INVOICE.name)
    holder.close()
    assert (alone, held) == (5, 1)
    late.wait(timeout=30)
    assert late.returncode == 0, late.stderr.read() if late.stderr else ""
    assert time.monotonic() < deadline  # it got in while the reads went on
    assert DuckDBWarehouse(path).count("invoices", "realm-late") == 5
