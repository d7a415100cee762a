"""The whole path as `make dev` runs it: a change in QuickBooks reaches the warehouse
through a signed webhook, the inbox, a tick of qbo_webhook_sensor in `dagster dev`'s daemon
and a run in a process of its own; and stopping the stack leaves no process behind.

The daemon's automation sensor then builds the dbt models over the change. The other
webhook tests evaluate the sensor and run its requests in the test's process; only this
one has Dagster's daemon, run queue and run launcher in the loop.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import httpx
import pytest

from qbo_pipeline.commands.dev_stack import DevStack
from qbo_pipeline.commands.execution import dagster_home
from qbo_pipeline.runtime import Runtime

# From the changes: `dagster dev` is still booting then (30-60 s on 2 shared cores), and a
# change waits for a sensor tick (5-10 s), the run queue (up to 5 s) and a new process.
DEADLINE = 120.0
POLL_SECONDS = 0.5
NEW_NAME = "Renamed through the daemon"
# From the webhook run's end: a tick of the automation sensor (30 s), a run's process and
# dbt's build of every model on 2 shared cores.
MODELS_DEADLINE = 240.0
TRIGGER_TAG = "qbo/trigger"  # qbo_webhook_sensor's tag on the runs it requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's settings must be its own: DevStack lets the environment's QBO settings
    win, and a DAGSTER_HOME would take its first sync to another instance."""
    for name in list(os.environ):
        if name.startswith(("QBO_", "QUICKBOOKS_", "DAGSTER_")) and name != "QBO_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


def wait_until(what: str, done: Callable[[], bool], deadline: float) -> None:
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE:g} s of the changes")
        time.sleep(POLL_SECONDS)


def api(stack: DevStack, runtime: Runtime, path: str, body: dict) -> dict:
    """A write through the accounting API, as another app connected to the company makes."""
    token = runtime.tokens.access_token(stack.realm_id)
    answer = httpx.post(
        f"{stack.settings.api_base_url}/v3/company/{stack.realm_id}/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def entities(stack: DevStack, name: str) -> list[dict]:
    url = f"{stack.emulator.base_url}/_emulator/companies/{stack.realm_id}/entities/{name}"
    return httpx.get(url, timeout=30).json()


def all_processed(stack: DevStack, runtime: Runtime) -> Callable[[], bool]:
    """The emulator has delivered every event and the inbox has processed each of them."""

    def check() -> bool:
        answer = httpx.get(f"{stack.emulator.base_url}/_emulator/webhooks", timeout=30).json()
        totals, counts = answer["totals"], runtime.inbox.counts()
        if totals["pending_events"] or counts.get("pending"):
            return False
        return counts.get("processed", 0) >= max(totals["events_delivered"], 2)

    return check


def webhook_run_succeeded(instance: dg.DagsterInstance) -> Callable[[], bool]:
    def check() -> bool:
        runs = instance.get_runs(
            dg.RunsFilter(tags={TRIGGER_TAG: "webhook"}, statuses=[dg.DagsterRunStatus.SUCCESS])
        )
        return bool(runs)

    return check


def ledger_built_after(instance: dg.DagsterInstance, since: float) -> Callable[[], bool]:
    """The dbt model general_ledger materialised after `since` (a timestamp): by a run
    qbo_analytics_after_sync launched."""
    key = dg.AssetKey(["analytics", "general_ledger"])

    def check() -> bool:
        event = instance.get_latest_materialization_event(key)
        return event is not None and event.timestamp > since

    return check


def descendants(root: int) -> set[int]:
    """Every process below `root`, from /proc (a snapshot)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pids: set[int], group: int) -> dict[int, str]:
    """Those of `pids`, and members of process group `group`, that still run (a zombie
    has ended; it only waits for its parent), with their command lines."""
    alive = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        member = pid in pids or (group > 0 and int(stat[2]) == group) if stat else False
        if stat is None or stat[0] == "Z" or not member:
            continue
        try:
            alive[pid] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            continue
    return alive


def _stat(pid: int) -> list[str] | None:
    """state, ppid, pgrp, ... of a process (the fields after its command's name)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_change_reaches_the_warehouse_through_the_daemon_and_stop_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_environment(monkeypatch)
    stack = DevStack(
        state_dir=tmp_path / "state",
        dagster_port=free_port(),
        churn=0,
        customers=20,
        invoices=40,
    )
    runtime: Runtime | None = None
    family: set[int] = set()
    group = 0
    try:
        stack.start()
        assert stack._dagster is not None  # the `dagster dev` process, to follow its children
        group = stack._dagster.pid
        runtime = Runtime(stack.settings)
        instance = dg.DagsterInstance.from_config(str(dagster_home(stack.state_dir)))
        customer = entities(stack, "Customer")[3]
        invoice = entities(stack, "Invoice")[5]

        renamed = {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True}
        api(stack, runtime, "customer", {**renamed, "DisplayName": NEW_NAME})
        removed = {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]}
        api(stack, runtime, "invoice?operation=delete", removed)
        deadline = time.monotonic() + DEADLINE
        wait_until("every webhook event processed", all_processed(stack, runtime), deadline)
        wait_until("a webhook run succeeded", webhook_run_succeeded(instance), deadline)
        family = descendants(group)
        # The daemon's automation sensor then builds the dbt models over the change.
        webhook_runs = instance.get_run_records(
            dg.RunsFilter(tags={TRIGGER_TAG: "webhook"}, statuses=[dg.DagsterRunStatus.SUCCESS])
        )
        synced = max(record.end_time or 0 for record in webhook_runs)
        wait_until(
            "the general ledger rebuilt after the webhook run",
            ledger_built_after(instance, synced),
            time.monotonic() + MODELS_DEADLINE,
        )
        family |= descendants(group)

        with runtime.warehouse() as warehouse:
            [(name,)] = warehouse.query(
                "SELECT display_name FROM qbo.customers WHERE realm_id = $1 AND id = $2",
                [stack.realm_id, customer["Id"]],
            )
            [(deleted_at,)] = warehouse.query(
                "SELECT deleted_at FROM qbo.invoices WHERE realm_id = $1 AND id = $2",
                [stack.realm_id, invoice["Id"]],
            )
            [(posted,)] = warehouse.query(
                "SELECT count(*) FROM analytics.general_ledger WHERE realm_id = $1 "
                "AND transaction_type = 'Invoice' AND transaction_id = $2",
                [stack.realm_id, invoice["Id"]],
            )
            [(ledger,)] = warehouse.query("SELECT count(*) FROM analytics.general_ledger")
        assert name == NEW_NAME
        assert deleted_at is not None
        assert posted == 0 and ledger > 0  # the deleted invoice left the ledger
        assert runtime.inbox.counts().keys() == {"processed"}
    finally:
        if group:
            family |= descendants(group) | {group}
        stack.stop()
        if runtime is not None:
            runtime.close()
    # `dagster dev` starts a webserver, a daemon, a code server (which has a gRPC child),
    # and each run with its log tails: all of them must be gone once stop() returns.
    left = running(family, group)
    assert not left, f"still running after DevStack.stop(): {left}"
