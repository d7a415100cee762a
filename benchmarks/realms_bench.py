"""Many companies synced by the daemon: 1, 10 and 50 realms, and a day of hourly ticks.

    .venv/bin/python -m benchmarks.realms_bench                  # both stacks, 1, 10, 50 realms
    .venv/bin/python -m benchmarks.realms_bench --quick          # 1 and 3 small companies
    .venv/bin/python -m benchmarks.realms_bench --variants embedded --realms 1,10
        [--customers 1000] [--invoices 2000] [--hourly-ticks 1] [--keep]

For each variant and each number of companies N, one emulator serves N companies
(`--realms N`, each generated with every entity in proportion to its customers and
invoices), with QBO's per-realm limits on (500 requests in any 60 s, 10 in any second,
10 in flight) and 300 ms a page (+-20%). One child process connects them all through
OAuth, the emulator's consent granting its companies in turn. Then the stack, as a user
or an operator starts it, syncs them through its daemon:

- embedded: `dagster dev` typed in the repository root, DAGSTER_HOME holding a copy of the
  root dagster.yaml (SQLite instance storage, at most 10 runs at a time, Dagster's
  default), the token store in SQLite and the warehouse in DuckDB;
- postgres: `deploy/local/run.sh` (gRPC code server, webserver, daemon and auth service,
  deploy/dagster.yaml: at most 8 runs at a time) with the instance, the token store and
  the warehouse on one throwaway PostgreSQL server (PostgreSQL's default settings).

Phases, each a session of the stack started for it and stopped after it (the instance,
token store and warehouse persist between sessions of the same N):

1. First syncs, for each N: the companies are connected before the stack starts, and
   realm_partitions_sensor, at its first tick, adds their N partitions and requests the
   first sync of each, which the daemon's run queue launches. That is the product's path
   for a newly connected company: by the time a partition exists, its first sync is
   already requested, so the hourly schedule would only find the realm busy.
2. For the largest N only, a day of schedules, measured tick by tick: QBO's clock moved an
   hour on and an hour of changes made in each company (1% of its rows a day), then one
   tick of qbo_incremental_schedule (QBO_SYNC_CRON set to one minute of the day, the first
   whole minute after the stack should be ready, so that it ticks exactly once: a cron of
   every minute would start more runs for realms already done); `--hourly-ticks` times.
   Then half an hour on, half an hour of changes, and one tick of
   qbo_reconciliation_schedule (QBO_RECONCILE_CRON likewise). The schedule not measured
   in a session is set to once a year. The day is composed from the measured ticks:
   24 hourly ticks and 1 reconciliation tick, as the default crons make it.

Access tokens live a week in the emulator: moving QBO's clock an hour would otherwise
expire them at QBO while the pipeline's own clock gives them most of an hour, and each
realm would pay a 401 and a retry per tick that a real hour (refreshed on the pipeline's
clock, at the token endpoint, which is not a CorePlus call) does not.

Measured per phase: wall time (from the tick's scheduled time, or the first run's
creation for the sensor's first syncs, to the last run's end); every run's success; rows
and lines loaded (the runs' materialisation metadata); the peak memory of every process
of the stack and of the PostgreSQL server, sampled from /proc every 0.5 s (total
resident, its anonymous part, the largest single process); CPU (the machine's busy time
from /proc/stat against 2 cores x wall time, and the stack's, the server's and the
emulator's own); each run's queue wait (created to dequeued), launch (dequeued to its
first step: a process, the code loaded, the run started) and step time; the emulator's
counters per realm (requests, 429s, the peaks in any second, any minute and in flight);
after each first sync, every realm's rows in the warehouse against QBO's. After the
syncs, the session waits for the stack to be idle (the dbt build that
qbo_analytics_after_sync starts after them), and reports those runs apart.

The bound of a phase is QBO's: each realm's requests at the three limits and 300 ms
(`benchmarks.bound`), realms placed on the run queue's slots (longest first).

Exits 1 when a run fails, a 429 is answered, a realm goes over one of QBO's limits, the
warehouse differs from QBO, a tick takes more than its hour, or the companies' calls a
month exceed Intuit's Builder allowance (500,000 CorePlus calls a month for all of an
app's companies together; reads are CorePlus calls).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING

import httpx

from benchmarks.bound import minimum_seconds
from benchmarks.proctree import TreeSampler, Window, label
from benchmarks.run import CLI, Figure, _clean_env, _free_port, _wait_for
from benchmarks.sync_bench import (
    LATENCY_MS,
    Emulator,
    Line,
    Note,
    failed_checks,
    phase,
    pipeline_env,
    print_lines,
)
from benchmarks.webhook_bench import ONCE_A_YEAR, RunTimeline, run_timelines
from qbo_pipeline.commands.process_groups import stop_process_group
from qbo_pipeline.quickbooks.catalog import ENTITIES

if TYPE_CHECKING:
    import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "deploy" / "local" / "run.sh"
EMBEDDED_INSTANCE = ROOT / "dagster.yaml"
JOB = "qbo_sync"
SYNC_SCHEDULE = "qbo_incremental_schedule"
RECONCILE_SCHEDULE = "qbo_reconciliation_schedule"
SCHEDULE_TAG = "dagster/schedule_name"
PARTITIONS = "realm"  # realm_partitions' name
VARIANTS = ("embedded", "postgres")

# Intuit's App Partner Program, Builder tier: CorePlus calls a month for the whole
# workspace (every company of the app together); reads are CorePlus.
BUILDER_CALLS_PER_MONTH = 500_000
DAYS_PER_MONTH = 30
HOURLY_TICKS_PER_DAY = 24  # "0 * * * *"
RECONCILE_TICKS_PER_DAY = 1  # "30 3 * * *"
HOUR = 3600.0
# QBO's per-realm limits, which the emulator enforces and measures.
PER_SECOND, PER_MINUTE, IN_FLIGHT = 10, 500, 10

DAILY_CHANGE = 0.01  # of a company's rows changed in a day, spread over its hours
ACCESS_TOKEN_TTL = 7 * 24 * 3600  # see the module docstring
STACK_READY_SECONDS = 600.0  # 2 shared cores load Dagster four times over
TICK_LEAD_SECONDS = 20.0  # between the stack's expected readiness and its tick
PARTITIONS_SECONDS = 300.0  # for realm_partitions_sensor's first tick, once ready
TICK_RUNS_SECONDS = 300.0  # for a tick's runs to appear after its scheduled time
STALL_SECONDS = 600.0  # a tick's run count unchanged this long: it requests no more
PHASE_SECONDS = 3 * 3600.0  # for a phase's runs to end
IDLE_GRACE_SECONDS = 40.0  # qbo_analytics_after_sync's 30 s interval, and a margin
IDLE_SECONDS = 900.0  # for the dbt build after the syncs to end
POLL_SECONDS = 2.0
SURVIVOR_SECONDS = 10.0  # for the stack's processes to be gone once it has stopped
STOP_SECONDS = {"embedded": 60.0, "postgres": 240.0}  # run.sh stops 4 parts in turn


@dataclass(frozen=True)
class Sizes:
    realms: list[int]
    customers: int
    invoices: int
    hourly_ticks: int
    latency_ms: int


# --- The emulator and the companies --------------------------------------------------------


def start_realms_emulator(sizes: Sizes, realms: int, log: Path) -> Emulator:
    """As sync_bench.start_emulator, serving `realms` companies, tokens living a week."""
    from qbo_pipeline.vault.crypto import generate_key

    port, secret = _free_port(), generate_key()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [CLI, "emulator", "--port", str(port), "--realms", str(realms),
             "--customers", str(sizes.customers), "--invoices", str(sizes.invoices),
             "--latency-ms", str(sizes.latency_ms), "--latency-jitter", "0.2",
             "--access-token-ttl", str(ACCESS_TOKEN_TTL),
             "--client-id", "bench", "--client-secret", secret],
            env=_clean_env() | {"PYTHONFAULTHANDLER": "1"}, stdout=output, stderr=output,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/.well-known/openid_configuration", process, timeout=1800)
    except BaseException:
        process.terminate()
        process.wait(timeout=60)
        raise
    return Emulator(process, base, secret)


def _child_connect(count: int) -> None:
    """What `qbo-pipeline demo` does to connect, once per company, in this one process:
    the emulator's consent grants its companies in turn. Prints each realm id."""
    from qbo_pipeline.commands.demo_run import connect_through_oauth
    from qbo_pipeline.runtime import Runtime

    runtime = Runtime.from_env()
    try:
        for _ in range(count):
            print(connect_through_oauth(runtime), flush=True)
    finally:
        runtime.close()


def connect_all(env: dict[str, str], count: int) -> list[str]:
    """`count` companies connected by one child process (one process per company would
    add a Python start to each); their realm ids, checked distinct."""
    command = [sys.executable, "-m", "benchmarks.realms_bench", "--child-connect", str(count)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.splitlines()[-20:])
        raise RuntimeError(f"connecting {count} companies failed:\n{tail}")
    realms = completed.stdout.split()
    if len(set(realms)) != count:
        raise RuntimeError(f"{count} connects gave {len(set(realms))} distinct realms")
    return realms


@dataclass
class Fleet:
    """N companies on one emulator and what one variant's stack keeps for them from session
    to session: its Dagster instance, token store and warehouse."""

    variant: str
    emulator: Emulator
    folder: Path
    env: dict[str, str]  # the stack's environment, crons apart
    home: Path  # DAGSTER_HOME
    warehouse_url: str
    server: str | None  # the PostgreSQL server (postgres variant)
    realms: list[str] = field(default_factory=list)
    qbo_rows: dict[str, dict[str, int]] = field(default_factory=dict)  # realm -> entity -> rows
    startup_seconds: float = 60.0  # the slowest session start seen so far (a guess before)

    @property
    def size(self) -> int:
        return len(self.realms)


def make_fleet(variant: str, emulator: Emulator, folder: Path, server: str | None) -> Fleet:
    """The environment a user (embedded) or an operator (postgres) gives the stack."""
    import secrets

    from qbo_pipeline.vault.crypto import generate_key

    folder.mkdir(parents=True)
    env = {
        name: value
        for name, value in pipeline_env(emulator, folder / "qbo", generate_key()).items()
        if not name.startswith("DAGSTER_")
    }
    if server is None:
        warehouse = f"duckdb:///{folder / 'warehouse.duckdb'}"
        home = folder / "dagster_home"
        env |= {"QBO_WAREHOUSE_URL": warehouse, "DAGSTER_HOME": str(home)}
    else:
        from qbo_pipeline_tests.postgres_server import create_database

        name = folder.name.replace("-", "_")
        warehouse = create_database(server, f"{name}_warehouse")
        home = folder / "stack" / "dagster_home"
        env |= {
            "QBO_WAREHOUSE_URL": warehouse,
            "QBO_DATABASE_URL": create_database(server, f"{name}_tokens"),
            "DAGSTER_POSTGRES_URL": create_database(server, f"{name}_dagster"),
            "QBO_STACK_DIR": str(folder / "stack"),
            "QBO_ADMIN_TOKEN": secrets.token_urlsafe(24),
        }
    return Fleet(variant, emulator, folder, env, home, warehouse, server)


def connect_fleet(fleet: Fleet, count: int) -> None:
    phase(f"{fleet.variant} {count}: connecting {count} companies in one process (not measured)")
    fleet.realms = connect_all(fleet.env, count)
    for realm in fleet.realms:
        summary = fleet.emulator.admin("GET", f"companies/{realm}/summary")
        fleet.qbo_rows[realm] = summary["counts"]


def make_changes(fleet: Fleet, hours: float, seed: int) -> int:
    """Move QBO's clock `hours` on, then change each company's share of a day's 1% (at
    least one row), stamped at the new time; the rows changed."""
    fleet.emulator.admin("POST", "clock", json={"advance_seconds": hours * HOUR})
    changed = 0
    for offset, realm in enumerate(fleet.realms):
        rows = sum(fleet.qbo_rows[realm].values())
        updates = max(1, round(rows * DAILY_CHANGE * hours / 24))
        answer = fleet.emulator.admin(
            "POST", f"companies/{realm}/mutate", json={"updates": updates, "seed": seed + offset}
        )
        changed += len({(u["entity"], u["id"]) for u in answer["updated"]})
    return changed


# --- A session of the stack -----------------------------------------------------------------


@dataclass
class Session:
    """One start of a variant's stack, watched by a sampler, with its instance open."""

    fleet: Fleet
    process: subprocess.Popen
    log: Path
    webserver: str
    began: float  # time.time() at the start
    sampler: TreeSampler
    ready: float = 0.0
    instance: dg.DagsterInstance | None = None

    def runs(self, **filters: object) -> list[dg.RunRecord]:
        import dagster as dg

        assert self.instance is not None
        return list(self.instance.get_run_records(dg.RunsFilter(**filters)))

    def failure(self, what: str) -> RuntimeError:
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        return RuntimeError(f"{what}; the end of {self.log.name}:\n{tail}")


def crons(sync: str = ONCE_A_YEAR, reconcile: str = ONCE_A_YEAR) -> dict[str, str]:
    """The schedules' crons for a session, read when its definitions load: any not measured
    is once a year, never inside a session (nor caught up from before it)."""
    return {"QBO_SYNC_CRON": sync, "QBO_RECONCILE_CRON": reconcile}


def daily_cron(moment: datetime) -> str:
    """Once a day at `moment`'s minute (UTC, the schedules' zone): one tick in a session."""
    return f"{moment.minute} {moment.hour} * * *"


def start_session(fleet: Fleet, schedule: dict[str, str], name: str) -> Session:
    """`dagster dev` in the repository root, or deploy/local/run.sh, in a process group of
    its own (stop_process_group ends what it started); ready once the webserver answers and
    the daemon's scheduler, sensors and run queue have beaten."""
    env = fleet.env | schedule
    log = fleet.folder / f"stack-{name}.log"
    webserver_port = _free_port()
    first = not fleet.home.exists()
    if fleet.variant == "embedded":
        fleet.home.mkdir(parents=True, exist_ok=True)
        if not (fleet.home / "dagster.yaml").exists():
            shutil.copyfile(EMBEDDED_INSTANCE, fleet.home / "dagster.yaml")
        command = [str(Path(sys.executable).parent / "dagster"), "dev"]
        command += ["-h", "127.0.0.1", "-p", str(webserver_port)]
    else:
        command = [str(RUN_SH)]
        env |= {
            "DAGSTER_WEBSERVER_PORT": str(webserver_port),
            "DAGSTER_GRPC_PORT": str(_free_port()),
            "QBO_SERVICE_PORT": str(_free_port()),
        }
    began = time.time()
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=output, process_group=0
        )
    try:
        trees = {"stack": [process.pid], "emulator": [fleet.emulator.process.pid]}
        if fleet.server is not None:
            trees["server"] = [postmaster_pid(fleet.server)]
        sampler = TreeSampler(trees, cpu_only=frozenset({"emulator"}), owned=frozenset({"stack"}))
        sampler.start()
    except BaseException:
        stop_process_group(process, STOP_SECONDS[fleet.variant])
        raise
    session = Session(fleet, process, log, f"http://127.0.0.1:{webserver_port}", began, sampler)
    try:
        wait_ready(session)
    except BaseException:
        stop_session(session)
        raise
    took = session.ready - began
    fleet.startup_seconds = took if first else max(fleet.startup_seconds, took)
    return session


def postmaster_pid(server: str) -> int:
    import psycopg

    with psycopg.connect(server) as connection:
        row = connection.execute("SELECT current_setting('data_directory')").fetchone()
    assert row is not None
    return int((Path(row[0]) / "postmaster.pid").read_text().split()[0])


def wait_ready(session: Session) -> None:
    def webserver_answers() -> bool:
        try:
            return httpx.get(f"{session.webserver}/server_info", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    until(session, "the webserver answers", webserver_answers, STACK_READY_SECONDS)
    session.instance = open_instance(session.fleet)

    def daemon_beats() -> bool:
        assert session.instance is not None
        beats = session.instance.get_daemon_heartbeats()
        needed = ("SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR")
        return all(name in beats and beats[name].timestamp > session.began for name in needed)

    until(session, "the daemon beats", daemon_beats, STACK_READY_SECONDS)
    session.ready = time.time()
    print(f"    stack ready in {session.ready - session.began:.0f} s", flush=True)


def open_instance(fleet: Fleet) -> dg.DagsterInstance:
    """The stack's instance, as test_local_stack reads run.sh's: its DAGSTER_HOME, and the
    server its dagster.yaml names through DAGSTER_POSTGRES_URL."""
    import dagster as dg

    if fleet.server is not None:
        os.environ["DAGSTER_POSTGRES_URL"] = fleet.env["DAGSTER_POSTGRES_URL"]
    return dg.DagsterInstance.from_config(str(fleet.home))


def until(session: Session, what: str, done: Callable[[], bool], seconds: float) -> None:
    """Poll `done` until it holds; fail at once if the stack's process has exited."""
    deadline = time.monotonic() + seconds
    emulator = session.fleet.emulator.process
    while not done():
        if session.process.poll() is not None:
            raise session.failure(f"the stack exited ({session.process.returncode}) before {what}")
        if emulator.poll() is not None:
            raise session.failure(f"the emulator exited ({emulator.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise session.failure(f"{what}: not within {seconds:g} s")
        time.sleep(POLL_SECONDS)


def stop_session(session: Session) -> None:
    """The stack's own orderly stop, then SIGKILL for anything of its tree still alive."""
    try:
        stop_process_group(session.process, STOP_SECONDS[session.fleet.variant])
    finally:
        session.sampler.stop()
        deadline = time.monotonic() + SURVIVOR_SECONDS  # a SIGKILL just sent lands
        while session.sampler.survivors() and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in session.sampler.survivors():
            name = label(pid)
            print(f"    killing pid {pid} ({name}), left over from the stack", flush=True)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if session.instance is not None:
            session.instance.dispose()
        os.environ.pop("DAGSTER_POSTGRES_URL", None)


@contextmanager
def session_of(fleet: Fleet, schedule: dict[str, str], name: str) -> Iterator[Session]:
    session = start_session(fleet, schedule, name)
    try:
        yield session
    finally:
        stop_session(session)


# --- What a phase waits for ------------------------------------------------------------------


def requested_runs(
    session: Session, what: str, filters: dict[str, object], first_by: float
) -> list[dg.RunRecord]:
    """The runs a tick requests, once all the realms have one, or once their count has not
    grown for STALL_SECONDS (a realm left out: the figures say so). A sensor or schedule
    tick creates its runs one at a time, each taking the daemon seconds of CPU that the
    runs already launched share, so a tick of 50 realms may take many minutes to finish
    requesting. Fails when no run has come by `first_by` (time.time())."""
    fleet, counts = session.fleet, [(time.time(), 0)]

    def all_requested() -> bool:
        count = len(session.runs(**filters))
        if count != counts[-1][1]:
            counts.append((time.time(), count))
        if count >= fleet.size:
            return True
        if count == 0 and time.time() > first_by:
            raise session.failure(f"{what}: no run by {datetime.fromtimestamp(first_by):%H:%M:%S}")
        return count > 0 and time.time() - counts[-1][0] > STALL_SECONDS

    until(session, f"{what}: {fleet.size} runs requested", all_requested, PHASE_SECONDS)
    return session.runs(**filters)


def first_syncs(session: Session) -> tuple[float, list[dg.RunRecord]]:
    """realm_partitions_sensor's first tick: N partitions, and a first sync of each."""
    fleet = session.fleet
    assert session.instance is not None
    instance = session.instance

    def partitioned() -> bool:
        return set(fleet.realms) <= set(instance.get_dynamic_partitions(PARTITIONS))

    until(session, f"{fleet.size} realm partitions added", partitioned, PARTITIONS_SECONDS)
    filters = {"job_name": JOB, "created_after": datetime.fromtimestamp(session.began, UTC)}
    runs = requested_runs(
        session, "realm_partitions_sensor's first syncs", filters, time.time() + TICK_RUNS_SECONDS
    )
    return min(record.create_timestamp.timestamp() for record in runs), runs


def next_tick(fleet: Fleet) -> datetime:
    """The first whole minute after the stack should be ready (the slowest start seen so far,
    and a quarter again) and the lead. A stack ready late still gets the tick: the daemon
    catches it up, and the phase is then timed from the first run's creation."""
    expected = fleet.startup_seconds * 1.25 + TICK_LEAD_SECONDS
    moment = datetime.now(UTC) + timedelta(seconds=expected)
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def tick_runs(
    session: Session, schedule: str, at: datetime
) -> tuple[float, list[dg.RunRecord], float]:
    """The runs the schedule's tick at `at` requested: the phase's start (the scheduled time,
    or the first run's creation if the stack was not ready by then), the runs, and the
    first run's delay after the scheduled time."""
    fleet = session.fleet
    assert session.instance is not None
    partitions = set(session.instance.get_dynamic_partitions(PARTITIONS))
    if not set(fleet.realms) <= partitions:
        missing = len(set(fleet.realms) - partitions)
        raise RuntimeError(f"{missing} realms have no partition before the {schedule} tick")
    if session.ready > at.timestamp():
        print(f"    the stack was ready {session.ready - at.timestamp():.0f} s after the "
              "tick's time: the daemon catches the tick up late", flush=True)  # fmt: skip
    filters = {
        "job_name": JOB,
        "tags": {SCHEDULE_TAG: schedule},
        "created_after": at - timedelta(seconds=60),
    }
    first_by = max(at.timestamp(), time.time()) + TICK_RUNS_SECONDS
    runs = requested_runs(session, f"the {schedule} tick at {at:%H:%M} UTC", filters, first_by)
    first = min(record.create_timestamp.timestamp() for record in runs)
    began = at.timestamp() if session.ready <= at.timestamp() else first
    return began, runs, first - at.timestamp()


def wait_ended(session: Session, run_ids: list[str]) -> float:
    """The last run's end, once every run has ended."""
    import dagster as dg

    done = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

    def ended() -> bool:
        runs = session.runs(run_ids=run_ids)
        return len(runs) == len(run_ids) and all(r.dagster_run.status in done for r in runs)

    until(session, f"{len(run_ids)} runs end", ended, PHASE_SECONDS)
    return max(record.end_time or 0.0 for record in session.runs(run_ids=run_ids))


def wait_idle(session: Session, last_end: float) -> None:
    """No run of any job under way, IDLE_GRACE_SECONDS after the syncs at the least, so that
    the dbt build qbo_analytics_after_sync starts after them is done and reported here,
    not left to the next session."""
    import dagster as dg

    under_way = [
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]  # fmt: skip

    def idle() -> bool:
        return time.time() >= last_end + IDLE_GRACE_SECONDS and not session.runs(statuses=under_way)

    until(session, "the stack is idle after the syncs", idle, IDLE_SECONDS)


# --- A phase ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OtherRun:
    """A run of another job during the session (the dbt build after the syncs)."""

    job: str
    status: str
    created: float
    ended: float | None


@dataclass(frozen=True)
class Loaded:
    rows: int
    lines: int
    sync_requests: int  # the assets' api_requests


@dataclass
class PhaseResult:
    variant: str
    label: str
    realms: int
    slots: int  # runs the queue launches at once
    began: float
    ended: float
    origin: str
    timelines: list[RunTimeline]
    loaded: Loaded
    stats: dict[str, dict]  # realm -> the emulator's counters over the phase
    window: Window
    others: list[OtherRun]
    failed_checks: list[str]
    changed: int = 0  # rows QBO changed before the phase
    difference: int | None = None  # warehouse rows missing or extra after a first sync
    delay: float | None = None  # the first run's creation after the tick's time
    requesting: float = 0.0  # from the first run's creation to the last's

    @property
    def wall(self) -> float:
        return self.ended - self.began

    @property
    def name(self) -> str:
        return f"{self.variant} {self.realms}: {self.label}"

    @property
    def failed(self) -> list[RunTimeline]:
        return [t for t in self.timelines if t.status != "SUCCESS"]

    def requests(self) -> list[int]:
        return [stats.get("requests", 0) for stats in self.stats.values()]

    def peak(self, key: str) -> tuple[int, str]:
        """The highest value of a counter over the realms, and the realm."""
        realm, stats = max(self.stats.items(), key=lambda item: item[1].get(key, 0))
        return stats.get(key, 0), realm


def run_phase(
    fleet: Fleet,
    label: str,
    schedule: dict[str, str],
    tick: tuple[str, datetime] | None = None,
    changed: int = 0,
) -> PhaseResult:
    """One session: the runs of the sensor's first tick (`tick` None) or of a schedule's
    tick, waited for and measured; the emulator's counters are the phase's alone."""
    fleet.emulator.admin("POST", "stats/reset")
    name = label.replace(" ", "-")
    delay = None
    with session_of(fleet, schedule, f"{fleet.size}-{name}") as session:
        if tick is None:
            phase(f"{fleet.variant} {fleet.size}: {label}: waiting for the sensor's first syncs")
            began, runs = first_syncs(session)
            origin = "the first run's creation"
        else:
            phase(f"{fleet.variant} {fleet.size}: {label}: waiting for the tick at "
                  f"{tick[1]:%H:%M} UTC")  # fmt: skip
            began, runs, delay = tick_runs(session, *tick)
            origin = "the tick's time" if began == tick[1].timestamp() else "the first run"
        run_ids = [record.dagster_run.run_id for record in runs]
        created = [record.create_timestamp.timestamp() for record in runs]
        phase(f"{fleet.variant} {fleet.size}: {label}: {len(run_ids)} runs requested, over "
              f"{max(created) - min(created):.0f} s")  # fmt: skip
        ended = wait_ended(session, run_ids)
        phase(f"{fleet.variant} {fleet.size}: {label}: runs ended; waiting for the stack to idle")
        wait_idle(session, ended)
        instance = session.instance
        assert instance is not None
        timelines = [
            timeline
            for timeline in run_timelines(instance, session.began - 60)
            if timeline.run_id in run_ids
        ]
        loaded = load_counts(instance, run_ids)
        checks = [check for run_id in run_ids for check in failed_checks(instance, run_id)]
        others = other_runs(session)
        slots = run_slots(instance)
    stats = fleet.emulator.admin("GET", "stats")["realms"]
    result = PhaseResult(
        variant=fleet.variant, label=label, realms=fleet.size, slots=slots, began=began,
        ended=ended, origin=origin, timelines=timelines, loaded=loaded,
        stats={realm: stats.get(realm, {}) for realm in fleet.realms},
        window=session.sampler.window(began, ended), others=others, failed_checks=checks,
        changed=changed, delay=delay, requesting=max(created) - min(created),
    )  # fmt: skip
    if tick is None:
        result.difference = warehouse_difference(fleet)
    print("\n".join(f"    {line}" for line in phase_summary(result)), flush=True)
    return result


def load_counts(instance: dg.DagsterInstance, run_ids: list[str]) -> Loaded:
    """Rows and lines the runs wrote, and their sync's requests, from the materialisations."""
    import dagster as dg

    rows = lines = requests = 0
    for run_id in run_ids:
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        for record in records:
            materialization = record.event_log_entry.asset_materialization
            assert materialization is not None
            metadata = materialization.metadata

            def value(key: str, metadata: dict = metadata) -> int:
                return int(metadata[key].value) if key in metadata else 0

            rows, lines = rows + value("rows_loaded"), lines + value("lines_loaded")
            requests += value("api_requests")
    return Loaded(rows, lines, requests)


def other_runs(session: Session) -> list[OtherRun]:
    created_after = datetime.fromtimestamp(session.began, UTC)
    return [
        OtherRun(
            record.dagster_run.job_name,
            record.dagster_run.status.value,
            record.create_timestamp.timestamp(),
            record.end_time,
        )
        for record in session.runs(created_after=created_after)
        if record.dagster_run.job_name != JOB
    ]


def run_slots(instance: dg.DagsterInstance) -> int:
    """max_concurrent_runs of the instance's run queue (Dagster's default is 10)."""
    return instance.get_concurrency_config().run_queue_config.max_concurrent_runs


def warehouse_difference(fleet: Fleet) -> int:
    """Rows of every entity table, realm by realm, the warehouse holds and QBO does not, or
    the reverse; read once the stack is stopped (DuckDB has one writer process)."""
    from qbo_pipeline.warehouse import connect_warehouse
    from qbo_pipeline.warehouse.schema import entity_table

    warehouse = connect_warehouse(fleet.warehouse_url, default_path=fleet.folder / "unused.duckdb")
    held: dict[tuple[str, str], int] = {}
    try:
        for entity in ENTITIES:
            table = entity_table(entity).qualified
            for realm, rows in warehouse.query(
                f"SELECT realm_id, count(*) FROM {table} GROUP BY realm_id"
            ):
                held[(realm, entity.name)] = int(rows)
    finally:
        warehouse.close()
    return sum(
        abs(held.get((realm, entity.name), 0) - fleet.qbo_rows[realm].get(entity.name, 0))
        for realm in fleet.realms
        for entity in ENTITIES
    )


# --- A variant --------------------------------------------------------------------------------


def run_variant(variant: str, sizes: Sizes, folder: Path, results: list[PhaseResult]) -> None:
    """Every N of the variant in turn, each with its own emulator and state; the day's
    ticks after the largest N's first syncs. Results are appended as they come."""
    from qbo_pipeline.throwaway_postgres import postgres_server

    with ExitStack() as resources:
        server = None
        if variant == "postgres":
            server = resources.enter_context(postgres_server(durable=True))
        for realms in sizes.realms:
            phase(f"{variant} {realms}: generating {realms} companies of "
                  f"{sizes.customers:,} customers and {sizes.invoices:,} invoices")  # fmt: skip
            emulator = start_realms_emulator(sizes, realms, folder / f"emulator-{variant}.log")
            try:
                fleet = make_fleet(variant, emulator, folder / f"{variant}-{realms}", server)
                connect_fleet(fleet, realms)
                results.append(run_phase(fleet, "first sync", crons()))
                if realms == max(sizes.realms):
                    run_day(fleet, sizes, results)
            finally:
                emulator.stop()


def run_day(fleet: Fleet, sizes: Sizes, results: list[PhaseResult]) -> None:
    """The hourly ticks, then the nightly reconciliation, each after its share of changes."""
    for index in range(1, sizes.hourly_ticks + 1):
        changed = make_changes(fleet, 1.0, seed=1000 * index)
        at = next_tick(fleet)
        schedule = crons(sync=daily_cron(at))
        results.append(
            run_phase(fleet, f"hourly tick {index}", schedule, (SYNC_SCHEDULE, at), changed)
        )
    changed = make_changes(fleet, 0.5, seed=99_000)
    at = next_tick(fleet)
    schedule = crons(reconcile=daily_cron(at))
    results.append(
        run_phase(fleet, "reconciliation tick", schedule, (RECONCILE_SCHEDULE, at), changed)
    )


# --- Reporting --------------------------------------------------------------------------------


def _mean(values: list[float]) -> float:
    return mean(values) if values else float("nan")


def run_times(result: PhaseResult) -> dict[str, list[float]]:
    """Per run: queue wait (created to dequeued), launch (dequeued to its first step),
    steps (first step start to last step end) and the whole run (created to ended)."""
    times: dict[str, list[float]] = {"queue": [], "launch": [], "steps": [], "run": []}
    for t in result.timelines:
        if t.launched is not None:
            times["queue"].append(t.launched - t.queued)
            if t.first_step is not None:
                times["launch"].append(t.first_step - t.launched)
        if t.first_step is not None and t.last_step_end is not None:
            times["steps"].append(t.last_step_end - t.first_step)
        if t.ended is not None:
            times["run"].append(t.ended - t.queued)
    return times


def qbo_bound(result: PhaseResult, latency_ms: int) -> tuple[float, float, int]:
    """The fastest QBO's limits allow the phase: each realm's requests at its three limits,
    realms on the queue's run slots, longest first; and the slowest realm's own bound and
    requests."""
    each = sorted(
        ((minimum_seconds(r, latency_ms / 1000), r) for r in result.requests()), reverse=True
    )
    lanes = [0.0] * max(1, result.slots)
    for seconds, _ in each:
        lanes[lanes.index(min(lanes))] += seconds
    slowest, requests = each[0] if each else (0.0, 0)
    return max(lanes), slowest, requests


def phase_summary(result: PhaseResult) -> list[str]:
    w, times = result.window, run_times(result)
    loaded, requests = result.loaded, result.requests()
    rows = loaded.rows + loaded.lines
    throttled = counter(result, "throttled")
    lines = [
        f"{result.wall:.1f} s from {result.origin} to the last run's end; {len(result.timelines)} "
        f"runs, {len(result.failed)} not succeeded; {loaded.rows:,} rows + {loaded.lines:,} "
        f"lines, {rows / max(result.wall, 1e-9):,.0f} a second",
        f"requests {sum(requests):,} ({_mean(requests):.1f} a realm, at most "
        f"{max(requests or [0])}; the sync's {loaded.sync_requests:,}, the checks' "
        f"{sum(requests) - loaded.sync_requests:,}; COUNT {counter(result, 'count_queries'):,}, "
        f"CDC {counter(result, 'cdc_calls'):,}); 429s {throttled}; the busiest realm's peaks: "
        f"{result.peak('peak_per_second')[0]} in 1 s, {result.peak('peak_per_minute')[0]} in "
        f"60 s, {result.peak('peak_in_flight')[0]} in flight",
        f"peak memory {w.peak_rss_mib:,.0f} MiB resident ({w.peak_anon_mib:,.0f} MiB anonymous), "
        f"largest process {w.largest_mib:,.0f} MiB ({w.largest_name}), at most {w.peak_runs} "
        "run processes",
        f"CPU: machine {w.machine_share:.0%} busy of {os.cpu_count()} cores; the stack "
        f"{w.share('stack'):.0%}, server {w.share('server'):.0%}, emulator "
        f"{w.share('emulator'):.0%}",
        f"per run: queue {_mean(times['queue']):.1f} s, launch {_mean(times['launch']):.1f} s, "
        f"steps {_mean(times['steps']):.1f} s (max {max(times['steps'] or [0]):.1f}), "
        f"whole run {_mean(times['run']):.1f} s; the {len(result.timelines)} runs were "
        f"requested over {result.requesting:.0f} s",
    ]
    if result.others:
        last = max((o.ended or 0) for o in result.others)
        lines.append(
            f"other runs: {len(result.others)} ("
            + ", ".join(sorted({f"{o.job} {o.status}" for o in result.others}))
            + f"), the last ended {last - result.ended:.0f} s after the syncs"
        )
    if result.delay is not None:
        lines.append(f"first run created {result.delay:.1f} s after the tick's time")
    return lines


def counter(result: PhaseResult, key: str) -> int:
    """A counter of the emulator's, summed over the realms."""
    return sum(stats.get(key, 0) for stats in result.stats.values())


def phase_lines(result: PhaseResult, latency_ms: int) -> list[Line]:
    """Figures held to QBO's limits and the runs' success; the bound as a note."""
    name = result.name
    bound, slowest, requests = qbo_bound(result, latency_ms)
    per_second, _ = result.peak("peak_per_second")
    per_minute, _ = result.peak("peak_per_minute")
    in_flight, _ = result.peak("peak_in_flight")
    throttled = counter(result, "throttled")
    lines: list[Line] = [
        Figure(f"{name}: runs not succeeded", len(result.failed), "runs", 0, "max"),
        Figure(f"{name}: runs / realms", len(result.timelines) / result.realms,
               "ratio", 1.0, "min"),
        Figure(f"{name}: 429 answers", throttled, "429s", 0, "max"),
        Figure(f"{name}: busiest realm's peak requests in 1 s", per_second, "req",
               PER_SECOND, "max"),
        Figure(f"{name}: busiest realm's peak requests in 60 s", per_minute, "req",
               PER_MINUTE, "max"),
        Figure(f"{name}: busiest realm's peak requests in flight", in_flight, "req",
               IN_FLIGHT, "max"),
        Figure(f"{name}: other runs not succeeded (dbt)",
               sum(o.status != "SUCCESS" for o in result.others), "runs", 0, "max"),
        Note(f"{name}: QBO's bound / wall time",
             f"{bound / max(result.wall, 1e-9):.2f} ({bound:.1f} s: the slowest realm's "
             f"{requests} requests need {slowest:.1f} s; {result.realms} realms on "
             f"{result.slots} run slots)"),
        Note(f"{name}: asset checks failed", f"{len(result.failed_checks)}"),
    ]  # fmt: skip
    if result.difference is not None:
        lines.append(
            Figure(f"{name}: warehouse rows missing or extra", result.difference, "rows", 0, "max")
        )
    return lines


TABLE_HEADER = (
    f"{'phase':<22}{'realms':>7}{'wall s':>9}{'rows+lines':>12}{'rows/s':>9}"
    f"{'RSS MiB':>9}{'anon':>7}{'largest':>9}{'CPU':>6}{'stack':>7}{'server':>7}"
    f"{'emul.':>7}{'runs':>6}{'queue s':>9}{'launch s':>9}{'steps s':>9}{'req/realm':>10}"
)


def table_row(result: PhaseResult) -> str:
    w, times, loaded = result.window, run_times(result), result.loaded
    rows = loaded.rows + loaded.lines
    return (
        f"{result.label:<22}{result.realms:>7}{result.wall:>9.1f}{rows:>12,}"
        f"{rows / max(result.wall, 1e-9):>9,.0f}{w.peak_rss_mib:>9,.0f}{w.peak_anon_mib:>7,.0f}"
        f"{w.largest_mib:>9,.0f}{w.machine_share:>6.0%}{w.share('stack'):>7.0%}"
        f"{w.share('server'):>7.0%}{w.share('emulator'):>7.0%}{w.peak_runs:>6}"
        f"{_mean(times['queue']):>9.1f}{_mean(times['launch']):>9.1f}"
        f"{_mean(times['steps']):>9.1f}{_mean(result.requests()):>10.1f}"
    )


def variant_table(variant: str, results: list[PhaseResult]) -> list[str]:
    own = [r for r in results if r.variant == variant]
    if not own:
        return []
    title = {
        "embedded": "embedded: dagster dev, SQLite instance and token store, DuckDB warehouse",
        "postgres": "postgres: deploy/local/run.sh, instance, tokens and warehouse on PostgreSQL",
    }[variant]
    note = (
        "CPU: busy share of every core over the wall time (stack, server: their processes; "
        "emul.: the emulator, standing in for Intuit); runs: most run processes at once; "
        "queue, launch, steps: means per run"
    )
    return ["", f"{title} ({own[0].slots} runs at a time)", note, TABLE_HEADER] + [
        table_row(r) for r in own
    ]


def bend_lines(variant: str, results: list[PhaseResult]) -> list[str]:
    """From each N of first syncs to the next: what grew, and by how much, to say where the
    curve bends (CPU saturation, the run queue and launches, or the runs' own steps)."""
    firsts = [r for r in results if r.variant == variant and r.label == "first sync"]
    lines = []
    for before, after in itertools.pairwise(firsts):
        a, b = run_times(before), run_times(after)
        rate_a = (before.loaded.rows + before.loaded.lines) / max(before.wall, 1e-9)
        rate_b = (after.loaded.rows + after.loaded.lines) / max(after.wall, 1e-9)
        grown = after.realms / before.realms
        lines.append(
            f"{variant} {before.realms} -> {after.realms} realms (x{grown:g}): wall x"
            f"{after.wall / max(before.wall, 1e-9):.2f}, rows/s x{rate_b / max(rate_a, 1e-9):.2f}; "
            f"CPU busy {before.window.machine_share:.0%} -> {after.window.machine_share:.0%}; "
            f"per run: queue {_mean(a['queue']):.1f} -> {_mean(b['queue']):.1f} s, launch "
            f"{_mean(a['launch']):.1f} -> {_mean(b['launch']):.1f} s, steps "
            f"{_mean(a['steps']):.1f} -> {_mean(b['steps']):.1f} s"
        )
    return lines


def day_lines(variant: str, results: list[PhaseResult]) -> list[Line]:
    """The day composed from the measured ticks, against the hour and Intuit's allowance."""
    hourly = [r for r in results if r.variant == variant and r.label.startswith("hourly")]
    reconcile = [r for r in results if r.variant == variant and r.label.startswith("reconcil")]
    if not hourly or not reconcile:
        return []
    realms = hourly[0].realms
    per_tick = _mean([_mean(r.requests()) for r in hourly])
    per_reconcile = _mean(reconcile[0].requests())
    per_day = HOURLY_TICKS_PER_DAY * per_tick + RECONCILE_TICKS_PER_DAY * per_reconcile
    per_month = per_day * DAYS_PER_MONTH
    tick_wall = max(r.wall for r in hourly)
    with_dbt = max(max([r.ended] + [o.ended or 0.0 for o in r.others]) - r.began for r in hourly)
    cpu = _mean([r.window.cpu_seconds.get("machine_busy", 0.0) for r in hourly])
    day_cpu = HOURLY_TICKS_PER_DAY * cpu + reconcile[0].window.cpu_seconds.get("machine_busy", 0)
    name = f"{variant} {realms}: day"
    ticks = " and ".join(f"{r.wall:.0f} s, {_mean(r.requests()):.2f} calls a realm" for r in hourly)
    return [
        Note(f"{name}: composed of measured ticks",
             f"{HOURLY_TICKS_PER_DAY} hourly ticks (each as the mean of {len(hourly)} measured: "
             f"{ticks}) + {RECONCILE_TICKS_PER_DAY} reconciliation tick ("
             f"{reconcile[0].wall:.0f} s, {per_reconcile:.2f} calls a realm), as '0 * * * *' "
             "and '30 3 * * *' make a day"),
        Note(f"{name}: calls a realm: tick; reconciliation; day; 30 days",
             f"{per_tick:.2f}; {per_reconcile:.2f}; {per_day:,.1f}; {per_month:,.0f}"),
        Note(f"{name}: companies a Builder workspace syncs hourly",
             f"{BUILDER_CALLS_PER_MONTH / max(per_month, 1e-9):,.0f} "
             f"({BUILDER_CALLS_PER_MONTH:,} CorePlus calls a month / {per_month:,.0f})"),
        Figure(f"{name}: all {realms} realms' calls in 30 days",
               per_month * realms, "calls", BUILDER_CALLS_PER_MONTH, "max"),
        Figure(f"{name}: an hourly tick's wall time (capacity: the hour)", tick_wall, "s",
               HOUR, "max"),
        Note(f"{name}:   with the dbt build the syncs set off", f"{with_dbt:.0f} s, "
             f"{with_dbt / HOUR:.1%} of the hour"),
        Note(f"{name}: a day's CPU, machine busy (24 ticks + reconciliation)",
             f"{day_cpu / HOUR:.2f} core-hours of {24 * (os.cpu_count() or 1)}"),
        Note(f"{name}: realms a tick could hold in an hour at this pace",
             f"{realms * HOUR / max(tick_wall, 1e-9):,.0f} (if time grew with the realms)"),
    ]  # fmt: skip


def report(results: list[PhaseResult], sizes: Sizes, variants: list[str]) -> list[Line]:
    figures: list[Line] = []
    for result in results:
        figures += phase_lines(result, sizes.latency_ms)
    for variant in variants:
        print("\n".join(variant_table(variant, results)), flush=True)
        print("\n".join(bend_lines(variant, results)), flush=True)
        figures += day_lines(variant, results)
    print("\nAll figures:", flush=True)
    print_lines(figures)
    return figures


# --- Main -------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="of " + ",".join(VARIANTS))
    parser.add_argument("--realms", default=None, help="companies per phase (default 1,10,50)")
    parser.add_argument("--customers", type=int, default=None, help="per company (default 1000)")
    parser.add_argument("--invoices", type=int, default=None, help="per company (default 2000)")
    parser.add_argument("--hourly-ticks", type=int, default=None, help="measured (default 1)")
    parser.add_argument("--latency-ms", type=int, default=LATENCY_MS)
    parser.add_argument("--quick", action="store_true", help="1 and 3 companies of 200 + 400")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    parser.add_argument("--child-connect", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = {"realms": "1,3", "customers": 200, "invoices": 400, "hourly_ticks": 1}
    full = {"realms": "1,10,50", "customers": 1000, "invoices": 2000, "hourly_ticks": 1}
    defaults = quick if args.quick else full
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - set(VARIANTS):
        parser.error(f"--variants: use {', '.join(VARIANTS)}")
    try:
        realms = sorted({int(n) for n in args.realms.split(",") if n.strip()})
    except ValueError:
        parser.error("--realms: whole numbers, e.g. 1,10,50")
    if not realms or realms[0] < 1 or args.hourly_ticks < 1:
        parser.error("--realms and --hourly-ticks must be at least 1")
    args.variants = variants
    sizes = Sizes(realms, args.customers, args.invoices, args.hourly_ticks, args.latency_ms)
    return args, sizes


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every stack, emulator and server is stopped."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse(argv)
    if args.child_connect:
        _child_connect(args.child_connect)
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; realms {sizes.realms}, "
          f"{sizes.customers:,} customers + {sizes.invoices:,} invoices a company, latency "
          f"{sizes.latency_ms} ms +-20%, {sizes.hourly_ticks} hourly ticks measured",
          flush=True)  # fmt: skip
    started = time.monotonic()
    results: list[PhaseResult] = []
    failed = False
    folder = Path(tempfile.mkdtemp(prefix="qbo-realms-bench-"))
    try:
        for variant in args.variants:
            try:
                run_variant(variant, sizes, folder, results)
            except (RuntimeError, httpx.HTTPError, subprocess.CalledProcessError, OSError):
                traceback.print_exc()
                failed = True
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: everything is stopped; report the rest
        print("interrupted", flush=True)
        failed = True
    finally:
        if args.keep:
            print(f"scratch folder and logs kept in {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    phase(f"done in {(time.monotonic() - started) / 60:.1f} min")
    figures = report(results, sizes, args.variants)
    return 0 if not failed and all(line.ok for line in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
