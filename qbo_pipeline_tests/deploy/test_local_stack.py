"""`deploy/local/run.sh` as an operator runs it: Dagster's production stack (gRPC code
server, webserver, daemon, `qbo-pipeline serve`) on the repository's deploy/dagster.yaml,
with run, event-log and schedule storage on a throwaway PostgreSQL server, and the token
store and warehouse on PostgreSQL too. Two companies are connected through the service.

What it shows, read from the instance the stack wrote:
- a schedule tick and webhook-sensor ticks launch runs through the daemon's run queue,
  and the runs succeed;
- two runs of one company never overlap, while runs of the two companies do;
- the daemon, killed in the middle, is started again by the stack and loses no run and
  no webhook event;
- SIGTERM stops every process of the stack.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest

from qbo_pipeline.commands.demo_run import authorize_through
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.crypto import generate_key
from qbo_pipeline_tests.command import clean_env
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals
from qbo_pipeline_tests.postgres_server import create_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "deploy" / "local" / "run.sh"
SECOND_REALM = "4620816365213456"
# Loading Dagster four times over on 2 shared cores, then waiting for a minute's tick.
READY_DEADLINE = 300.0
SETTLE_DEADLINE = 420.0
SCHEDULE = "qbo_incremental_schedule"
WEBHOOK_TAG = "qbo/trigger"
PARTITION = "dagster/partition"
_DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, done: Callable[[], bool], deadline: float) -> None:
    until = time.monotonic() + deadline
    while not done():
        if time.monotonic() > until:
            raise AssertionError(f"{what}: not within {deadline:g} s")
        time.sleep(1.0)


@dataclass
class Stack:
    process: subprocess.Popen
    log: Path
    env: dict[str, str]
    emulator: EmulatorServer
    runtime: Runtime
    monkeypatch: pytest.MonkeyPatch

    def lines(self) -> list[str]:
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if line.startswith("qbo-pipeline stack:")
        ]

    def pids(self, component: str) -> list[int]:
        pattern = re.compile(rf"started {re.escape(component)} \(pid (\d+)\)")
        return [int(m.group(1)) for line in self.lines() if (m := pattern.search(line))]

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.env['QBO_SERVICE_PORT']}"

    def instance(self) -> dg.DagsterInstance:
        """The stack's instance, from its DAGSTER_HOME and the throwaway server it named."""
        [url] = [
            line.split(" at ")[1]
            for line in self.lines()
            if "throwaway PostgreSQL server at" in line
        ]
        self.monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
        return dg.DagsterInstance.from_config(self.env["QBO_STACK_DIR"] + "/dagster_home")


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    service_port = free_port()
    client_secret, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    emulator = EmulatorServer(
        EmulatorConfig(
            client_id="stack-app",
            client_secret=client_secret,
            customers=40,
            invoices=80,
            rotation="intuit",
            webhook_url=f"http://127.0.0.1:{service_port}/quickbooks/webhooks",
            webhook_verifier=verifier,
            webhook_batch_seconds=0.5,
        )
    ).start()
    httpx.post(
        f"{emulator.base_url}/_emulator/companies",
        json={"realm_id": SECOND_REALM, "customers": 30, "invoices": 60, "seed": 11},
        timeout=30,
    ).raise_for_status()
    env = {
        name: value
        for name, value in clean_env().items()
        if not name.startswith("DAGSTER_") or name == "DAGSTER_TEST"
    }
    env |= {
        "QUICKBOOKS_CLIENT_ID": "stack-app",
        "QUICKBOOKS_CLIENT_SECRET": client_secret,
        "QUICKBOOKS_DISCOVERY_URL": emulator.discovery_url,
        "QUICKBOOKS_API_BASE_URL": emulator.api_base_url,
        "QUICKBOOKS_REDIRECT_URI": f"http://127.0.0.1:{service_port}/quickbooks/auth/callback",
        "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN": verifier,
        "QBO_TOKEN_KEY": generate_key(),
        "QBO_ADMIN_TOKEN": secrets.token_urlsafe(24),
        "QBO_DATABASE_URL": create_database(postgres_url, "stack_tokens"),
        "QBO_WAREHOUSE_URL": create_database(postgres_url, "stack_warehouse"),
        "QBO_STATE_DIR": str(tmp_path / "qbo"),
        "QBO_SYNC_CRON": "* * * * *",  # a tick every minute
        "QBO_STACK_DIR": str(tmp_path / "stack"),
        "DAGSTER_WEBSERVER_PORT": str(free_port()),
        "DAGSTER_GRPC_PORT": str(free_port()),
        "QBO_SERVICE_PORT": str(service_port),
    }
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    log = tmp_path / "stack.log"
    with log.open("w") as out:
        process = subprocess.Popen([str(RUN_SH)], env=env, stdout=out, stderr=subprocess.STDOUT)
    runtime = Runtime(Settings.from_env(env))
    started = Stack(process, log, env, emulator, runtime, monkeypatch)
    try:
        yield started
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
        runtime.close()
        emulator.stop()


def runs(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    return list(instance.get_run_records(dg.RunsFilter(job_name="qbo_sync")))


def overlap(a: dg.RunRecord, b: dg.RunRecord) -> bool:
    assert a.start_time and a.end_time and b.start_time and b.end_time
    return a.start_time < b.end_time and b.start_time < a.end_time


@pytest.mark.timeout(900)
def test_the_production_stack_runs_schedules_and_webhooks_and_survives_a_daemon_restart(
    stack: Stack,
) -> None:
    wait_until("the stack is ready", lambda: any("ready:" in x for x in stack.lines()), 300)
    assert stack.process.poll() is None
    admin = stack.env["QBO_ADMIN_TOKEN"]
    first_realm = stack.emulator.config.realm_id
    for realm in (first_realm, SECOND_REALM):
        httpx.post(
            f"{stack.emulator.base_url}/_emulator/consent", json={"realm_id": realm}, timeout=10
        ).raise_for_status()
        assert authorize_through(stack.service_url, admin, stack.runtime, realm) == realm
    instance = stack.instance()
    server_port = int(os.environ["DAGSTER_POSTGRES_URL"].rsplit(":", 1)[1].split("/")[0])

    def succeeded(realm: str, **tags: str) -> bool:
        return any(
            record.dagster_run.status is dg.DagsterRunStatus.SUCCESS
            and record.dagster_run.tags.get(PARTITION) == realm
            and all(record.dagster_run.tags.get(k) == v for k, v in tags.items())
            for record in runs(instance)
        )

    # A tick of the schedule syncs both companies.
    scheduled = {"dagster/schedule_name": SCHEDULE}
    wait_until(
        "a scheduled run of each company",
        lambda: succeeded(first_realm, **scheduled) and succeeded(SECOND_REALM, **scheduled),
        READY_DEADLINE,
    )

    # Changes in QuickBooks, delivered as webhooks while the daemon is killed and started
    # again by the stack, still reach the warehouse through qbo_webhook_sensor.
    [daemon] = stack.pids("dagster-daemon")
    changes = httpx.post(
        f"{stack.emulator.base_url}/_emulator/companies/{first_realm}/mutate",
        json={"updates": 3, "seed": 5},
        timeout=30,
    )
    changes.raise_for_status()
    os.kill(daemon, signal.SIGKILL)
    wait_until("the daemon started again", lambda: len(stack.pids("dagster-daemon")) == 2, 60)
    wait_until(
        "a webhook run of the changed company",
        lambda: succeeded(first_realm, **{WEBHOOK_TAG: "webhook"}),
        SETTLE_DEADLINE,
    )
    inbox = stack.runtime.inbox

    def settled() -> bool:
        delivered = httpx.get(f"{stack.emulator.base_url}/_emulator/webhooks", timeout=30).json()
        counts = inbox.counts()
        return (
            delivered.get("pending", 0) == 0
            and counts.get("processed", 0) > 0
            and counts.get("pending", 0) == 0
            and all(r.dagster_run.status in _DONE for r in runs(instance))
        )

    wait_until("every event processed and every run ended", settled, SETTLE_DEADLINE)

    records = runs(instance)
    assert [
        r.dagster_run.run_id
        for r in records
        if r.dagster_run.status is not dg.DagsterRunStatus.SUCCESS
    ] == []
    by_realm: dict[str, list[dg.RunRecord]] = {}
    for record in records:
        by_realm.setdefault(record.dagster_run.tags[PARTITION], []).append(record)
    assert set(by_realm) == {first_realm, SECOND_REALM}
    for realm, own in by_realm.items():
        for i, a in enumerate(own):
            for b in own[i + 1 :]:
                assert not overlap(a, b), (realm, a.dagster_run.run_id, b.dagster_run.run_id)
    assert any(overlap(a, b) for a in by_realm[first_realm] for b in by_realm[SECOND_REALM]), (
        "no run of one company ran beside a run of the other"
    )
    # Every run went through the queue the daemon empties.
    queued = {
        record.dagster_run.run_id
        for record in records
        if instance.get_records_for_run(
            record.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED
        ).records
    }
    assert queued == {record.dagster_run.run_id for record in records}

    for realm in (first_realm, SECOND_REALM):
        url = f"{stack.emulator.base_url}/_emulator/companies/{realm}/entities/"
        with stack.runtime.warehouse() as warehouse:
            assert_warehouse_equals(
                warehouse, realm, lambda name, url=url: httpx.get(url + name, timeout=60).json()
            )

    # SIGTERM stops every process of the stack, the throwaway server included.
    everything = [
        pid
        for name in ("code server", "dagster-webserver", "dagster-daemon", "qbo-pipeline serve")
        for pid in stack.pids(name)
    ]
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=180) == 0
    said = [line.removeprefix("qbo-pipeline stack: ") for line in stack.lines()]
    assert said[-3:] == ["stopping", "stopped", "stopping the throwaway PostgreSQL server"]
    for pid in everything:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server_port), timeout=5).close()
