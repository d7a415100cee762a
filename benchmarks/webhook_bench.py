"""Webhook to warehouse, end to end: latency under the daemon, API calls per run, bursts.

    .venv/bin/python -m benchmarks.webhook_bench              # the figures in README.md
    .venv/bin/python -m benchmarks.webhook_bench --quick      # the same, smaller: < 2 min
    .venv/bin/python -m benchmarks.webhook_bench --skip-latency --skip-burst   # cost only
        [--changes 200] [--rate 1.5] [--sizes 1,10,100] [--burst 1000] [--burst-seconds 10]
        [--customers 500] [--invoices 1500] [--postgres [URL]] [--keep-schedules]
        [--dequeue-seconds N]

Everything runs as `make dev` runs it (DevStack): the emulator sending signed webhook
deliveries, the auth service storing them in the inbox, and `dagster dev`, whose daemon
evaluates qbo_webhook_sensor and launches each run in a new process. Churn is off: the
benchmark makes every change itself, each to a row no other change touches, so a row's
`synced_at` (the start of the transaction that wrote it: `current_timestamp`, a few
milliseconds before the commit) belongs to one change, and the warehouse is read once, at
the end (DuckDB has one writer process).

1. Latency (daemon): changes through the accounting API at a steady rate; for each, the
   time from the emulator's first delivery attempt to the row's synced_at, split by the
   inbox's received_at and processed_at and by its run's timeline in the Dagster instance
   (queued, launched, started, steps). Goal: p95 within 30 s.
2. Cost (no daemon): the API calls of one webhook-triggered run for 1, 10 and 100 changed
   rows, beside an incremental sync of the same change and a full sync. The sensor's
   ticks are evaluated here and their runs executed in this process, as the daemon would
   launch them, with the resources built from the stack's settings.
3. Burst (daemon): 1,000 changes in 10 s through the emulator's admin API (QBO's limits
   would throttle that many writes by one app); nothing may be lost: every changed row's
   final version in the warehouse is QBO's, and no event is left pending.

The daemon's stack boots (`dagster dev` takes 30-60 s on 2 cores) while part 2 runs on a
stack of its own: part 2's figures are call counts, which sharing the CPU does not change.
The hourly incremental schedule is moved out of the way (`--keep-schedules` leaves it):
a scheduled run during a measurement holds the realm and writes the changed rows itself.
Timings depend on what else the 2 cores run: each phase ends with the load average.
Exits non-zero when a figure is over its limit. `--postgres` puts the warehouses on a
throwaway PostgreSQL server (or on the server at URL, in new databases);
`--dequeue-seconds 1` measures the daemon with a faster run queue.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from benchmarks.run import Figure, _free_port

LATENCY_GOAL = 30.0  # seconds from Intuit's delivery to the row in the warehouse, p95
READY_DEADLINE = 300.0  # for `dagster dev` to boot and its first webhook run to finish
DRAIN_DEADLINE = 300.0  # for every event to be processed after the last change
POLL_SECONDS = 0.5
SENSOR = "qbo_webhook_sensor"
LOCATION = "qbo_pipeline"  # the code location DevStack's workspace names
ENTITIES = ("Customer", "Invoice")
NOTE_FIELD = {"Customer": "Notes", "Invoice": "PrivateNote"}
TABLES = {"Customer": "customers", "Invoice": "invoices"}
KEPT_VARIABLES = {"QBO_TEST_POSTGRES_URL"}
ONCE_A_YEAR = "0 0 1 1 *"  # the sync schedule during the benchmark (--keep-schedules: hourly)
TICKS_QUERY = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { ticks(limit: 1000) { timestamp status runIds } } }
  }
}
"""


# --- what is measured ---------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One write this benchmark made: the row, and the version it left in QBO."""

    entity: str
    entity_id: str
    sync_token: int
    made_at: float  # epoch seconds


@dataclass(frozen=True)
class Sent:
    """An event as the emulator delivered it: when its delivery was first attempted."""

    event_id: str
    entity: str
    entity_id: str
    first_attempt: float
    attempts: int


@dataclass(frozen=True)
class Received:
    """An event as the inbox holds it."""

    event_id: str
    entity: str
    entity_id: str
    status: str
    received_at: float
    processed_at: float | None
    run_id: str | None


@dataclass(frozen=True)
class Stored:
    """A warehouse row's version and when it was written."""

    sync_token: int
    synced_at: float
    deleted: bool
    balance: Decimal | None


@dataclass(frozen=True)
class RunTimeline:
    """A qbo_sync run's moments from its event log (epoch seconds; None if it has none)."""

    run_id: str
    trigger: str
    status: str
    queued: float
    launched: float | None  # RUN_STARTING: dequeued and handed to the run launcher
    started: float | None  # RUN_START: the run's own process is up
    first_step: float | None
    last_step_end: float | None
    ended: float | None


@dataclass(frozen=True)
class Calls:
    """API calls to one realm, as the emulator counts them (CDC and counts included)."""

    requests: int
    cdc: int
    counts: int

    def __sub__(self, other: Calls) -> Calls:
        return Calls(
            self.requests - other.requests, self.cdc - other.cdc, self.counts - other.counts
        )

    def __str__(self) -> str:
        return f"{self.requests} ({self.cdc} CDC, {self.counts} COUNT)"


@dataclass(frozen=True)
class Line:
    """A printed figure without a limit: context for the ones that have one."""

    name: str
    value: float
    unit: str

    def line(self) -> str:
        value = ",.1f" if abs(self.value) >= 100 else ".2f"
        return f"{self.name:<72} {self.value:>10{value}} {self.unit:<7}"


Report = list[Figure | Line | str]


# --- the stack and its parts ----------------------------------------------------------------


def quiet_schedules() -> None:
    """Keep the hourly incremental schedule out of the measurements. A scheduled run that
    comes during them takes the realm for its duration (webhook runs wait behind it) and
    writes the changed rows itself, so the figures would depend on the minute the
    benchmark started. `dagster dev` inherits this process's environment."""
    from qbo_pipeline.defs.schedules import SYNC_CRON_VARIABLE

    os.environ[SYNC_CRON_VARIABLE] = ONCE_A_YEAR


def clean_environment() -> None:
    """Drop the operator's QBO and Dagster variables: DevStack's settings let them win over
    its own (`extra_environment`), and a DAGSTER_HOME would take the first sync's run to
    another instance. The benchmark's stacks are its own."""
    for name in list(os.environ):
        if name.startswith(("QBO_", "QUICKBOOKS_", "DAGSTER_")) and name not in KEPT_VARIABLES:
            del os.environ[name]


class Realm:
    """One stack's company: the emulator's admin API, and its accounting API used as
    another app would (the connection's token, every write counted by QBO)."""

    def __init__(self, stack: Any, runtime: Any) -> None:
        self.stack = stack
        self.runtime = runtime
        self.realm_id: str = stack.realm_id
        self.admin_url = f"{stack.emulator.base_url}/_emulator"
        self.api_url = f"{stack.settings.api_base_url}/v3/company/{self.realm_id}"
        self.http = httpx.Client(timeout=30)

    def admin(self, method: str, path: str, body: dict | None = None) -> Any:
        answer = self.http.request(method, f"{self.admin_url}/{path}", json=body)
        answer.raise_for_status()
        return answer.json()

    def calls(self) -> Calls:
        realm = self.admin("GET", "stats")["realms"].get(self.realm_id, {})
        return Calls(
            realm.get("requests", 0), realm.get("cdc_calls", 0), realm.get("count_queries", 0)
        )

    def entities(self, entity: str) -> list[dict]:
        return self.admin("GET", f"companies/{self.realm_id}/entities/{entity}")

    def deleted(self) -> set[tuple[str, str]]:
        found = self.admin("GET", f"companies/{self.realm_id}/deletions")
        return {(row["entity"], str(row["id"])) for row in found}

    def webhooks(self) -> dict:
        return self.admin("GET", "webhooks")

    def update(self, entity: str, current: dict, note: str) -> Change:
        """A sparse update of one note: a new version (SyncToken + 1), nothing else moves
        (no balance, so no second event for its customer)."""
        token = self.runtime.tokens.access_token(self.realm_id)
        answer = self.http.post(
            f"{self.api_url}/{entity.lower()}",
            json={
                "Id": current["Id"],
                "SyncToken": current["SyncToken"],
                "sparse": True,
                NOTE_FIELD[entity]: note,
            },
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        answer.raise_for_status()
        body = answer.json()[entity]
        return Change(entity, str(body["Id"]), int(body["SyncToken"]), time.time())

    def close(self) -> None:
        self.http.close()


class RowPicker:
    """Distinct rows, customers and invoices in turn, each handed out once."""

    def __init__(self, realm: Realm) -> None:
        self._rows = {entity: iter(realm.entities(entity)) for entity in ENTITIES}
        self._turn = 0

    def take(self, count: int) -> list[tuple[str, dict]]:
        taken = []
        for _ in range(count):
            entity = ENTITIES[self._turn % len(ENTITIES)]
            self._turn += 1
            taken.append((entity, next(self._rows[entity])))
        return taken


def make_changes(realm: Realm, rows: Sequence[tuple[str, dict]], rate: float) -> list[Change]:
    """One update per row, `rate` a second on a fixed schedule (not after each answer)."""
    began, changes = time.monotonic(), []
    for number, (entity, row) in enumerate(rows):
        _sleep_until(began + number / rate)
        changes.append(realm.update(entity, row, f"webhook bench {number} {time.time():.3f}"))
    return changes


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _epoch(value: datetime | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:  # the stores keep UTC
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def sent_events(webhooks: dict) -> dict[str, Sent]:
    """Every event in the emulator's record of deliveries, by event id."""
    sent = {}
    for delivery in webhooks["deliveries"]:
        if not delivery["attempts"]:
            continue
        first = _epoch(delivery["attempts"][0]["sent_at"])
        for event in delivery["events"]:
            sent[event["id"]] = Sent(
                event["id"],
                event["entity"],
                str(event["entity_id"]),
                first,
                len(delivery["attempts"]),
            )
    return sent


def inbox_events(runtime: Any) -> dict[str, Received]:
    """Every event in the inbox (a few thousand at most), by event id."""
    from qbo_pipeline.inbox import EVENTS_TABLE

    with runtime.database.read() as tx:
        rows = tx.all(
            "SELECT event_id, entity, entity_id, status, received_at, processed_at, run_id "
            f"FROM {EVENTS_TABLE}"
        )
    return {
        row["event_id"]: Received(
            row["event_id"],
            row["entity"] or "",
            row["entity_id"] or "",
            row["status"],
            _epoch(row["received_at"]),
            _epoch(row["processed_at"]),
            row["run_id"],
        )
        for row in rows
    }


def warehouse_rows(settings: Any, realm_id: str) -> dict[tuple[str, str], Stored]:
    """Every customer and invoice row of the realm: read once, at the end, as DuckDB has one
    writer process (the project's own reader waits its turn for the file)."""
    from qbo_pipeline.quickbooks.realms import check_realm_id
    from qbo_pipeline.warehouse.url import connect_warehouse

    realm = check_realm_id(realm_id)
    warehouse = connect_warehouse(
        settings.warehouse_url, default_path=settings.default_warehouse_path
    )
    stored = {}
    try:
        for entity, table in TABLES.items():
            for entity_id, token, synced_at, deleted_at, balance in warehouse.query(
                "SELECT id, sync_token, synced_at, deleted_at, balance "
                f"FROM qbo.{table} WHERE realm_id = '{realm}'"
            ):
                stored[(entity, entity_id)] = Stored(
                    int(token),
                    _epoch(synced_at),
                    deleted_at is not None,
                    None if balance is None else Decimal(str(balance)),
                )
    finally:
        warehouse.close()
    return stored


def run_timelines(instance: Any, since: float) -> list[RunTimeline]:
    """The qbo_sync runs created since `since`, with their moments from the event log."""
    import dagster as dg

    kinds = dg.DagsterEventType
    records = instance.get_run_records(
        dg.RunsFilter(job_name="qbo_sync", created_after=datetime.fromtimestamp(since, UTC))
    )
    timelines = []
    for record in records:
        run = record.dagster_run
        moments: dict[Any, list[float]] = defaultdict(list)
        for entry in instance.all_logs(run.run_id):
            if entry.dagster_event is not None:
                moments[entry.dagster_event.event_type].append(entry.timestamp)
        ends = moments[kinds.RUN_SUCCESS] + moments[kinds.RUN_FAILURE] + moments[kinds.RUN_CANCELED]
        step_ends = moments[kinds.STEP_SUCCESS] + moments[kinds.STEP_FAILURE]
        timelines.append(
            RunTimeline(
                run_id=run.run_id,
                trigger=run.tags.get("qbo/trigger", run.tags.get("dagster/schedule_name", "")),
                status=run.status.value,
                queued=min(moments[kinds.RUN_ENQUEUED] or [record.create_timestamp.timestamp()]),
                launched=_first(moments[kinds.RUN_STARTING]),
                started=_first(moments[kinds.RUN_START]),
                first_step=_first(moments[kinds.STEP_START]),
                last_step_end=max(step_ends) if step_ends else None,
                ended=max(ends) if ends else None,
            )
        )
    return sorted(timelines, key=lambda timeline: timeline.queued)


def _first(moments: list[float]) -> float | None:
    return min(moments) if moments else None


def sensor_ticks(dagster_url: str) -> list[tuple[float, str, int]]:
    """qbo_webhook_sensor's ticks from the webserver's GraphQL API: (when, status, runs)."""
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "sensorName": SENSOR,
    }
    answer = httpx.post(
        f"{dagster_url}/graphql",
        json={"query": TICKS_QUERY, "variables": {"selector": selector}},
        timeout=60,
    )
    answer.raise_for_status()
    sensor = answer.json()["data"]["sensorOrError"]
    if sensor.get("__typename") != "Sensor":
        return []
    ticks = sensor["sensorState"]["ticks"]
    return sorted((float(t["timestamp"]), t["status"], len(t["runIds"])) for t in ticks)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value at least `share` of the values do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def spread(name: str, values: Sequence[float]) -> list[Line]:
    """p50, p95 and max of a duration, as three lines."""
    if not values:
        return [Line(f"{name}: no values", 0, "")]
    return [
        Line(f"{name}, p50", percentile(values, 0.5), "s"),
        Line(f"{name}, p95", percentile(values, 0.95), "s"),
        Line(f"{name}, max", max(values), "s"),
    ]


def load_line() -> Line:
    """The machine's load over the last minute as a phase ends: what shared the cores (the
    stack, Dagster's processes, and anything else running), to read the timings by."""
    return Line("load average over the last minute, whole machine", os.getloadavg()[0], "procs")


def wait_for(what: str, done: Callable[[], bool], deadline: float) -> float:
    """Poll `done` every POLL_SECONDS until it holds; the seconds it took."""
    began = time.monotonic()
    while not done():
        if time.monotonic() - began > deadline:
            raise TimeoutError(f"{what}: not within {deadline:g} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - began


def busy(instance: Any) -> bool:
    from qbo_pipeline.defs.runs import busy_realms

    return bool(busy_realms(instance))


def drained(realm: Realm, instance: Any, expected: set[str] | None = None) -> Callable[[], bool]:
    """Nothing left anywhere: the emulator has sent everything, the inbox holds no pending
    event (and holds every `expected` one), and no qbo_sync run is under way."""

    def check() -> bool:  # the cheap questions first: the emulator's record is large
        events = inbox_events(realm.runtime)
        if any(event.status == "pending" for event in events.values()):
            return False
        if expected and not expected <= events.keys():
            return False
        return not busy(instance) and not realm.webhooks()["totals"]["pending_events"]

    return check


# --- the stacks -------------------------------------------------------------------------------


def start_stack(folder: Path, name: str, args: argparse.Namespace, *, dagster: bool) -> Any:
    """A DevStack without churn in its own state folder (and warehouse database)."""
    from qbo_pipeline.commands.dev_stack import DevStack

    extra = {"QBO_WAREHOUSE_URL": args.warehouse_urls[name]} if args.warehouse_urls else {}
    if dagster and args.dequeue_seconds is not None:
        tune_run_queue(folder / name, args.dequeue_seconds)
    stack = DevStack(
        state_dir=folder / name,
        dagster_port=_free_port(),
        churn=0,
        customers=args.customers,
        invoices=args.invoices,
        extra_environment=extra,
    )
    try:
        return stack.start(dagster=dagster)
    except BaseException:
        stack.stop()
        raise


def tune_run_queue(state_dir: Path, seconds: int) -> None:
    """The daemon's instance as the repository's, but dequeuing every `seconds` (Dagster's
    default is 5): an experiment on one of the waits a webhook run makes, with no change
    to the project's dagster.yaml (DevStack keeps an instance config it finds)."""
    from qbo_pipeline.commands.execution import dagster_home

    config = dagster_home(state_dir) / "dagster.yaml"
    config.write_text(f"{config.read_text()}\nrun_queue:\n  dequeue_interval_seconds: {seconds}\n")


def postgres_warehouses(args: argparse.Namespace, resources: ExitStack) -> dict[str, str]:
    """A fresh warehouse database per stack (both companies have the emulator's realm id)."""
    if args.postgres is None:
        return {}
    from qbo_pipeline_tests.postgres_server import create_database, postgres_server

    server = args.postgres
    if server == "local":
        server = resources.enter_context(postgres_server())
    return {
        name: create_database(server, f"qbo_webhook_bench_{name}") for name in ("cost", "daemon")
    }


# --- part 2: cost -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostRow:
    changed: int
    entity_types: int
    minimum: int  # one query per entity type per IDS_PER_QUERY Ids
    runs: int
    webhook: Calls
    webhook_seconds: float
    incremental: Calls
    incremental_seconds: float


def execute_webhook_ticks(instance: Any, settings: Any) -> int:
    """Evaluate qbo_webhook_sensor and run what it asks for, as the daemon would (the same
    assets, checks, config and tags), until a tick asks for nothing; returns the runs."""
    import dagster as dg

    from qbo_pipeline.definitions import defs
    from qbo_pipeline.defs.resources import pipeline_resources

    sensor, job = defs.resolve_sensor_def(SENSOR), defs.resolve_job_def("qbo_sync")
    runs = 0
    for _ in range(10):
        with dg.build_sensor_context(
            instance=instance, resources=pipeline_resources(settings), sensor_name=SENSOR
        ) as context:
            result = sensor(context)
        requests = result.run_requests if isinstance(result, dg.SensorResult) else []
        if not requests:
            return runs
        for request in requests:
            subset = job.get_subset(
                asset_selection=set(request.asset_selection or ()),
                asset_check_selection=set(getattr(request, "asset_check_keys", None) or ()),
            )
            outcome = subset.execute_in_process(
                instance=instance,
                partition_key=request.partition_key,
                run_config=request.run_config,
                tags={**request.tags, "dagster/run_key": request.run_key},
                resources=pipeline_resources(settings),
                raise_on_error=False,
            )
            if not outcome.success:
                raise RuntimeError(f"webhook run {outcome.run_id} failed")
            runs += 1
    raise RuntimeError("qbo_webhook_sensor kept asking for runs")


def measure_cost(folder: Path, args: argparse.Namespace) -> tuple[list[CostRow], Calls, float]:
    """Webhook runs for each size, each beside an incremental sync of the same change, then
    a full sync. Returns the rows, the full sync's calls and its seconds."""
    from qbo_pipeline.commands.execution import dagster_instance, sync_realms
    from qbo_pipeline.runtime import Runtime
    from qbo_pipeline.sync.deletes import IDS_PER_QUERY

    stack = start_stack(folder, "cost", args, dagster=False)
    runtime = Runtime(stack.settings)
    realm = Realm(stack, runtime)
    try:
        instance = dagster_instance(stack.state_dir)
        picker = RowPicker(realm)

        def synced(full: bool) -> tuple[Calls, float]:
            before, began = realm.calls(), time.monotonic()
            [run] = sync_realms(
                [realm.realm_id], instance=instance, full_refresh=full, settings=stack.settings
            )
            if not run.success:
                raise RuntimeError(f"the {'full' if full else 'incremental'} sync failed")
            return realm.calls() - before, time.monotonic() - began

        rows = []
        for size in args.sizes:
            changes = make_changes(realm, picker.take(size), rate=50)
            per_type = defaultdict(set)
            for change in changes:
                per_type[change.entity].add(change.entity_id)
            wait_for(f"{size} events in the inbox", _all_stored(realm, changes), 60)
            before, began = realm.calls(), time.monotonic()
            runs = execute_webhook_ticks(instance, stack.settings)
            webhook, webhook_seconds = realm.calls() - before, time.monotonic() - began
            incremental, incremental_seconds = synced(full=False)
            minimum = sum(math.ceil(len(ids) / IDS_PER_QUERY) for ids in per_type.values())
            rows.append(
                CostRow(
                    size,
                    len(per_type),
                    minimum,
                    runs,
                    webhook,
                    webhook_seconds,
                    incremental,
                    incremental_seconds,
                )
            )
        full, full_seconds = synced(full=True)
        return rows, full, full_seconds
    finally:
        realm.close()
        runtime.close()
        stack.stop()


def _all_stored(realm: Realm, changes: Sequence[Change]) -> Callable[[], bool]:
    """Every change's event is pending in the inbox (so one tick sees them all)."""
    wanted = {(change.entity.lower(), change.entity_id) for change in changes}

    def check() -> bool:
        pending = {
            (event.entity, event.entity_id)
            for event in inbox_events(realm.runtime).values()
            if event.status == "pending"
        }
        return wanted <= pending

    return check


def cost_report(rows: list[CostRow], full: Calls, full_seconds: float) -> Report:
    report: Report = [
        "",
        "Cost: API calls of one webhook-triggered run (sensor tick + run in this process)",
        "  changed  types  runs  webhook run calls   minimum  incremental calls        full",
    ]
    for row in rows:
        report.append(
            f"  {row.changed:>7}  {row.entity_types:>5}  {row.runs:>4}  {row.webhook!s:<18}"
            f"{row.minimum:>8}  {row.incremental!s:<22} {full.requests:>4}"
            f"   ({row.webhook_seconds:.1f} s / {row.incremental_seconds:.1f} s)"
        )
    report.append(f"  full sync: {full}, {full_seconds:.1f} s")
    for row in rows:
        report += [
            Figure(
                f"{row.changed} changed: webhook run calls vs 1 per entity type per 200 Ids",
                row.webhook.requests,
                "calls",
                row.minimum,
                "max",
            ),
            Figure(
                f"{row.changed} changed: webhook run calls / incremental sync calls",
                row.webhook.requests / max(row.incremental.requests, 1),
                "ratio",
                1,
                "max",
            ),
            Figure(
                f"{row.changed} changed: runs for one tick's events", row.runs, "runs", 1, "max"
            ),
        ]
    return report


# --- part 1: latency ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """One change from the accounting API to the warehouse (epoch seconds)."""

    change: Change
    first_attempt: float
    received: float
    run_queued: float | None
    run_started: float | None
    synced: float
    processed: float
    waited_for_a_run: bool  # its realm had a run under way when it arrived


def warm_up(stack: Any, realm: Realm, instance: Any, picker: RowPicker) -> None:
    """`dagster dev` booted and one change taken through a run: the code server is loaded
    and the daemon ticking before anything is timed."""
    wait_for("the Dagster webserver", _answers(f"{stack.dagster_url}/server_info"), READY_DEADLINE)
    [(entity, row)] = picker.take(1)
    change = realm.update(entity, row, "webhook bench warm-up")
    wait_for("the warm-up change's run", drained(realm, instance), READY_DEADLINE)
    stored = inbox_events(realm.runtime)
    if not any(
        e.entity_id == change.entity_id and e.status == "processed" for e in stored.values()
    ):
        raise RuntimeError("the warm-up change was not processed")


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def measure_latency(
    stack: Any, realm: Realm, instance: Any, picker: RowPicker, args: argparse.Namespace
) -> Report:
    began, calls_before = time.time(), realm.calls()
    changes = make_changes(realm, picker.take(args.changes), args.rate)
    last_change = time.time()
    drain = wait_for("the latency changes", drained(realm, instance), DRAIN_DEADLINE)
    calls = realm.calls() - calls_before
    traces, unmatched = trace_changes(realm, stack.settings, instance, changes, began)
    runs = [run for run in run_timelines(instance, began) if run.trigger == "webhook"]
    others = [run for run in run_timelines(instance, began) if run.trigger != "webhook"]
    ticks = [t for t in sensor_ticks(stack.dagster_url) if began <= t[0] <= time.time()]
    return latency_report(
        args, traces, unmatched, runs, others, ticks, calls, changes, drain, last_change - began
    )


def trace_changes(
    realm: Realm, settings: Any, instance: Any, changes: list[Change], since: float
) -> tuple[list[Trace], int]:
    """Each change's trace; and how many could not be traced (no event, or the warehouse
    row is not the version the change made)."""
    sent = {
        (event.entity, event.entity_id): event
        for event in sent_events(realm.webhooks()).values()
        if event.first_attempt >= since - 1
    }
    received = inbox_events(realm.runtime)
    stored = warehouse_rows(settings, realm.realm_id)
    runs = {run.run_id: run for run in run_timelines(instance, since - 60)}
    traces, unmatched = [], 0
    for change in changes:
        event = sent.get((change.entity, change.entity_id))
        inbox = received.get(event.event_id) if event else None
        row = stored.get((change.entity, change.entity_id))
        if not event or not inbox or not inbox.processed_at or not row:
            unmatched += 1
            continue
        if row.sync_token != change.sync_token:
            unmatched += 1
            continue
        run = runs.get(inbox.run_id or "")
        traces.append(
            Trace(
                change=change,
                first_attempt=event.first_attempt,
                received=inbox.received_at,
                run_queued=run.queued if run else None,
                run_started=run.started if run else None,
                synced=row.synced_at,
                processed=inbox.processed_at,
                waited_for_a_run=any(
                    other.queued <= inbox.received_at <= (other.ended or math.inf)
                    for other in runs.values()
                    if other.run_id != inbox.run_id
                ),
            )
        )
    return traces, unmatched


def latency_report(
    args: argparse.Namespace,
    traces: list[Trace],
    unmatched: int,
    runs: list[RunTimeline],
    others: list[RunTimeline],
    ticks: list[tuple[float, str, int]],
    calls: Calls,
    changes: list[Change],
    drain: float,
    writing: float,
) -> Report:
    total = [t.synced - t.first_attempt for t in traces]
    queued = [t for t in traces if t.run_queued and t.run_started]
    report: Report = [
        "",
        f"Latency: {len(changes)} changes over {writing:.0f} s ({args.rate:g}/s), "
        f"customers and invoices in turn, each row changed once; daemon `dagster dev`",
    ]
    report += [
        Figure(
            "webhook -> warehouse (first delivery attempt -> synced_at), p95",
            percentile(total, 0.95) if total else math.inf,
            "s",
            LATENCY_GOAL,
            "max",
        ),
        Figure(
            "changes traced to their row version in the warehouse",
            len(traces),
            "changes",
            len(changes),
            "min",
        ),
        Figure(
            "synced_at after processed_at (must not happen)",
            sum(t.synced > t.processed for t in traces),
            "rows",
            0,
            "max",
        ),
    ]
    report += spread("webhook -> warehouse", total)
    report += spread(
        "change -> first delivery attempt (the 0.5 s batch window)",
        [t.first_attempt - t.change.made_at for t in traces],
    )
    report += spread(
        "delivery -> stored in the inbox (received_at)",
        [t.received - t.first_attempt for t in traces],
    )
    report += spread(
        "inbox -> processed_at (marked after the commit)",
        [t.processed - t.received for t in traces],
    )
    report += spread(
        "inbox -> run queued (a tick; or the realm's run under way first)",
        [t.run_queued - t.received for t in queued],
    )
    report += spread(
        "run queued -> run started (dequeue, launch a process)",
        [t.run_started - t.run_queued for t in queued],
    )
    report += spread(
        "run started -> synced_at (the step: resources, read, write)",
        [t.synced - t.run_started for t in queued],
    )
    report.append(
        Line(
            "changes that arrived while their realm's previous run was under way",
            sum(t.waited_for_a_run for t in traces),
            "changes",
        )
    )
    report += spread(
        "webhook -> warehouse, arrived with no run under way",
        [t.synced - t.first_attempt for t in traces if not t.waited_for_a_run],
    )
    report += spread(
        "webhook -> warehouse, arrived while a run was under way",
        [t.synced - t.first_attempt for t in traces if t.waited_for_a_run],
    )
    report += runs_report(runs, others, ticks)
    own = calls.requests - len(changes)  # the benchmark's own writes are API calls too
    report += [
        Line("webhook runs", len(runs), "runs"),
        Line("changes per run", len(changes) / max(len(runs), 1), "changes"),
        Line("API calls by the pipeline (the benchmark's writes taken off)", own, "calls"),
        Line("API calls per run", own / max(len(runs), 1), "calls"),
        Line("last change -> nothing pending, no run under way", drain, "s"),
        Line("changes not traced (no event, or another version stored)", unmatched, "changes"),
    ]
    return report


def runs_report(
    runs: list[RunTimeline], others: list[RunTimeline], ticks: list[tuple[float, str, int]]
) -> Report:
    """Where a run's time goes, from its event log; and how often the sensor ticked."""
    done = [r for r in runs if r.started and r.launched and r.first_step and r.ended]
    report: Report = []
    report += spread(
        "run: queued -> launched (the run queue dequeues every 5 s by default)",
        [r.launched - r.queued for r in done],
    )
    report += spread(
        "run: launched -> RUN_START (a new process imports Dagster and the code)",
        [r.started - r.launched for r in done],
    )
    report += spread("run: RUN_START -> first step", [r.first_step - r.started for r in done])
    report += spread("run: steps", [(r.last_step_end or r.first_step) - r.first_step for r in done])
    report += spread("run: queued -> ended", [r.ended - r.queued for r in done])
    intervals = [later[0] - earlier[0] for earlier, later in itertools.pairwise(ticks)]
    report += spread("qbo_webhook_sensor: time between ticks (GraphQL)", intervals)
    report.append(
        Line(
            "... of them over 7.5 s (a daemon loop came a hair under the 5 s minimum)",
            sum(interval > 7.5 for interval in intervals),
            f"of {len(intervals)}",
        )
    )
    report.append(
        Line("qbo_webhook_sensor ticks that requested runs", sum(1 for t in ticks if t[2]), "ticks")
    )
    if others:
        report.append(Line("other qbo_sync runs meanwhile (schedules)", len(others), "runs"))
    failed = [r for r in runs if r.status != "SUCCESS"]
    report.append(Figure("webhook runs that did not succeed", len(failed), "runs", 0, "max"))
    return report


# --- part 3: burst ----------------------------------------------------------------------------


def measure_burst(stack: Any, realm: Realm, instance: Any, args: argparse.Namespace) -> Report:
    """`--burst` changes in `--burst-seconds` through the admin API (one call a second, so
    one delivery a second), 5% of them invoice deletions; then wait for the drain and
    compare every changed row with QBO."""
    began, calls_before = time.time(), realm.calls()
    steps = max(1, round(args.burst_seconds))
    made, start = 0, time.monotonic()
    for step in range(steps):
        _sleep_until(start + step * args.burst_seconds / steps)
        count = args.burst // steps + (step < args.burst % steps)
        deletes = count // 20
        answer = realm.admin(
            "POST",
            f"companies/{realm.realm_id}/mutate",
            {"updates": count - deletes, "deletes": deletes, "seed": 1130 + step},
        )
        made += sum(len(pairs) for pairs in answer.values())
    last_change = time.time()
    events = {
        event_id: event
        for event_id, event in sent_events(realm.webhooks()).items()
        if event.first_attempt >= began - 1
    }
    drain = wait_for("the burst", drained(realm, instance, set(events)), DRAIN_DEADLINE)
    # Deliveries sent after the record was read (the last one's window) are in it now.
    events = {
        event_id: event
        for event_id, event in sent_events(realm.webhooks()).items()
        if event.first_attempt >= began - 1
    }
    calls = realm.calls() - calls_before
    return burst_report(
        realm, stack.settings, instance, args, began, last_change, made, events, calls, drain
    )


def burst_report(
    realm: Realm,
    settings: Any,
    instance: Any,
    args: argparse.Namespace,
    began: float,
    last_change: float,
    made: int,
    events: dict[str, Sent],
    calls: Calls,
    drain: float,
) -> Report:
    from qbo_pipeline.sync.deletes import IDS_PER_QUERY

    received = inbox_events(realm.runtime)
    stored = warehouse_rows(settings, realm.realm_id)
    changed = {(event.entity, event.entity_id) for event in events.values()}
    lost = mismatches(realm, stored, changed)
    pending = sum(1 for event in received.values() if event.status == "pending")
    missing = sum(1 for event_id in events if event_id not in received)
    runs = [run for run in run_timelines(instance, began) if run.trigger == "webhook"]
    needed: dict[tuple[str, str], set[str]] = defaultdict(set)  # (run, entity) -> Ids
    for event_id in events:
        event = received.get(event_id)
        if event and event.run_id:
            needed[(event.run_id, event.entity)].add(event.entity_id)
    minimum = sum(math.ceil(len(ids) / IDS_PER_QUERY) for ids in needed.values())
    deliveries = {event.first_attempt: event.attempts for event in events.values()}
    processed = [received[e].processed_at for e in events if e in received]
    committed = [stored[key].synced_at for key in changed if key in stored]
    return [
        "",
        f"Burst: {made} changes through the admin API in {args.burst_seconds:g} s "
        f"({len(events)} events with the customers whose balance moved); daemon",
        Figure("changed rows whose warehouse version is not QBO's", len(lost), "rows", 0, "max"),
        Figure("events left pending, or never stored", pending + missing, "events", 0, "max"),
        Figure(
            "last change -> last changed row committed (synced_at)",
            max(committed, default=math.inf) - last_change,
            "s",
            LATENCY_GOAL,
            "max",
        ),
        Line("changed rows compared (Id -> SyncToken, balance, deleted)", len(changed), "rows"),
        Line("deliveries", len(deliveries), "deliveries"),
        Figure(
            "deliveries retried (not answered 200 within Intuit's 3 s)",
            sum(attempts > 1 for attempts in deliveries.values()),
            "deliveries",
            0,
            "max",
        ),
        Line("webhook runs", len(runs), "runs"),
        Line("API calls", calls.requests, "calls"),
        Line("API calls needed (1 per entity type per 200 Ids, per run)", minimum, "calls"),
        Line(
            "last change -> every event processed (processed_at)",
            max((p for p in processed if p), default=math.inf) - last_change,
            "s",
        ),
        Line("last change -> nothing pending, no run under way (polled)", drain, "s"),
    ] + [f"  lost: {key} {why}" for key, why in lost[:10]]


def mismatches(
    realm: Realm, stored: dict[tuple[str, str], Stored], changed: set[tuple[str, str]]
) -> list[tuple[tuple[str, str], str]]:
    """Changed rows whose stored version differs from QBO's final one: a live row's
    SyncToken (and balance, which moves without a new SyncToken) and a deletion's mark."""
    current = {
        (entity, str(row["Id"])): row for entity in ENTITIES for row in realm.entities(entity)
    }
    deleted = realm.deleted()
    wrong = []
    for key in sorted(changed):
        row, mine = current.get(key), stored.get(key)
        if mine is None:
            wrong.append((key, "not in the warehouse"))
        elif row is None:
            if key in deleted and not mine.deleted:
                wrong.append((key, "deleted in QBO, not marked deleted"))
        elif mine.deleted or mine.sync_token != int(row["SyncToken"]):
            wrong.append((key, f"SyncToken {mine.sync_token}, QBO {row['SyncToken']}"))
        elif mine.balance is not None and mine.balance != Decimal(str(row.get("Balance", 0))):
            wrong.append((key, f"balance {mine.balance}, QBO {row.get('Balance')}"))
    return wrong


# --- the command --------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10 changes, sizes 1 and 10, a burst of 100, a small company: under 2 minutes",
    )
    parser.add_argument("--changes", type=int, help="latency: changes made (200)")
    parser.add_argument("--rate", type=float, help="latency: changes a second (1.5)")
    parser.add_argument("--sizes", help="cost: changed rows per webhook run (1,10,100)")
    parser.add_argument("--burst", type=int, help="burst: changes made (1000)")
    parser.add_argument("--burst-seconds", type=float, help="burst: over this long (10)")
    parser.add_argument("--customers", type=int, help="the company's customers (500)")
    parser.add_argument("--invoices", type=int, help="the company's invoices (1500)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="local",
        metavar="URL",
        help="PostgreSQL warehouses: a throwaway server, or new databases on the server at URL",
    )
    parser.add_argument(
        "--keep-schedules",
        action="store_true",
        help="leave the hourly incremental schedule on (it may come during a measurement)",
    )
    parser.add_argument(
        "--dequeue-seconds",
        type=int,
        metavar="N",
        help="experiment: the daemon's run queue dequeues every N s (Dagster's default 5)",
    )
    args = parser.parse_args(argv)
    defaults = (
        {
            "changes": 10,
            "rate": 2.0,
            "sizes": "1,10",
            "burst": 100,
            "burst_seconds": 2,
            "customers": 50,
            "invoices": 150,
        }
        if args.quick
        else {
            "changes": 200,
            "rate": 1.5,
            "sizes": "1,10,100",
            "burst": 1000,
            "burst_seconds": 10,
            "customers": 500,
            "invoices": 1500,
        }
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.sizes = [int(size) for size in str(args.sizes).split(",") if size.strip()]
    needed = args.changes + sum(args.sizes) + 1
    if needed > 2 * min(args.customers, args.invoices):
        parser.error(f"{needed} distinct rows are needed; raise --customers and --invoices")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    clean_environment()
    if not args.keep_schedules:
        quiet_schedules()
    from qbo_pipeline.commands.execution import dagster_home
    from qbo_pipeline.runtime import Runtime

    report: Report = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qbo-webhook-bench-") as name, ExitStack() as held:
        folder = Path(name)
        args.warehouse_urls = postgres_warehouses(args, held)
        daemon, launched = None, 0.0
        if not (args.skip_latency and args.skip_burst):
            daemon = start_stack(folder, "daemon", args, dagster=True)
            held.callback(daemon.stop)
            launched = time.monotonic()
        if not args.skip_cost:
            report += [*cost_report(*measure_cost(folder, args)), load_line()]
        if daemon is not None:
            import dagster as dg

            runtime = Runtime(daemon.settings)
            held.callback(runtime.close)
            realm = Realm(daemon, runtime)
            held.callback(realm.close)
            instance = dg.DagsterInstance.from_config(str(dagster_home(daemon.state_dir)))
            picker = RowPicker(realm)
            warm_up(daemon, realm, instance, picker)
            ready = time.monotonic() - launched
            report.append(
                Line(
                    "dagster dev launched -> its first webhook run done (not counted below)",
                    ready,
                    "s",
                )
            )
            if not args.skip_latency:
                report += [*measure_latency(daemon, realm, instance, picker, args), load_line()]
            if not args.skip_burst:
                report += [*measure_burst(daemon, realm, instance, args), load_line()]
    kind = "PostgreSQL" if args.postgres else "DuckDB"
    queue = f"every {args.dequeue_seconds} s" if args.dequeue_seconds else "every 5 s (default)"
    print(
        f"\npython {sys.version.split()[0]}, {os.cpu_count()} cores, warehouse on {kind}, "
        f"runs dequeued {queue}, hourly schedule {'on' if args.keep_schedules else 'off'}, "
        f"company of {args.customers} customers and {args.invoices} invoices, "
        f"{time.monotonic() - started:.0f} s in all"
    )
    for item in report:
        print(item if isinstance(item, str) else item.line())
    figures = [item for item in report if isinstance(item, Figure)]
    return 0 if all(figure.ok for figure in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
