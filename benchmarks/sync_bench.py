"""Syncs as a user runs them (`qbo-pipeline sync`), against an emulator at QBO's real limits.

    .venv/bin/python -m benchmarks.sync_bench                  # small, medium and large
    .venv/bin/python -m benchmarks.sync_bench --sizes small    # a minute or two
    .venv/bin/python -m benchmarks.sync_bench --per-entity     # then CPU per row of each entity

Each company gets an emulator in its own process with all of QBO's per-realm limits on
(500 requests in any 60 s, 10 in any second, 10 in flight) and 300 ms per page of 1000
rows (+-20%). A separate process connects the company through OAuth (not measured).
Then `qbo-pipeline sync` (the Dagster job qbo_sync in-process, with the checks the
hourly run makes) runs in a fresh process four times: the full sync; an incremental one
after 1% of the rows changed; and, QBO's clock moved past the overlap a sync reads
again, two with nothing changed (the first still reads the 1% again).

Each sync is measured from outside with os.wait4 (wall time, user + sys CPU, peak RSS),
from inside by a sampler thread (what pymalloc, glibc, DuckDB and Arrow hold), at the
emulator (requests, 429s and the peaks of the three limits, exact), and from the Dagster
run (each asset's `api_requests` and row count, the checks' results).

The bound is simulated (`benchmarks.bound`): the fastest the three limits allow the
requests a full sync cannot avoid, at the mean latency.

`--per-entity` then syncs the same company once more, every catalog entity's full sync
one after the other in a fresh process (the engine's `share_run_changes` and
`sync_entity`, without Dagster), into an empty warehouse, against the same emulator, and
takes the process's CPU around each entity: its rows, lines, requests, data pages, CPU
and CPU per entity row. The run syncs entities side by side, where no CPU clock is one
entity's; one at a time, the process's is.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from benchmarks.bound import data_pages, minimum_seconds, needed_requests
from benchmarks.run import CLI, Figure, _clean_env, _free_port, _wait_for
from qbo_pipeline.quickbooks.catalog import ENTITIES

if TYPE_CHECKING:
    import resource

    import dagster as dg

    from qbo_pipeline.sync.engine import EntitySyncResult

LATENCY_MS = 300
SAMPLES_VARIABLE = "SYNC_BENCH_MEMORY_FILE"  # where --child-sync writes its memory samples
PER_ENTITY_VARIABLE = "SYNC_BENCH_PER_ENTITY_FILE"  # where --child-per-entity writes its costs
SAMPLE_SECONDS = 0.05
SPLIT_EVERY = 5  # the allocators' split every 250 ms: it costs ~1.5 ms, RSS ~0.02 ms
MIB = 1024 * 1024
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

# Goals.
BOUND_RATIO_GOAL = {"small": 0.8, "medium": 0.9, "large": 0.9}
REQUESTS_PER_PAGE_GOAL = 1.1
CPU_US_PER_ENTITY_GOAL = 60.0
SMALL_RSS_GOAL_MIB = 300.0
RSS_GROWTH_GOAL = 1.1  # medium over small: memory must not grow with the company
NO_CHANGE_REQUESTS_GOAL = 3


@dataclass(frozen=True)
class Company:
    name: str
    customers: int
    invoices: int

    @property
    def entities(self) -> int:
        return self.customers + self.invoices

    def scaled(self, factor: float) -> Company:
        return Company(self.name, int(self.customers * factor), int(self.invoices * factor))


# 60, 300 and 1,000 data pages: the last is past 500 requests, where the minute binds.
COMPANIES = {
    company.name: company
    for company in (
        Company("small", 20_000, 40_000),
        Company("medium", 100_000, 200_000),
        Company("large", 600_000, 400_000),
    )
}


@dataclass(frozen=True)
class Note:
    """A figure without a goal: printed in the same columns, never failing the run."""

    name: str
    text: str
    ok: bool = True

    def line(self) -> str:
        return f"{self.name:<72} {self.text}"


Line = Figure | Note


def phase(text: str) -> None:
    """One progress line with the load average: the machine is shared, and a busy one
    moves every time figure."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')}] {text} (load average {load})", flush=True)


# --- The emulator ------------------------------------------------------------------------


@dataclass(frozen=True)
class Emulator:
    process: subprocess.Popen
    base_url: str
    secret: str

    def admin(self, method: str, path: str, **kwargs) -> dict:
        response = httpx.request(method, f"{self.base_url}/_emulator/{path}", timeout=600, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else {}

    def realm_stats(self, realm: str) -> dict:
        return self.admin("GET", "stats")["realms"].get(realm, {})

    def rss_mib(self) -> float:
        return _status_kib(Path(f"/proc/{self.process.pid}/status"), "VmRSS") / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def start_emulator(company: Company, latency_ms: int) -> Emulator:
    """The company is the emulator's own (its consent realm); QBO's limits are on by default."""
    from qbo_pipeline.vault.crypto import generate_key

    port, secret = _free_port(), generate_key()
    process = subprocess.Popen(
        [CLI, "emulator", "--port", str(port), "--customers", str(company.customers),
         "--invoices", str(company.invoices), "--latency-ms", str(latency_ms),
         "--latency-jitter", "0.2", "--client-id", "bench", "--client-secret", secret],
        env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    _wait_for(f"{base}/.well-known/openid_configuration", process, timeout=1800)
    return Emulator(process, base, secret)


def pipeline_env(emulator: Emulator, state_dir: Path, key: str) -> dict[str, str]:
    return {
        **_clean_env(),
        "QUICKBOOKS_CLIENT_ID": "bench",
        "QUICKBOOKS_CLIENT_SECRET": emulator.secret,
        "QUICKBOOKS_DISCOVERY_URL": f"{emulator.base_url}/.well-known/openid_configuration",
        "QUICKBOOKS_API_BASE_URL": emulator.base_url,
        "QBO_TOKEN_KEY": key,
        "QBO_STATE_DIR": str(state_dir),
    }


# --- Inside the sync process -------------------------------------------------------------


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _malloc_probe() -> Callable[[], tuple[int, int]]:
    """glibc's bytes in use and taken from the system (arenas and mmap'd chunks): Python's
    objects over 512 bytes, the C libraries' heap, and the Arrow batches DuckDB exports.
    mallinfo2 walks every arena's free lists: about 1 ms in a sync's heap."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype, mallinfo2.argtypes = _MallInfo2, []

    def in_use_and_held() -> tuple[int, int]:
        info = mallinfo2()
        return info.uordblks + info.hblkhd, info.arena + info.hblkhd

    return in_use_and_held


def _duckdb_probe() -> Callable[[], tuple[int, int]] | None:
    """DuckDB's bytes allocated and resident, from the jemalloc it links (symbols
    `duckdb_je_*`): what `duckdb_memory()` reports, without a connection. None until
    DuckDB is loaded."""
    module = sys.modules.get("_duckdb")
    if module is None:
        return None
    mallctl = ctypes.CDLL(module.__file__).duckdb_je_mallctl
    mallctl.argtypes = [
        ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p, ctypes.c_size_t,
    ]  # fmt: skip
    epoch, value, size = ctypes.c_uint64(1), ctypes.c_size_t(0), ctypes.c_size_t(8)

    def read(name: bytes) -> int:
        size.value = 8
        mallctl(name, ctypes.byref(value), ctypes.byref(size), None, 0)
        return value.value

    def allocated_and_resident() -> tuple[int, int]:
        size.value = 8  # jemalloc's statistics are a snapshot taken at each new epoch
        mallctl(b"epoch", ctypes.byref(epoch), ctypes.byref(size), ctypes.byref(epoch), 8)
        return read(b"stats.allocated"), read(b"stats.resident")

    return allocated_and_resident


def _rss_bytes() -> int:
    """Resident pages from /proc/self/statm: a tenth of the cost of /proc/self/status."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def _status_kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _pymalloc_summary() -> dict[str, int]:
    """pymalloc's bytes in allocated blocks and its arenas' high-water mark, from
    sys._debugmallocstats (too slow to sample; it writes to C's stderr, so fd 2 is
    borrowed for the call). With the block count it turns blocks into bytes."""
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            blocks = sys.getallocatedblocks()
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    numbers: dict[str, int] = {}
    for line in text.splitlines():
        name, equals, value = line.partition("=")
        if equals and name.startswith("#"):
            try:
                numbers[name.strip("# ")] = int(value.replace(",", ""))
            except ValueError:
                continue
    return {
        "blocks": blocks,
        "bytes_in_allocated_blocks": numbers.get("bytes in allocated blocks", 0),
        "arenas_highwater": numbers.get("arenas highwater mark", 0),
    }


def _arrow_bytes() -> int:
    """Arrow's default pool, once pyarrow is imported (and past its own import)."""
    total = getattr(sys.modules.get("pyarrow"), "total_allocated_bytes", None)
    return total() if total else 0


# One sample: seconds, RSS, then the split (the last one taken): glibc in use and held,
# pymalloc's blocks, DuckDB's allocated and resident, Arrow's pool; bytes.
Sample = tuple[float, int, int, int, int, int, int, int]
COLUMNS = ("seconds", "rss", "malloc", "malloc_held", "pymalloc_blocks", "duckdb",
           "duckdb_resident", "arrow")  # fmt: skip


class MemorySampler(threading.Thread):
    """Every 50 ms the process's RSS; every 250 ms where its memory is, by allocator.

    The thread counts its own CPU, so that the report can show it does not distort the
    process's figure.
    """

    def __init__(self) -> None:
        super().__init__(name="sync-bench-memory", daemon=True)
        self.samples: list[Sample] = []
        self.cpu_seconds = 0.0
        self.errors: list[str] = []
        self._done = threading.Event()
        self._malloc = _malloc_probe()
        self._duckdb: Callable[[], tuple[int, int]] | None = None
        self._split = (0, 0, 0, 0, 0, 0)
        self._origin = time.monotonic()

    def run(self) -> None:
        tick = 0
        while not self._done.wait(SAMPLE_SECONDS):
            try:
                self._take(split=tick % SPLIT_EVERY == 0)
            except Exception as error:  # a probe's failure must not end the sampling
                self.errors.append(repr(error))
            tick += 1

    def stop(self) -> None:
        self._done.set()
        self.join()
        self._take(split=True)

    def _take(self, split: bool) -> None:
        cpu = time.thread_time()
        if split:
            if self._duckdb is None:
                self._duckdb = _duckdb_probe()
            duckdb = self._duckdb() if self._duckdb else (0, 0)
            self._split = (*self._malloc(), sys.getallocatedblocks(), *duckdb, _arrow_bytes())
        seconds = round(time.monotonic() - self._origin, 3)
        self.samples.append((seconds, _rss_bytes(), *self._split))
        self.cpu_seconds += time.thread_time() - cpu

    def report(self) -> dict:
        return {
            "columns": COLUMNS,
            "samples": self.samples,
            "sampler_cpu_seconds": self.cpu_seconds,
            "errors": self.errors[:5],
            "pymalloc_at_exit": _pymalloc_summary(),
        }


def _child_sync() -> int:
    """`qbo-pipeline sync` as its console script runs it, with the sampler beside it."""
    sampler = MemorySampler()
    sampler.start()
    try:
        from qbo_pipeline.cli import main as qbo_pipeline

        return qbo_pipeline(["sync"])
    finally:
        sampler.stop()
        Path(os.environ[SAMPLES_VARIABLE]).write_text(json.dumps(sampler.report()))


def _child_connect() -> None:
    """What `qbo-pipeline demo` does to connect: the user's OAuth consent, played."""
    from qbo_pipeline.commands.demo_run import connect_through_oauth
    from qbo_pipeline.runtime import Runtime

    runtime = Runtime.from_env()
    try:
        print(connect_through_oauth(runtime))
    finally:
        runtime.close()


def _child_per_entity(realm: str) -> None:
    """Every catalog entity's full sync, one after the other, with the calls the sync step
    makes (`share_run_changes`, then `sync_entity` on the run's client and held warehouse)
    and the process's CPU (`time.process_time`: user + sys of every thread) around each.

    An entity's sync reads its pages on threads, joins batches on another, and DuckDB works
    on threads of its own, so no thread's clock is the entity's; one entity at a time, the
    whole process's is. Dagster is not loaded: the figures are the engine's, and what a
    run adds is in the main benchmark's whole-process CPU. Written as JSON to the file
    PER_ENTITY_VARIABLE names.
    """
    import gc

    from qbo_pipeline.runtime import Runtime
    from qbo_pipeline.sync.engine import SyncOptions, share_run_changes, sync_entity

    runtime = Runtime.from_env()
    options = SyncOptions(full=True)
    costs: list[dict] = []
    try:
        with runtime.client(realm) as client, runtime.warehouse() as store, store.hold():
            shared = share_run_changes(client, store, list(ENTITIES), options)
            gc.freeze()  # as definitions.py does once the code is loaded
            set_up = time.process_time()
            for entity in ENTITIES:
                cpu = time.process_time()
                result = sync_entity(client, store, entity, options, shared=shared)
                costs.append(_entity_cost(result, time.process_time() - cpu))
            closing = time.process_time()
        closed = time.process_time()
    finally:
        runtime.close()
    report = {"set_up_cpu": set_up, "close_cpu": closed - closing, "entities": costs}
    Path(os.environ[PER_ENTITY_VARIABLE]).write_text(json.dumps(report))


def _entity_cost(result: EntitySyncResult, cpu_seconds: float) -> dict:
    """What the parent needs of one entity's sync: the engine's own counts and its CPU."""
    return {
        "entity": result.entity,
        "rows": result.rows,
        "lines": result.lines,
        "requests": result.requests,
        "seconds": result.seconds,
        "cpu_seconds": cpu_seconds,
    }


# --- Measuring a process from outside ----------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """Peaks in MiB, each over all samples, of what each allocator has in use (Python's
    heap is pymalloc plus most of glibc's share); `at_rss_peak` is the split in use, and
    `held_at_rss_peak` what glibc and DuckDB's jemalloc held, at the highest RSS."""

    rss: float
    pymalloc: float  # Python objects of up to 512 bytes (bytes per block taken at exit)
    malloc: float  # larger Python objects, C libraries, and the Arrow batches DuckDB exports
    duckdb: float  # DuckDB's own allocator: its buffers and the typing database
    arrow: float  # pyarrow's pool
    at_rss_peak: tuple[float, float, float, float]  # in the same order
    held_at_rss_peak: tuple[float, float]  # glibc's arenas and mmaps, jemalloc's resident
    pymalloc_arenas: float  # their high-water mark
    sampler_cpu_seconds: float
    samples: int


def memory_peaks(report: dict) -> Memory:
    pymalloc = report["pymalloc_at_exit"]
    per_block = pymalloc["bytes_in_allocated_blocks"] / max(1, pymalloc["blocks"])
    rows = [
        (rss, blocks * per_block, malloc, duckdb, arrow, malloc_held, duckdb_resident)
        for _, rss, malloc, malloc_held, blocks, duckdb, duckdb_resident, arrow in report["samples"]
    ]
    rows = [tuple(value / MIB for value in row) for row in rows]
    peaks = [max(column) for column in zip(*rows, strict=True)]
    at_peak = max(rows, key=lambda row: row[0])
    return Memory(
        *peaks[:5],
        at_rss_peak=at_peak[1:5],
        held_at_rss_peak=at_peak[5:],
        pymalloc_arenas=pymalloc["arenas_highwater"],  # arenas of 1 MiB
        sampler_cpu_seconds=report["sampler_cpu_seconds"],
        samples=len(rows),
    )


def mib(values: tuple[float, ...]) -> str:
    return " / ".join(f"{value:,.0f}" for value in values) + " MiB"


@dataclass(frozen=True)
class RunCost:
    """One `qbo-pipeline sync` process: os.wait4's figures and the sampler's."""

    seconds: float
    cpu_seconds: float  # user + sys
    peak_rss_mib: float  # ru_maxrss
    memory: Memory


class SyncFailed(RuntimeError):
    pass


def reaped(
    command: list[str], env: dict[str, str], log: Path, what: str
) -> tuple[float, resource.struct_rusage]:
    """Wall seconds and os.wait4's usage of a child whose output goes to `log`: reaped this
    way, its CPU and peak RSS are its own, not its parent's or the emulator's."""
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SyncFailed(f"{what} exited {process.returncode}:\n{tail}")
    return seconds, usage


def measured_sync(env: dict[str, str], folder: Path, label: str) -> RunCost:
    """`python -m benchmarks.sync_bench --child-sync` in a fresh process, reaped with
    os.wait4 so that its CPU and peak RSS are its own."""
    samples, log = folder / f"{label}-memory.json", folder / f"{label}.log"
    command = [sys.executable, "-m", "benchmarks.sync_bench", "--child-sync"]
    env = {**env, SAMPLES_VARIABLE: str(samples)}
    seconds, usage = reaped(command, env, log, f"{label}: qbo-pipeline sync")
    report = json.loads(samples.read_text())
    for error in report["errors"]:
        print(f"    the memory sampler failed: {error}", flush=True)
    return RunCost(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,
        memory=memory_peaks(report),
    )


@contextmanager
def connected_company(
    company: Company, latency_ms: int, prefix: str
) -> Iterator[tuple[Emulator, Path, dict[str, str], str]]:
    """The company's emulator, a scratch folder, the pipeline's environment and the realm
    connected through OAuth (not measured); the emulator stops afterwards."""
    from qbo_pipeline.vault.crypto import generate_key

    phase(
        f"{company.name}: generating {company.customers:,} customers, {company.invoices:,} invoices"
    )
    emulator = start_emulator(company, latency_ms)
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
            folder = Path(temporary)
            env = pipeline_env(emulator, folder, generate_key())
            yield emulator, folder, env, connect(env)
    finally:
        emulator.stop()


def connect(env: dict[str, str]) -> str:
    """Connect the emulator's company in a process of its own; returns the realm id."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.sync_bench", "--child-connect"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return completed.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class RunRecord:
    """What the Dagster run recorded: the sync's requests and rows per entity table."""

    sync_requests: int  # the assets' `api_requests`: the checks' are not in it
    rows_loaded: int
    warehouse_rows: dict[str, int]  # entity table -> dagster/row_count
    failed_checks: list[str]  # "table check: description"


def latest_run(folder: Path) -> RunRecord:
    """Read the last run's materialisations from the instance in QBO_STATE_DIR."""
    import dagster as dg

    from qbo_pipeline.commands.execution import dagster_home

    instance = dg.DagsterInstance.from_config(str(dagster_home(folder)))
    try:
        [run] = instance.get_runs(limit=1)
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        requests, loaded, warehouse_rows = 0, 0, {}
        for record in records:
            materialization = record.event_log_entry.asset_materialization
            metadata = materialization.metadata
            if "api_requests" in metadata:  # entity tables; line tables have none
                requests += metadata["api_requests"].value
                loaded += metadata["rows_loaded"].value
                table = materialization.asset_key.path[-1]
                warehouse_rows[table] = metadata["dagster/row_count"].value
        return RunRecord(requests, loaded, warehouse_rows, failed_checks(instance, run.run_id))
    finally:
        instance.dispose()


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run's check evaluations that did not pass: a COUNT the check could not make
    shows up here, not as a failed run."""
    import dagster as dg

    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    failed = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            table = evaluation.asset_key.path[-1]
            failed.append(f"{table} {evaluation.check_name}: {evaluation.description}")
    return failed


# --- One company -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sync:
    """One measured sync: the process, the emulator's view, and the run's record."""

    cost: RunCost
    stats: dict
    record: RunRecord

    @property
    def requests(self) -> int:
        """Requests QBO answered (429s excluded): the sync's and its checks'."""
        return self.stats.get("requests", 0) - self.stats.get("throttled", 0)

    @property
    def check_requests(self) -> int:
        return self.requests - self.record.sync_requests


def timed_sync(
    emulator: Emulator, realm: str, env: dict[str, str], folder: Path, label: str
) -> Sync:
    """A sync between an emulator stats reset and a stats read: exact counts and peaks."""
    phase(f"{label}: qbo-pipeline sync")
    emulator.admin("POST", "stats/reset")
    cost = measured_sync(env, folder, label)
    sync = Sync(cost, emulator.realm_stats(realm), latest_run(folder))
    stats = sync.stats
    reasons = {k: v for k, v in stats.get("throttled_by_reason", {}).items() if v}
    print(
        f"    {cost.seconds:.1f} s, {cost.cpu_seconds:.1f} s CPU, {cost.peak_rss_mib:.0f} MiB, "
        f"{sync.requests} requests answered ({sync.record.sync_requests} the sync's; CDC "
        f"{stats.get('cdc_calls', 0)}, COUNTs {stats.get('count_queries', 0)}), "
        f"429s {stats.get('throttled', 0)} {reasons or ''}",
        flush=True,
    )
    for check in sync.record.failed_checks:
        print(f"    check failed: {check}", flush=True)
    return sync


@dataclass(frozen=True)
class CompanyResult:
    company: Company
    rows: dict[str, int]  # every entity's rows in QBO, name lists included
    full: Sync
    changed: int
    incremental: Sync
    no_change: Sync  # the run after the incremental: it reads the changes again
    later: Sync  # the run after that: nothing to read again
    minutes: float
    per_entity: PerEntity | None = None  # --per-entity: each entity's full sync in turn
    per_entity_failed: str = ""  # ...or why it failed: the four syncs' figures still count


def bench_company(company: Company, latency_ms: int, per_entity: bool = False) -> CompanyResult:
    from qbo_pipeline.vault.crypto import generate_key

    started = time.monotonic()
    phase(
        f"{company.name}: generating {company.customers:,} customers, {company.invoices:,} invoices"
    )
    emulator = start_emulator(company, latency_ms)
    try:
        print(f"    emulator ready after {time.monotonic() - started:.0f} s, "
              f"{emulator.rss_mib():,.0f} MiB", flush=True)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="qbo-sync-bench-") as temporary:
            folder = Path(temporary)
            env = pipeline_env(emulator, folder, generate_key())
            phase(f"{company.name}: connecting (not measured)")
            realm = connect(env)
            rows = emulator.admin("GET", f"companies/{realm}/summary")["counts"]
            full = timed_sync(emulator, realm, env, folder, f"{company.name} full")
            changed = mutate_one_percent(emulator, realm, company)
            incremental = timed_sync(emulator, realm, env, folder, f"{company.name} incremental")
            past_overlap(emulator)
            no_change = timed_sync(emulator, realm, env, folder, f"{company.name} no change")
            later = timed_sync(emulator, realm, env, folder, f"{company.name} no change again")
            # Last, so that its requests are in no window the four syncs are measured in.
            each, failed = None, ""
            if per_entity:
                try:
                    each = per_entity_pass(emulator, realm, env, folder, company.name)
                except (SyncFailed, httpx.HTTPError) as error:
                    print(f"    the per-entity pass failed: {error}", flush=True)
                    failed = str(error).splitlines()[0]
    finally:
        emulator.stop()
    minutes = (time.monotonic() - started) / 60
    return CompanyResult(
        company, rows, full, changed, incremental, no_change, later, minutes, each, failed
    )


def past_overlap(emulator: Emulator) -> None:
    """Move QBO's clock past the window a sync reads again (rows changed up to
    DEFAULT_OVERLAP before the previous run's cursor), as the next hourly run finds it.

    That run still reads again what changed within the overlap before the incremental's
    cursor (here, all of the 1%); only the run after it finds nothing to read again.
    """
    from qbo_pipeline.sync.engine import DEFAULT_OVERLAP

    seconds = DEFAULT_OVERLAP.total_seconds() + 60
    emulator.admin("POST", "clock", json={"advance_seconds": seconds})


def mutate_one_percent(emulator: Emulator, realm: str, company: Company) -> int:
    """Update 1% of the rows (one bulk change, as an import makes); the distinct rows."""
    mutated = emulator.admin(
        "POST", f"companies/{realm}/mutate", json={"updates": company.entities // 100, "seed": 1130}
    )
    return len({(u["entity"], u["id"]) for u in mutated["updated"]})


# --- Each entity in turn (--per-entity) --------------------------------------------------


@dataclass(frozen=True)
class EntityCost:
    """One entity's full sync in the per-entity pass, as `_child_per_entity` measured it."""

    entity: str
    rows: int  # the entity's rows written
    lines: int  # its lines, written from the same pages: their cost is the entity's
    requests: int  # the engine's count: queries and COUNTs
    seconds: float  # wall time, mostly waiting on QBO's latency and limits
    cpu_seconds: float  # the whole process's, while this entity alone was syncing


@dataclass(frozen=True)
class PerEntity:
    """The pass: each entity's cost, what the process spent around them, QBO's counts and
    the emulator's view of the pass."""

    entities: list[EntityCost]
    set_up_cpu: float  # before the first entity: start-up, imports, vault, client, warehouse
    close_cpu: float  # closing the warehouse after the last: DuckDB checkpoints the file
    seconds: float  # the child from start to exit, and os.wait4's CPU and peak RSS
    cpu_seconds: float
    peak_rss_mib: float
    qbo_rows: dict[str, int]
    stats: dict

    @property
    def measured_cpu(self) -> float:
        """The entities' CPU and the close: what a full sync's data costs, without start-up."""
        return sum(cost.cpu_seconds for cost in self.entities) + self.close_cpu

    @property
    def rows(self) -> int:
        return sum(cost.rows for cost in self.entities)


def per_entity_pass(
    emulator: Emulator, realm: str, env: dict[str, str], folder: Path, name: str
) -> PerEntity:
    """Each entity's full sync in turn (`--child-per-entity`), in a fresh process reaped
    with os.wait4, against the same emulator, at the same latency and limits, with the
    company's tokens from the same vault but an empty warehouse of its own (a second
    OAuth connect is refused once QBO's clock has moved on: its id_token is not yet
    valid by ours)."""
    from qbo_pipeline.warehouse.base import WAREHOUSE_URL_VARIABLE  # loads DuckDB: not at top

    phase(f"{name} per entity: each entity's full sync in turn, into an empty warehouse")
    qbo_rows = emulator.admin("GET", f"companies/{realm}/summary")["counts"]
    emulator.admin("POST", "stats/reset")
    report_file = folder / "per-entity.json"
    env = {
        **env,
        WAREHOUSE_URL_VARIABLE: f"duckdb:///{folder / 'per-entity.duckdb'}",
        PER_ENTITY_VARIABLE: str(report_file),
    }
    command = [sys.executable, "-m", "benchmarks.sync_bench", "--child-per-entity", realm]
    seconds, usage = reaped(command, env, folder / "per-entity.log", f"{name}: per entity")
    report = json.loads(report_file.read_text())
    return PerEntity(
        entities=[EntityCost(**cost) for cost in report["entities"]],
        set_up_cpu=report["set_up_cpu"],
        close_cpu=report["close_cpu"],
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,
        qbo_rows=qbo_rows,
        stats=emulator.realm_stats(realm),
    )


def per_entity_table(name: str, result: PerEntity) -> list[str]:
    """One line per entity in the catalog's order, the warehouse's close, and the total;
    µs per row is over the entity's rows (its lines are part of its cost)."""
    total = result.measured_cpu
    header = (
        f"{'entity':<15}{'rows':>10}{'lines':>10}{'requests':>10}{'pages':>7}"
        f"{'wall s':>8}{'CPU s':>8}{'us/row':>9}{'share':>8}"
    )
    title = f"{name}: each entity's full sync in turn; us/row: CPU per entity row, lines included"
    lines = [title, header]
    for cost in result.entities:
        pages = data_pages({cost.entity: result.qbo_rows.get(cost.entity, 0)})
        lines.append(
            f"{cost.entity:<15}{cost.rows:>10,}{cost.lines:>10,}{cost.requests:>10,}{pages:>7,}"
            f"{cost.seconds:>8.1f}{_cpu_columns(cost.cpu_seconds, cost.rows, total)}"
        )
    lines.append(
        f"{'(warehouse close: checkpoint)':<52}{'':>8}{_cpu_columns(result.close_cpu, 0, total)}"
    )
    lines.append(
        f"{'total':<15}{result.rows:>10,}{sum(c.lines for c in result.entities):>10,}"
        f"{sum(c.requests for c in result.entities):>10,}{data_pages(result.qbo_rows):>7,}"
        f"{sum(c.seconds for c in result.entities):>8.1f}"
        f"{_cpu_columns(total, result.rows, total)}"
    )
    return lines


def _cpu_columns(cpu_seconds: float, rows: int, total: float) -> str:
    """CPU s, µs per row ('-' without rows) and the share of the pass's measured CPU."""
    micros = f"{cpu_seconds / rows * 1e6:,.1f}" if rows else "-"
    return f"{cpu_seconds:>8.2f}{micros:>9}{cpu_seconds / total:>8.1%}"


def per_entity_lines(name: str, result: PerEntity) -> list[Line]:
    """The pass's totals, and the checks that it synced the whole company unthrottled."""
    stats, rows = result.stats, result.rows
    entity_cpu = result.measured_cpu - result.close_cpu
    missing = sum(abs(result.qbo_rows.get(c.entity, 0) - c.rows) for c in result.entities)
    answered = stats.get("requests", 0) - stats.get("throttled", 0)
    return [
        Note(f"{name}: per entity: CPU of the {len(result.entities)} syncs + the close",
             f"{entity_cpu:.1f} + {result.close_cpu:.1f} s, "
             f"{result.measured_cpu / max(1, rows) * 1e6:.1f} us per entity row ({rows:,})"),
        Note(f"{name}:   the process: CPU before the first entity; in all; wall; peak RSS",
             f"{result.set_up_cpu:.1f} s; {result.cpu_seconds:.1f} s; {result.seconds:.1f} s; "
             f"{result.peak_rss_mib:,.0f} MiB"),
        Note(f"{name}:   requests: the engine's count / QBO answered / data pages",
             f"{sum(c.requests for c in result.entities):,} / {answered:,} / "
             f"{data_pages(result.qbo_rows):,}"),
        Figure(f"{name}: per entity: 429 answers", stats.get("throttled", 0), "429s", 0, "max"),
        Figure(f"{name}: per entity: rows written missing or extra", missing, "rows", 0, "max"),
    ]  # fmt: skip


# --- Figures -----------------------------------------------------------------------------


def full_sync_lines(result: CompanyResult, latency_ms: int) -> list[Line]:
    company, full = result.company, result.full
    name, latency = company.name, latency_ms / 1000
    needed, pages = needed_requests(result.rows), data_pages(result.rows)
    bound = minimum_seconds(needed, latency)
    goal = BOUND_RATIO_GOAL.get(name, 0.9)
    size = f"{company.customers:,} customers + {company.invoices:,} invoices"
    wall = full.cost.seconds
    return [
        Figure(f"{name}: full sync wall time ({size})", wall, "s", bound / goal, "max"),
        Figure(f"{name}: bound ({needed} requests at {latency_ms} ms) / wall time", bound / wall,
               "ratio", goal, "min"),
        Figure(f"{name}: full sync requests / data pages ({pages:,})",
               full.record.sync_requests / pages, "ratio", REQUESTS_PER_PAGE_GOAL, "max"),
        Note(f"{name}:   requests QBO answered: the sync's + the checks'",
             f"{full.record.sync_requests:,} + {full.check_requests} (COUNTs "
             f"{full.stats.get('count_queries', 0)}, CDC {full.stats.get('cdc_calls', 0)})"),
        *cost_lines(result),
        *limit_lines(result),
        Figure(f"{name}: full sync rows missing or extra in the warehouse",
               warehouse_difference(result.rows, full), "rows", 0, "max"),
    ]  # fmt: skip


def warehouse_difference(rows: dict[str, int], sync: Sync) -> int:
    """Rows of each entity table the warehouse holds and QBO does not, or the reverse."""
    held = sync.record.warehouse_rows
    return sum(abs(held.get(entity.table, 0) - rows[entity.name]) for entity in ENTITIES)


def cost_lines(result: CompanyResult) -> list[Line]:
    """CPU per entity (the whole process: Python, Dagster, the run) and where memory went."""
    name, full, entities = result.company.name, result.full, sum(result.rows.values())
    cpu = full.cost.cpu_seconds
    idle_cpu = min(result.no_change.cost.cpu_seconds, result.later.cost.cpu_seconds)
    memory = full.cost.memory
    at_peak = memory.at_rss_peak
    peaks = (memory.pymalloc, memory.malloc, memory.duckdb, memory.arrow)
    return [
        Note(f"{name}: full sync CPU (user + sys, the whole process)", f"{cpu:.1f} s"),
        Figure(f"{name}: full sync CPU per entity ({entities:,}: every entity, lines apart)",
               cpu / entities * 1e6, "us", CPU_US_PER_ENTITY_GOAL, "max"),
        Note(f"{name}:   per entity less a no-change sync's CPU ({idle_cpu:.1f} s)",
             f"{(cpu - idle_cpu) / entities * 1e6:.1f} us"),
        Note(f"{name}:   peaks in use: pymalloc / glibc malloc / DuckDB / Arrow pool",
             mib(peaks)),
        Note(f"{name}:   ... at the RSS peak ({memory.rss:,.0f} MiB sampled)", mib(at_peak)),
        Note(f"{name}:   ... held then: glibc / DuckDB's jemalloc; pymalloc at most",
             f"{mib(memory.held_at_rss_peak)}; {memory.pymalloc_arenas:,.0f} MiB"),
        Note(f"{name}:   memory sampler's CPU ({memory.samples:,} samples)",
             f"{memory.sampler_cpu_seconds:.2f} s, {memory.sampler_cpu_seconds / cpu:.1%} "
             "of the process's"),
    ]  # fmt: skip


def limit_lines(result: CompanyResult) -> list[Line]:
    """What the emulator saw of QBO's limits during the full sync (its window peaks count
    any request still in them, the connect's one too)."""
    name, stats = result.company.name, result.full.stats
    syncs = (result.full, result.incremental, result.no_change, result.later)
    throttled = sum(sync.stats.get("throttled", 0) for sync in syncs)
    return [
        Figure(f"{name}: 429 answers (all four syncs)", throttled,
               "429s", 0, "max"),
        Figure(f"{name}: asset checks failed or not evaluated (all four syncs)",
               sum(len(sync.record.failed_checks) for sync in syncs), "checks", 0, "max"),
        Figure(f"{name}: full sync peak requests in flight", stats.get("peak_in_flight", 0),
               "req", 10, "max"),
        Figure(f"{name}: full sync peak requests in any second", stats.get("peak_per_second", 0),
               "req", 10, "max"),
        Figure(f"{name}: full sync peak requests in any 60 s", stats.get("peak_per_minute", 0),
               "req", 500, "max"),
    ]  # fmt: skip


def later_sync_lines(result: CompanyResult) -> list[Line]:
    name, incremental, idle = result.company.name, result.incremental, result.no_change
    return [
        Note(f"{name}: incremental after {result.changed:,} rows changed (1%): requests",
             f"{incremental.record.sync_requests} the sync's + {incremental.check_requests} "
             f"the checks' (CDC {incremental.stats.get('cdc_calls', 0)}, COUNTs "
             f"{incremental.stats.get('count_queries', 0)})"),
        Note(f"{name}:   wall time; CPU", f"{incremental.cost.seconds:.1f} s; "
             f"{incremental.cost.cpu_seconds:.1f} s"),
        Figure(f"{name}: incremental rows written / rows changed",
               incremental.record.rows_loaded / max(1, result.changed), "ratio", 1.0, "min"),
        *no_change_lines(name, "next run, 6 min on (reads the 1% again)", idle),
        *no_change_lines(name, "the run after", result.later),
        Note(f"{name}: benchmark time for this company (generation included)",
             f"{result.minutes:.1f} min"),
    ]  # fmt: skip


def no_change_lines(name: str, when: str, sync: Sync) -> list[Line]:
    return [
        Figure(f"{name}: no-change sync requests, {when}", sync.record.sync_requests, "req",
               NO_CHANGE_REQUESTS_GOAL, "max"),
        Note(f"{name}:   the checks' requests; wall time; CPU; peak RSS",
             f"{sync.check_requests}; {sync.cost.seconds:.1f} s; {sync.cost.cpu_seconds:.1f} s; "
             f"{sync.cost.peak_rss_mib:,.0f} MiB"),
    ]  # fmt: skip


def memory_lines(results: dict[str, CompanyResult]) -> list[Line]:
    """Peak RSS (ru_maxrss): the small company's against its goal, larger ones against it."""
    lines: list[Line] = []
    small = results.get("small")
    for name, result in results.items():
        peak = result.full.cost.peak_rss_mib
        if name == "small":
            lines.append(
                Figure("small: full sync peak RSS", peak, "MiB", SMALL_RSS_GOAL_MIB, "max")
            )
        elif small is None:
            lines.append(Note(f"{name}: full sync peak RSS", f"{peak:,.0f} MiB"))
        else:
            ratio = peak / small.full.cost.peak_rss_mib
            label = f"{name}: full sync peak RSS / small's ({peak:,.0f} MiB)"
            lines.append(
                Figure(label, ratio, "ratio", RSS_GROWTH_GOAL, "max")
                if name == "medium"
                else Note(label, f"{ratio:.2f} (no goal)")
            )
    return lines


def print_lines(lines: list[Line]) -> None:
    for line in lines:
        print(line.line(), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium,large", help="of " + ",".join(COMPANIES))
    parser.add_argument("--latency-ms", type=int, default=LATENCY_MS)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every company's rows")
    parser.add_argument(
        "--per-entity",
        action="store_true",
        help="then sync each entity in turn in a fresh process: CPU per row of each entity",
    )
    parser.add_argument("--child-sync", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-connect", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-per-entity", metavar="REALM", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_sync:
        return _child_sync()
    if args.child_per_entity:
        _child_per_entity(args.child_per_entity)
        return 0
    if args.child_connect:
        _child_connect()
        return 0
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    unknown = [size for size in sizes if size not in COMPANIES]
    if unknown:
        parser.error(f"--sizes: unknown {', '.join(unknown)}; use {', '.join(COMPANIES)}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"latency {args.latency_ms} ms +-20%", flush=True)  # fmt: skip
    return run(sizes, args.latency_ms, args.scale, args.per_entity)


def run(sizes: list[str], latency_ms: int, scale: float, per_entity: bool = False) -> int:
    """Every size in turn; a size whose sync fails is reported and the others still run."""
    results: dict[str, CompanyResult] = {}
    lines: list[Line] = []
    failed = False
    for size in sizes:
        company = COMPANIES[size].scaled(scale)
        try:
            result = bench_company(company, latency_ms, per_entity)
        except (SyncFailed, subprocess.CalledProcessError, httpx.HTTPError, RuntimeError) as error:
            traceback.print_exc()
            if isinstance(error, subprocess.CalledProcessError):
                print(error.stderr, file=sys.stderr)
            failed = True
            continue
        results[size] = result
        company_lines = full_sync_lines(result, latency_ms) + later_sync_lines(result)
        if result.per_entity:
            print("\n".join(per_entity_table(size, result.per_entity)), flush=True)
            company_lines += per_entity_lines(size, result.per_entity)
        if result.per_entity_failed:
            failure = Figure(f"{size}: per entity: the pass failed", 1, "runs", 0, "max")
            company_lines.append(failure)
        print_lines(company_lines)
        lines += company_lines
    phase("done")
    lines += memory_lines(results)
    print("\nAll figures:", flush=True)
    print_lines(lines)
    for size, result in results.items():
        if result.per_entity:
            print("\n" + "\n".join(per_entity_table(size, result.per_entity)), flush=True)
    return 0 if not failed and all(line.ok for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
