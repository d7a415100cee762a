"""The `qbo-pipeline` command: demo, emulator, sync, auth, keys and serve.

Every failure the user can fix ends as one line on stderr and exit status 2 (1 for a
failed sync run), never a traceback: bad settings, a wrong key, an unknown realm.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from qbo_pipeline.commands import auth as auth_commands
from qbo_pipeline.commands import keys as keys_commands
from qbo_pipeline.commands import serve as serve_commands
from qbo_pipeline.quickbooks.faults import QuickBooksError
from qbo_pipeline.settings import SettingsError
from qbo_pipeline.vault.errors import VaultError

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    SettingsError,
    QuickBooksError,
    VaultError,
    ValueError,
    OSError,  # files, ports: FileNotFoundError, address in use
    httpx.HTTPError,  # Intuit unreachable
)


def _demo(args: argparse.Namespace) -> int:
    from qbo_pipeline.demo import format_report, run_demo

    report = run_demo(
        Path(args.state_dir), customers=args.customers, invoices=args.invoices, seed=args.seed
    )
    print(format_report(report))
    return 0 if report.run.success else 1


def _emulator(args: argparse.Namespace) -> int:
    from qbo_pipeline.emulator.config import EmulatorConfig, parse_fault_rates
    from qbo_pipeline.emulator.server import serve

    config = EmulatorConfig(
        seed=args.seed,
        customers=args.customers,
        invoices=args.invoices,
        data=Path(args.data) if args.data else None,
        client_id=args.client_id,
        client_secret=args.client_secret,
        access_token_ttl=args.access_token_ttl,
        refresh_token_ttl=args.refresh_token_ttl,
        rotation=args.rotation,
        token_endpoint_failure=args.fail_token_endpoint,
        limits=not args.no_limits,
        requests_per_minute=args.requests_per_minute,
        max_in_flight=args.max_in_flight,
        latency_ms=args.latency_ms,
        latency_jitter=args.latency_jitter,
        faults=parse_fault_rates(args.faults or ""),
        fault_seed=args.fault_seed,
        churn=args.churn,
    )
    if args.data and not config.data.is_file():
        raise FileNotFoundError(f"--data {args.data}: no such file")
    logging.getLogger("qbo_pipeline.emulator").setLevel(logging.INFO)
    serve(config, host=args.host, port=args.port)
    return 0


def _sync(args: argparse.Namespace) -> int:
    from qbo_pipeline.defs.execution import dagster_instance, sync_realms
    from qbo_pipeline.sync.runtime import Runtime

    runtime = Runtime.from_env()
    if args.realm:
        realms = [runtime.store.get(realm).realm_id for realm in args.realm]
    else:
        realms = [c.realm_id for c in runtime.store.list() if c.status == "active"]
    if not realms:
        print(
            "no connected QuickBooks companies; connect one with "
            "`qbo-pipeline auth set-tokens` (or run `qbo-pipeline demo`)",
            file=sys.stderr,
        )
        return 2
    instance = dagster_instance(runtime.settings.state_dir)
    runs = sync_realms(realms, instance=instance, full_refresh=args.full_refresh)
    for run in runs:
        status = "ok" if run.success else f"FAILED: {run.error}"
        print(f"realm {run.realm_id}: run {run.run_id} {status}")
    return 0 if all(run.success for run in runs) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbo-pipeline", description="QuickBooks Online to warehouse sync."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole pipeline against the local emulator")
    demo.add_argument(
        "--state-dir",
        default=os.environ.get("QBO_STATE_DIR") or ".qbo",
        help="where the key, token store, warehouse and Dagster instance go (QBO_STATE_DIR)",
    )
    demo.add_argument("--customers", type=int, default=1000)
    demo.add_argument("--invoices", type=int, default=3000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(handler=_demo)

    emulator = commands.add_parser("emulator", help="serve a local QuickBooks Online")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8765)
    emulator.add_argument("--seed", type=int, default=7)
    emulator.add_argument("--customers", type=int, default=60)
    emulator.add_argument("--invoices", type=int, default=150)
    emulator.add_argument("--data", help="replay entities from a JSON Lines file")
    emulator.add_argument("--client-id", help="accept only this client id")
    emulator.add_argument("--client-secret", help="accept only this client secret")
    emulator.add_argument("--access-token-ttl", type=int, default=3600, metavar="SECONDS")
    emulator.add_argument(
        "--refresh-token-ttl",
        type=int,
        default=8726400,
        metavar="SECONDS",
        help="rolling refresh-token lifetime (Intuit: 101 days)",
    )
    emulator.add_argument(
        "--rotation",
        choices=["intuit", "strict"],
        default="intuit",
        help="intuit: same refresh token for 24 h, the previous one valid 24 h after a new one; "
        "strict: a new refresh token on every refresh, the previous one dead at once",
    )
    emulator.add_argument(
        "--fail-token-endpoint",
        type=int,
        metavar="STATUS",
        help="make every token endpoint call fail with this HTTP status (e.g. 503)",
    )
    emulator.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="answer time for a page of 1000 rows; smaller answers take their share "
        "(at least 50 rows' worth)",
    )
    emulator.add_argument(
        "--latency-jitter",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="each answer time is scaled by a uniform factor in [1-F, 1+F] (default 0.2)",
    )
    emulator.add_argument(
        "--no-limits",
        action="store_true",
        help="do not enforce QBO's per-realm limits (500 requests a minute, 10 in flight)",
    )
    emulator.add_argument("--requests-per-minute", type=int, default=500, metavar="N")
    emulator.add_argument("--max-in-flight", type=int, default=10, metavar="N")
    emulator.add_argument(
        "--faults",
        metavar="KIND=P,...",
        help="inject faults at random, e.g. 429=0.02,503=0.01,timeout=0.005,reset=0.005 "
        "(kinds: 429 500 502 503 504 timeout reset truncate xml fault200)",
    )
    emulator.add_argument("--fault-seed", type=int, metavar="N", help="seed of the fault draws")
    emulator.add_argument(
        "--churn",
        type=float,
        default=0.0,
        metavar="RATE",
        help="create, update, delete and deactivate entities at RATE changes per second",
    )
    emulator.set_defaults(handler=_emulator)

    sync = commands.add_parser("sync", help="run qbo_sync for connected companies")
    sync.add_argument("--realm", action="append", help="only this realm (repeatable)")
    sync.add_argument("--full-refresh", action="store_true", help="ignore the cursors")
    sync.set_defaults(handler=_sync)

    auth_commands.add_parser(commands)
    keys_commands.add_parser(commands)
    serve_commands.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except EXPECTED_ERRORS as error:
        print(f"qbo-pipeline: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
