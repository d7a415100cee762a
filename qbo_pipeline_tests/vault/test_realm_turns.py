"""One run per company at a time, whatever process (or machine) each runs in: the turn a
run takes in the token store's database, on SQLite (a file lock) and on PostgreSQL (a
session advisory lock). The other runs here are real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from qbo_pipeline.errors import is_transient
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.errors import RealmBusy
from qbo_pipeline_tests.command import clean_env

REALM, OTHER_REALM = "4620816365213456", "4620816365213457"


@pytest.fixture
def environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"QBO_DATABASE_URL": database_url, "QBO_STATE_DIR": str(tmp_path / "state")}


def runtime_waiting(environment: dict[str, str], seconds: int) -> Runtime:
    return Runtime(Settings.from_env({**environment, "QBO_REALM_WAIT_SECONDS": str(seconds)}))


@contextmanager
def other_run(
    environment: dict[str, str], realm: str, seconds: float
) -> Iterator[subprocess.Popen]:
    """A process holding `realm` for `seconds` (from when it says `held`), or until `let_go`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qbo_pipeline_tests.vault.turn_holder", realm, str(seconds)],
        env={**clean_env(), **environment},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held", process.stderr.read()
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def let_go(holder: subprocess.Popen) -> float:
    """Tell the holder to let go; the time it did."""
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    return float(holder.stdout.readline().split()[1])


def test_a_second_run_waits_for_the_realm_and_starts_after_the_first_lets_go(environment):
    runtime = runtime_waiting(environment, 60)
    with other_run(environment, REALM, 2.0) as holder:
        with runtime.realm_turn(REALM, "this test"):
            entered = time.time()
        released = float(holder.stdout.readline().split()[1])
    assert entered >= released
    runtime.close()


def test_runs_of_other_realms_do_not_wait(environment):
    runtime = runtime_waiting(environment, 0)
    with other_run(environment, REALM, 60.0):
        with runtime.realm_turn(OTHER_REALM, "this test"):
            pass
        with pytest.raises(RealmBusy), runtime.realm_turn(REALM, "this test"):
            pass
    runtime.close()


def test_a_turn_not_had_in_time_is_one_line_naming_the_holder(environment):
    runtime = runtime_waiting(environment, 1)
    with (
        other_run(environment, REALM, 60.0) as holder,
        pytest.raises(RealmBusy) as busy,
        runtime.realm_turn(REALM, "this test"),
    ):
        pytest.fail("entered a realm another run holds")
    message = str(busy.value)
    assert "\n" not in message and is_transient(busy.value)
    assert f"realm {REALM} is being read by another run (the test's other run on " in message
    assert f"{socket.gethostname()}, pid {holder.pid}, since " in message
    assert "waited 1 s" in message and "QBO_REALM_WAIT_SECONDS" in message
    runtime.close()


def test_a_killed_run_leaves_its_realm_free_at_once(environment):
    runtime = runtime_waiting(environment, 10)
    with other_run(environment, REALM, 600.0) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        started = time.monotonic()
        with runtime.realm_turn(REALM, "this test"):
            waited = time.monotonic() - started
    assert waited < 5  # the operating system or the server let go with the process
    runtime.close()


def test_turns_follow_one_another_in_one_process(environment):
    runtime = runtime_waiting(environment, 0)
    for _ in range(3):
        with runtime.realm_turn(REALM, "this test"):
            pass
    runtime.close()
