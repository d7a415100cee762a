"""A sync killed with SIGKILL at any moment leaves the warehouse consistent, and the next
run completes it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals


def start_sync(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    base = clean_env()
    return subprocess.Popen(
        [CLI, "sync"],
        env={**base, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def consistent(runtime: Runtime, realm_id: str) -> None:
    """Every stored invoice has exactly its lines, and no line is orphaned."""
    with runtime.warehouse() as wh:
        mismatched = wh.query(
            "SELECT i.id FROM qbo.invoices i "
            "LEFT JOIN (SELECT invoice_id, count(*) AS n FROM qbo.invoice_lines "
            "GROUP BY invoice_id) l ON l.invoice_id = i.id "
            "WHERE coalesce(l.n, 0) <> json_array_length(CAST(i.raw AS JSON), '$.Line')"
        )
        orphans = wh.query(
            "SELECT count(*) FROM qbo.invoice_lines l "
            "WHERE NOT EXISTS (SELECT 1 FROM qbo.invoices i WHERE i.id = l.invoice_id)"
        )
    assert mismatched == []
    assert orphans == [(0,)]


def wait_for_first_batch(process: subprocess.Popen, timeout: float = 120) -> None:
    """Block until the run reports a committed batch of invoices (or fail the test)."""
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        if "Invoice" in line and "loaded so far" in line:
            return
        if time.monotonic() > deadline:
            break
    pytest.fail("the sync never reported a committed batch")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.1])
def test_kill_minus_nine_mid_sync_then_rerun(connect, tmp_path, delay):
    company = connect(customers=500, invoices=16000)
    env = company.env

    victim = start_sync(env, tmp_path)
    wait_for_first_batch(victim)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)

    runtime = Runtime(Settings.from_env(env))
    consistent(runtime, company.realm_id)
    with runtime.warehouse() as wh:
        assert 5000 <= wh.count("invoices", company.realm_id) < 16000  # killed mid-way
        assert wh.cursor(company.realm_id, "Invoice") is None  # not committed before the end

    rerun = start_sync(env, tmp_path)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out + err
    with runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
    consistent(runtime, company.realm_id)
