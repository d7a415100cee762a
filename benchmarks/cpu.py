"""CPU per entity of the warehouse side of a sync, and its peak memory, without the network.

    .venv/bin/python -m benchmarks.cpu              # DuckDB, and PostgreSQL if available
    .venv/bin/python -m benchmarks.cpu --quick

The sync benchmark mixes HTTP, the emulator and the warehouse; this one isolates what the
pipeline itself spends per entity once a page is parsed: `normalise` (the Python work left
before the database: Id checks and JSON encoding) and `upsert` (everything
`Warehouse.upsert` does for batches of 5,000 new rows, typing included). The process is
pinned to one core, as the target is stated per core; each upsert's wall time is shown
beside its CPU, which on PostgreSQL adds the server's (its processes' accounting in /proc,
when the benchmark started the server). Peak memory is
measured in child processes (ru_maxrss is a high-water mark) for two company sizes; a flat
warehouse side keeps them within 20% of each other.

PostgreSQL: QBO_BENCH_POSTGRES_URL names a database to use (its qbo schema is written);
otherwise a throwaway server is started from the machine's binaries, if there are any.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg

from qbo_pipeline.emulator.generator import CompanyGenerator
from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE, Entity
from qbo_pipeline.warehouse import Warehouse, connect_warehouse
from qbo_pipeline.warehouse.normalise import encode_batch

BATCH = 5_000
POSTGRES_VARIABLE = "QBO_BENCH_POSTGRES_URL"
TICKS = os.sysconf("SC_CLK_TCK")
REALM = "4620816365213999"


def _number(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def template(entity: Entity, count: int = BATCH) -> list[dict]:
    """One batch of generated entities, parsed from JSON text as httpx hands them over."""
    generator = CompanyGenerator(seed=7, customers=count, invoices=count)
    if entity is CUSTOMER:
        bodies = [generator.customer(c) for c in range(1, count + 1)]
    else:
        generator.hold_cards()
        bodies = [generator.invoice(i) for i in range(1, count + 1)]
    return json.loads(json.dumps(bodies, default=_number))


def batches(records: list[dict], total: int) -> Iterator[list[dict]]:
    """`total` entities with distinct Ids, one batch of the template at a time."""
    for start in range(0, total, len(records)):
        yield [
            record | {"Id": str(start + offset + 1)}
            for offset, record in enumerate(records[: total - start])
        ]


def micros_normalise(records: list[dict], entity: Entity, repeat: int = 5) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        encode_batch(entity, records)
    return (time.perf_counter() - started) / (repeat * len(records)) * 1e6


def server_cpu_seconds(url: str) -> float:
    """CPU the PostgreSQL server's processes have used so far: the postmaster, every
    process it started and reaped (backends of finished connections), and those alive."""
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT current_setting('data_directory')").fetchone()
    assert row is not None
    postmaster = int((Path(row[0]) / "postmaster.pid").read_text().split()[0])
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended while being read
        pid, ppid = int(stat.parent.name), int(fields[1])
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        if pid == postmaster:
            total += utime + stime + cutime + cstime
        elif ppid == postmaster:
            total += utime + stime
    return total / TICKS


def micros_upsert(
    warehouse: Warehouse, records: list[dict], entity: Entity, total: int, server: str | None
) -> tuple[float, float]:
    """Mean µs per entity over `total` new entities, of wall time and of CPU (this
    process's, and the PostgreSQL server's when `server` names one); building the batches
    is not measured."""
    spent = cpu = 0.0
    server_before = server_cpu_seconds(server) if server else 0.0
    for batch in batches(records, total):
        started, cpu_started = time.perf_counter(), time.process_time()
        warehouse.upsert(entity, REALM, batch)
        spent += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
    if server:
        cpu += server_cpu_seconds(server) - server_before
    return spent / total * 1e6, cpu / total * 1e6


def backend_figures(
    url: str, folder: Path, total: int, server: str | None = None
) -> list[tuple[str, float, float]]:
    figures = []
    warehouse = connect_warehouse(url, default_path=folder / "unused.duckdb")
    try:
        warehouse.ensure_schema()
        for entity in (CUSTOMER, INVOICE):
            records = template(entity)
            wall, cpu = micros_upsert(warehouse, records, entity, total, server)
            figures.append((entity.name, wall, cpu))
    finally:
        warehouse.close()
    return figures


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    url = os.environ.get(POSTGRES_VARIABLE)
    if url:
        yield url
        return
    try:
        from qbo_pipeline_tests.postgres_server import create_database, postgres_server
    except ImportError:
        yield None
        return
    try:
        with postgres_server() as server:
            yield create_database(server, "qbo_bench_cpu")
    except RuntimeError as error:  # no PostgreSQL binaries on this machine
        print(f"postgres skipped: {error}")
        yield None


def peak_rss_mib(invoices: int, url: str | None) -> float:
    """Peak RSS of a fresh process upserting `invoices` invoices in batches of 5,000."""
    with tempfile.TemporaryDirectory(prefix="qbo-bench-mem-") as folder:
        target = url or f"duckdb:///{Path(folder) / 'memory.duckdb'}"
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.cpu", "--memory-child", str(invoices), target],
            capture_output=True,
            text=True,
            check=True,
        )
    return float(completed.stdout.split()[-1])


def memory_child(invoices: int, url: str) -> None:
    warehouse = connect_warehouse(url, default_path=Path("unused.duckdb"))
    warehouse.ensure_schema()
    records = template(INVOICE)
    for batch in batches(records, invoices):
        warehouse.upsert(INVOICE, REALM, batch)
    warehouse.close()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("INVOICES", "URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(int(args.memory_child[0]), args.memory_child[1])
        return 0
    total = 10_000 if args.quick else 40_000
    sizes = (20_000, 80_000) if args.quick else (100_000, 400_000)

    for entity in (CUSTOMER, INVOICE):
        micros = micros_normalise(template(entity), entity)
        print(
            f"normalise {entity.name:<9} {micros:8.1f} µs/entity (Python side, before the database)"
        )
    with tempfile.TemporaryDirectory(prefix="qbo-bench-cpu-") as folder, postgres() as pg_url:
        # After the PostgreSQL server started, so only this process shares the one core.
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        backends = {"duckdb": f"duckdb:///{Path(folder) / 'cpu.duckdb'}"}
        if pg_url:
            backends["postgres"] = pg_url
        for name, url in backends.items():
            server = url if name == "postgres" and not os.environ.get(POSTGRES_VARIABLE) else None
            for entity_name, wall, cpu in backend_figures(url, Path(folder), total, server):
                whose = "this process and the server" if server else "this process"
                print(
                    f"upsert {name:<8} {entity_name:<9} {wall:8.1f} µs/entity, "
                    f"CPU {cpu:6.1f} µs ({whose}; with lines, batches of {BATCH:,})"
                )
        small, large = (peak_rss_mib(size, None) for size in sizes)
        print(
            f"peak RSS duckdb: {sizes[0]:,} invoices {small:.0f} MiB, "
            f"{sizes[1]:,} invoices {large:.0f} MiB ({(large / small - 1) * 100:+.0f}%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
