"""A sync killed with SIGKILL at any moment leaves the warehouse consistent, and the next
run completes it: on DuckDB and on PostgreSQL, killed at a random moment and killed
between an invoice batch's rows and its lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals, money
from qbo_pipeline_tests.pipeline.secret_scan import (
    assert_no_secret,
    company_secrets,
    vault_tokens,
)

ROOT = Path(__file__).resolve().parents[2]
STOPPED_BEFORE_LINES = "qbo_pipeline_tests.pipeline.sync_stopped_before_lines"


def start(command: list[str], env: dict[str, str], cwd: Path, **streams) -> subprocess.Popen:
    base = clean_env()
    return subprocess.Popen(
        command,
        env={**base, **env},
        cwd=cwd,
        stdout=streams.get("stdout", subprocess.PIPE),
        stderr=streams.get("stderr", subprocess.PIPE),
        text=True,
    )


def start_sync(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return start([CLI, "sync"], env, cwd)


def entities(company, name: str) -> list[dict]:
    """The company's entities as the emulator holds them (16,000 invoices take a while)."""
    url = f"{company.emulator.base_url}/_emulator/companies/{company.realm_id}/entities/{name}"
    response = httpx.get(url, timeout=120)
    response.raise_for_status()
    return response.json()


def warehouse_invoices(runtime: Runtime, realm_id: str) -> tuple[set[str], list[tuple]]:
    """The realm's invoice ids in the warehouse, and its invoice_lines rows."""
    with runtime.warehouse() as wh:
        ids = wh.query("SELECT id FROM qbo.invoices WHERE realm_id = $1", [realm_id])
        lines = wh.query(
            "SELECT invoice_id, line_index, detail_type, amount FROM qbo.invoice_lines "
            "WHERE realm_id = $1",
            [realm_id],
        )
    return {row[0] for row in ids}, lines


def assert_whole(ids: set[str], lines: list[tuple], source: dict[str, dict]) -> None:
    """Every stored invoice has exactly the lines QuickBooks holds for it (in order, with
    their detail type and amount), and every stored line has its invoice."""
    stored: defaultdict[str, list[tuple]] = defaultdict(list)
    for invoice_id, index, detail_type, amount in lines:
        stored[invoice_id].append((index, detail_type, money(amount)))
    unknown = ids - source.keys()
    orphaned = stored.keys() - ids
    partial = sorted(
        invoice_id
        for invoice_id in ids - unknown
        if sorted(stored.get(invoice_id, []))
        != [
            (index, line["DetailType"], money(line.get("Amount", 0)))
            for index, line in enumerate(source[invoice_id].get("Line", []))
        ]
    )
    problems = (len(unknown), len(orphaned), len(partial))
    assert problems == (0, 0, 0), (
        f"{problems[0]} invoices QBO does not hold, lines of {problems[1]} invoices not "
        f"stored, {problems[2]} invoices without exactly their lines (e.g. {partial[:5]})"
    )


def wait_for_first_batch(process: subprocess.Popen, seen: list[str], timeout: float = 120) -> None:
    """Block until the run reports a committed batch of invoices (or fail the test); the
    lines read are kept in `seen`."""
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        seen.append(line)
        if "Invoice" in line and "loaded so far" in line:
            return
        if time.monotonic() > deadline:
            break
    pytest.fail("the sync never reported a committed batch")


def wait_for_marker(process: subprocess.Popen, marker: Path, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"the sync ended (status {process.returncode}) before the batch")
        if time.monotonic() > deadline:
            pytest.fail("the sync never reached the batch's lines")
        time.sleep(0.05)
    return json.loads(marker.read_text())


def rerun_completes(company, runtime: Runtime, cwd: Path) -> subprocess.CompletedProcess:
    """An ordinary `qbo-pipeline sync` after the kill makes the warehouse the company."""
    rerun = start_sync(company.env, cwd)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out + err
    with runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, lambda name: entities(company, name))
        assert wh.cursor(company.realm_id, "Invoice") is not None
    return subprocess.CompletedProcess(rerun.args, rerun.returncode, out, err)


@pytest.mark.slow
def test_kill_minus_nine_mid_sync_then_rerun(connect, warehouse_url, tmp_path):
    company = connect(warehouse_url=warehouse_url, customers=500, invoices=16000)
    # A kill right after the first batch lands on DuckDB, a moment later on PostgreSQL: two
    # moments in all, as many runs as the two warehouses need (the exact moment between a
    # batch and its lines is the next test's).
    delay = 0.0 if warehouse_url.startswith("duckdb") else 0.1
    env = company.env
    source = {invoice["Id"]: invoice for invoice in entities(company, "Invoice")}
    secrets = company_secrets(company)

    victim = start_sync(env, tmp_path)
    seen: list[str] = []
    wait_for_first_batch(victim, seen)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    out, err = victim.communicate(timeout=30)

    runtime = Runtime(Settings.from_env(env))
    ids, lines = warehouse_invoices(runtime, company.realm_id)
    assert_whole(ids, lines, source)
    assert len(ids) < 16000  # killed mid-way
    if not warehouse_url.startswith("duckdb"):
        # PostgreSQL commits each batch; DuckDB an entity's batches together (bulk), so
        # it holds what it last let go of, if anything.
        assert len(ids) >= 5000
    with runtime.warehouse() as wh:
        assert wh.cursor(company.realm_id, "Invoice") is None  # not committed before the end

    rerun = rerun_completes(company, runtime, tmp_path)
    assert_whole(*warehouse_invoices(runtime, company.realm_id), source)
    secrets |= vault_tokens(company.runtime, company.realm_id, "after the runs")
    outputs = {
        "killed sync's stdout": out,
        "killed sync's stderr": "".join(seen) + err,
        "second sync's stdout": rerun.stdout,
        "second sync's stderr": rerun.stderr,
    }
    assert_no_secret(outputs, secrets)


@pytest.mark.slow
def test_kill_between_an_invoice_batch_and_its_lines(connect, warehouse_url, tmp_path):
    """Killed once the second batch's invoices are written and before their lines: the
    transaction holding them rolls back, so the warehouse holds no more than the first
    batch, whole, and nothing of the second, and the cursor stays where it was."""
    # Batches are 5,000 rows or a page more (pages are up to 1,000): 7,000 invoices make
    # at least two.
    company = connect(warehouse_url=warehouse_url, customers=100, invoices=7000)
    source = {invoice["Id"]: invoice for invoice in entities(company, "Invoice")}
    secrets = company_secrets(company)
    marker = tmp_path / "stopped.json"
    out_file, err_file = tmp_path / "killed.out", tmp_path / "killed.err"
    # The entry module is imported from the repository, as pytest imports the tests.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**company.env, "PYTHONPATH": path}

    with out_file.open("w") as stdout, err_file.open("w") as stderr:
        victim = start(
            [sys.executable, "-m", STOPPED_BEFORE_LINES, str(marker), "2", "sync"],
            env,
            tmp_path,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            stopped = wait_for_marker(victim, marker)
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    [first], killed = stopped["committed"], stopped["open"]
    assert len(first) >= 5000 and killed and not set(first) & set(killed)
    # Where it was killed: the open transaction held both batches' invoices and only the
    # first batch's lines.
    first_lines = sum(len(source[invoice_id].get("Line", [])) for invoice_id in first)
    assert stopped["invoices_in_transaction"] == len(first) + len(killed)
    assert stopped["lines_in_transaction"] == first_lines

    runtime = Runtime(Settings.from_env(company.env))
    ids, lines = warehouse_invoices(runtime, company.realm_id)
    # No half batch: none of the killed batch's invoices. DuckDB writes an entity's
    # batches in one transaction, so the first is gone with it, unless a pause between
    # batches let the file go and committed it.
    if warehouse_url.startswith("duckdb"):
        assert ids in (set(), set(first))
    else:
        assert ids == set(first)
    assert_whole(ids, lines, source)  # and no invoice without its lines
    assert len(lines) == (first_lines if ids else 0)
    with runtime.warehouse() as wh:
        assert wh.cursor(company.realm_id, "Invoice") is None

    rerun = rerun_completes(company, runtime, tmp_path)
    secrets |= vault_tokens(company.runtime, company.realm_id, "after the runs")
    outputs = {
        "killed sync's stdout": out_file.read_text(),
        "killed sync's stderr": err_file.read_text(),
        "second sync's stdout": rerun.stdout,
        "second sync's stderr": rerun.stderr,
    }
    assert_no_secret(outputs, secrets)
