"""Benchmarks of the embedded pipeline: the demo's wall time, and sync throughput.

    .venv/bin/python -m benchmarks.run            # the figures in benchmarks/README.md
    .venv/bin/python -m benchmarks.run --quick    # smaller sizes, for a smoke check

Each figure is reported with its ratio to the limit we hold ourselves to; a ratio above
1.0 for a "max" limit (or below 1.0 for a "min" one) is a regression.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

CLI = str(Path(sys.executable).parent / "qbo-pipeline")


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    limit: float
    kind: str  # "max": value must stay below limit; "min": value must stay above it

    @property
    def ratio(self) -> float:
        if self.limit == 0:
            return 0.0 if self.value == 0 else float("inf")
        return self.value / self.limit

    @property
    def ok(self) -> bool:
        return self.value <= self.limit if self.kind == "max" else self.value >= self.limit

    def line(self) -> str:
        verdict = "ok" if self.ok else "OVER LIMIT"
        # Ratios and other small figures need their second decimal.
        value = ",.1f" if abs(self.value) >= 100 else ".2f"
        limit = ",.0f" if abs(self.limit) >= 10 else ".2f"
        return (
            f"{self.name:<72} {self.value:>10{value}} {self.unit:<7} "
            f"{self.kind} {self.limit:>10{limit}}  ratio {self.ratio:5.2f}  {verdict}"
        )


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QBO_", "QUICKBOOKS_"))}
    env.pop("DAGSTER_HOME", None)
    return env


def demo_run(cwd: Path, customers: int, invoices: int) -> tuple[float, int]:
    """Wall seconds and table rows of one `qbo-pipeline demo` in a fresh process."""
    started = time.perf_counter()
    completed = subprocess.run(
        [CLI, "demo", "--customers", str(customers), "--invoices", str(invoices)],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    rows = 0
    for line in completed.stdout.splitlines():
        if line.strip().startswith("qbo.") and line.rstrip().endswith("rows"):
            rows += int(line.split()[1].replace(",", ""))
    return seconds, rows


def demo_figures(customers: int, invoices: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="qbo-bench-") as folder:
        first, rows = demo_run(Path(folder), customers, invoices)
        again, _ = demo_run(Path(folder), customers, invoices)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = f"{customers:,} customers + {invoices:,} invoices"
    return [
        Figure(f"demo wall time, first run ({size})", first, "s", 60, "max"),
        Figure("demo wall time, idempotent rerun", again, "s", 60, "max"),
        Figure("demo rows loaded per second (first run)", rows / first, "rows/s", 1_000, "min"),
        Figure("demo peak memory (largest process)", peak_mib, "MiB", 1_024, "max"),
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, emulator: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if emulator.poll() is not None:
            raise RuntimeError("the emulator exited before it answered")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.5)
    raise RuntimeError(f"the emulator did not answer at {url}")


def sync_figures(customers: int, invoices: int) -> list[Figure]:
    """A full sync of a larger company from an emulator in its own process, no latency.

    Measures the pipeline's own cost (HTTP, parse, normalise, load into DuckDB), which is
    what remains when QBO answers instantly.
    """
    from qbo_pipeline.commands.demo_run import connect_through_oauth
    from qbo_pipeline.quickbooks.catalog import ENTITIES
    from qbo_pipeline.runtime import Runtime
    from qbo_pipeline.settings import Settings
    from qbo_pipeline.sync.engine import sync_entity
    from qbo_pipeline.vault.crypto import generate_key

    port = _free_port()
    secret = generate_key()
    emulator = subprocess.Popen(
        [CLI, "emulator", "--port", str(port), "--customers", str(customers),
         "--invoices", str(invoices), "--client-id", "bench", "--client-secret", secret],
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/.well-known/openid_configuration", emulator)
        with tempfile.TemporaryDirectory(prefix="qbo-bench-") as folder:
            os.environ.update(
                {
                    "QUICKBOOKS_CLIENT_ID": "bench",
                    "QUICKBOOKS_CLIENT_SECRET": secret,
                    "QUICKBOOKS_DISCOVERY_URL": f"{base}/.well-known/openid_configuration",
                    "QUICKBOOKS_API_BASE_URL": base,
                    "QBO_TOKEN_KEY": generate_key(),
                    "QBO_STATE_DIR": folder,
                }
            )
            runtime = Runtime(Settings.from_env())
            realm = connect_through_oauth(runtime)
            started = time.perf_counter()
            rows = lines = 0
            with runtime.client(realm) as client, runtime.warehouse() as warehouse:
                for entity in ENTITIES:
                    result = sync_entity(client, warehouse, entity)
                    rows, lines = rows + result.rows, lines + result.lines
            seconds = time.perf_counter() - started
            runtime.close()
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = f"{customers:,} customers + {invoices:,} invoices, {lines:,} lines"
    return [
        Figure(f"full sync wall time ({size})", seconds, "s", 300, "max"),
        Figure("full sync rows per second (entities + lines)", (rows + lines) / seconds,
               "rows/s", 5_000, "min"),
        Figure("full sync entities per second", rows / seconds, "rows/s", 1_000, "min"),
        Figure("benchmark process peak memory", peak_mib, "MiB", 2_048, "max"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    demo_size, sync_size = (
        ((200, 500), (2_000, 5_000))
        if args.quick
        else (
            (1_000, 3_000),
            (20_000, 50_000),
        )
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    figures = demo_figures(*demo_size) + sync_figures(*sync_size)
    for figure in figures:
        print(figure.line())
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
