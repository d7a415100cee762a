"""Full and incremental syncs against an emulator with QBO's limits and latency.

    .venv/bin/python -m benchmarks.sync_bench                 # 100,000 + 200,000, 300 ms
    .venv/bin/python -m benchmarks.sync_bench --scale 0.25    # a quarter of that

The emulator runs in its own process with limits enforced (500 requests a minute, 10 in
flight) and 300 ms per page of 1000 (with jitter). Each sync runs in a fresh process so
its peak memory is its own. The bound is the fastest QBO's limits allow: the larger of
pages / 500 per minute and pages x latency / 10 in flight.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx

from benchmarks.run import CLI, Figure, _clean_env, _free_port, _wait_for

CUSTOMERS, INVOICES, LATENCY_MS = 100_000, 200_000, 300


@dataclass(frozen=True)
class Emulator:
    process: subprocess.Popen
    base_url: str
    secret: str

    def admin(self, method: str, path: str, **kwargs) -> dict:
        response = httpx.request(method, f"{self.base_url}/_emulator/{path}", timeout=600, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else {}


def start_emulator(customers: int, invoices: int, latency_ms: int) -> Emulator:
    from qbo_pipeline.vault.crypto import generate_key

    port, secret = _free_port(), generate_key()
    process = subprocess.Popen(
        [CLI, "emulator", "--port", str(port), "--customers", str(customers),
         "--invoices", str(invoices), "--latency-ms", str(latency_ms),
         "--client-id", "bench", "--client-secret", secret],
        env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    _wait_for(f"{base}/.well-known/openid_configuration", process, timeout=600)
    return Emulator(process, base, secret)


def pipeline_env(emulator: Emulator, state_dir: str, key: str) -> dict[str, str]:
    return {
        **_clean_env(),
        "QUICKBOOKS_CLIENT_ID": "bench",
        "QUICKBOOKS_CLIENT_SECRET": emulator.secret,
        "QUICKBOOKS_DISCOVERY_URL": f"{emulator.base_url}/.well-known/openid_configuration",
        "QUICKBOOKS_API_BASE_URL": emulator.base_url,
        "QBO_TOKEN_KEY": key,
        "QBO_STATE_DIR": state_dir,
    }


def one_sync(env: dict[str, str], connect: bool) -> dict:
    """Run `_child` in a new process; returns its JSON report."""
    command = [sys.executable, "-m", "benchmarks.sync_bench", "--child"]
    completed = subprocess.run(
        command + (["--connect"] if connect else []),
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _child(connect: bool) -> None:
    from qbo_pipeline.commands.demo_run import connect_through_oauth
    from qbo_pipeline.quickbooks.catalog import ENTITIES
    from qbo_pipeline.runtime import Runtime
    from qbo_pipeline.settings import Settings
    from qbo_pipeline.sync.engine import sync_entity

    runtime = Runtime(Settings.from_env())
    if connect:
        realm = connect_through_oauth(runtime)
    else:
        [realm] = [c.realm_id for c in runtime.store.list()]
    started = time.perf_counter()
    report = {"realm": realm, "entities": {}}
    with runtime.client(realm) as client, runtime.warehouse() as warehouse:
        for entity in ENTITIES:
            result = sync_entity(client, warehouse, entity)
            report["entities"][entity.name] = {
                "rows": result.rows, "lines": result.lines, "pages": result.pages,
                "fetched": result.fetched, "mode": result.mode,
            }  # fmt: skip
    report["seconds"] = time.perf_counter() - started
    report["cpu_seconds"] = time.process_time()
    report["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(report))


def bound_seconds(pages: int, latency_ms: int) -> float:
    return max(pages / 500 * 60, pages * latency_ms / 1000 / 10)


def measure(customers: int, invoices: int, latency_ms: int, incremental: bool) -> list[Figure]:
    from qbo_pipeline.vault.crypto import generate_key

    emulator = start_emulator(customers, invoices, latency_ms)
    try:
        with tempfile.TemporaryDirectory(prefix="qbo-bench-") as folder:
            env = pipeline_env(emulator, folder, generate_key())
            emulator.admin("POST", "stats/reset")
            full = one_sync(env, connect=True)
            stats = emulator.admin("GET", "stats")["realms"][full["realm"]]
            figures = full_figures(full, stats, customers, invoices, latency_ms)
            if incremental:
                mutated = emulator.admin(
                    "POST",
                    f"companies/{full['realm']}/mutate",
                    json={"updates": (customers + invoices) // 100},
                )
                changed = len({(u["entity"], u["id"]) for u in mutated["updated"]})
                emulator.admin("POST", "stats/reset")
                again = one_sync(env, connect=False)
                stats = emulator.admin("GET", "stats")["realms"][again["realm"]]
                figures += incremental_figures(again, stats, full, changed)
            return figures
    finally:
        emulator.process.terminate()
        emulator.process.wait(timeout=60)


def full_figures(report, stats, customers, invoices, latency_ms) -> list[Figure]:
    pages = math.ceil(customers / 1000) + math.ceil(invoices / 1000)
    seconds = report["seconds"]
    rows = sum(e["rows"] + e["lines"] for e in report["entities"].values())
    bound = bound_seconds(pages, latency_ms)
    size = f"{customers:,} customers + {invoices:,} invoices"
    return [
        Figure(f"full sync wall time ({size}, {latency_ms} ms/page)", seconds, "s",
               bound / 0.9, "max"),
        Figure("full sync: bound QBO's limits allow / wall time", bound / seconds, "ratio",
               0.9, "min"),
        Figure("full sync rows per second (entities + lines)", rows / seconds, "rows/s",
               1, "min"),
        # A run shorter than the 60 s window has all its requests in one window.
        Figure("full sync requests in the busiest minute (limit 500)",
               stats["requests"] / max(seconds, 60.0) * 60, "req/min", 500, "max"),
        Figure("full sync peak requests in flight (limit 10)", stats["peak_in_flight"],
               "req", 10, "max"),
        Figure("full sync 429 answers", stats.get("throttled", 0), "429s", 0, "max"),
        Figure("full sync peak memory of the sync process", report["peak_mib"], "MiB",
               1024, "max"),
    ]  # fmt: skip


def incremental_figures(report, stats, full, changed) -> list[Figure]:
    full_requests = sum(e["pages"] for e in full["entities"].values())
    requests = sum(e["pages"] for e in report["entities"].values())
    return [
        Figure(f"incremental sync after {changed:,} rows changed (1%): wall time",
               report["seconds"], "s", full["seconds"] / 10, "max"),
        Figure("incremental sync requests / full sync requests", requests / full_requests,
               "ratio", 0.1, "max"),
        Figure("incremental sync rows written", sum(e["rows"] for e in
               report["entities"].values()), "rows", changed, "min"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--latency-ms", type=int, default=LATENCY_MS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--connect", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.connect)
        return 0
    customers, invoices = int(CUSTOMERS * args.scale), int(INVOICES * args.scale)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores", flush=True)
    figures = measure(customers, invoices, args.latency_ms, incremental=True)
    for figure in figures:
        print(figure.line(), flush=True)
    quarter = measure(customers // 4, invoices // 4, args.latency_ms, incremental=False)
    for figure in quarter:
        print(figure.line(), flush=True)
    peak = next(f.value for f in figures if "peak memory" in f.name)
    small_peak = next(f.value for f in quarter if "peak memory" in f.name)
    ratio = Figure("peak memory, 4x company / 1x company", peak / small_peak, "ratio", 1.2, "max")
    print(ratio.line(), flush=True)
    return 0 if all(f.ok for f in [*figures, *quarter, ratio]) else 1


if __name__ == "__main__":
    sys.exit(main())
