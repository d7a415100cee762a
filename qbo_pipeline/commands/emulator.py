"""`qbo-pipeline emulator`: serve a local QuickBooks Online for the demo, tests and trials."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from qbo_pipeline.errors import ConfigurationError

if TYPE_CHECKING:  # imported when the command runs: the CLI starts without the emulator
    from qbo_pipeline.emulator.config import EmulatorConfig

VERIFIER_VARIABLE = "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN"


def _emulator(args: argparse.Namespace) -> int:
    from qbo_pipeline.emulator.server import serve

    logging.getLogger("qbo_pipeline.emulator").setLevel(logging.INFO)
    serve(_config(args), host=args.host, port=args.port)
    return 0


def _config(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator's settings from the flags; a bad value is one line naming it."""
    from qbo_pipeline.emulator.config import EmulatorConfig, parse_fault_rates

    if args.data and not Path(args.data).is_file():
        raise ConfigurationError(f"--data {args.data}: no such file")
    verifier = args.webhook_verifier or os.environ.get(VERIFIER_VARIABLE) or None
    if args.webhook_url and not verifier:
        raise ConfigurationError(
            "emulator: --webhook-url needs the token deliveries are signed with; pass "
            f"--webhook-verifier TOKEN or set {VERIFIER_VARIABLE}"
        )
    try:
        return EmulatorConfig(
            seed=args.seed,
            customers=args.customers,
            invoices=args.invoices,
            realms=args.realms,
            data=Path(args.data) if args.data else None,
            client_id=args.client_id,
            client_secret=args.client_secret,
            access_token_ttl=args.access_token_ttl,
            refresh_token_ttl=args.refresh_token_ttl,
            rotation=args.rotation,
            token_endpoint_failure=args.fail_token_endpoint,
            limits=not args.no_limits,
            requests_per_minute=args.requests_per_minute,
            requests_per_second=args.requests_per_second,
            max_in_flight=args.max_in_flight,
            batch_requests_per_minute=args.batch_requests_per_minute,
            realm_batch_requests_per_minute=args.realm_batch_requests_per_minute,
            latency_ms=args.latency_ms,
            latency_jitter=args.latency_jitter,
            faults=parse_fault_rates(args.faults or ""),
            fault_seed=args.fault_seed,
            churn=args.churn,
            webhook_url=args.webhook_url,
            webhook_format=args.webhook_format,
            webhook_verifier=verifier,
            webhook_retry_scale=args.webhook_retry_scale,
            webhook_batch_seconds=args.webhook_batch_seconds,
        )
    except ValueError as error:  # EmulatorConfig checks its values and names the bad one
        raise ConfigurationError(f"emulator: {error}") from None


def add_parser(commands: argparse._SubParsersAction) -> None:
    emulator = commands.add_parser("emulator", help="serve a local QuickBooks Online")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8765)
    emulator.add_argument("--seed", type=int, default=7)
    emulator.add_argument("--customers", type=int, default=60)
    emulator.add_argument("--invoices", type=int, default=150)
    emulator.add_argument(
        "--realms",
        type=int,
        default=1,
        metavar="N",
        help="serve N companies, each with its own data (seed + i), limits, tokens and "
        "webhooks; consent picks them in turn, or the one an authorize link's realm_hint names",
    )
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
    _add_limit_arguments(emulator)
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
    _add_webhook_arguments(emulator)
    emulator.set_defaults(handler=_emulator)


def _add_limit_arguments(emulator: argparse.ArgumentParser) -> None:
    """QBO's per-realm limits (QBO_API.md §3); a 429 with Retry-After answers a request
    over any of them."""
    emulator.add_argument(
        "--no-limits",
        action="store_true",
        help="do not enforce QBO's per-realm limits (/_emulator/stats still measures them)",
    )
    for flag, default, meaning in (
        ("--requests-per-minute", 500, "requests in any 60 s, batch items included"),
        ("--requests-per-second", 10, "requests in any second"),
        ("--max-in-flight", 10, "requests in flight at once"),
        ("--batch-requests-per-minute", 40, "batch requests in any 60 s per app"),
        ("--realm-batch-requests-per-minute", 120, "batch requests in any 60 s, all apps"),
    ):
        emulator.add_argument(
            flag, type=int, default=default, metavar="N", help=f"{meaning} (default {default})"
        )


def _add_webhook_arguments(emulator: argparse.ArgumentParser) -> None:
    emulator.add_argument(
        "--webhook-url",
        metavar="URL",
        help="send every change as a signed webhook delivery to URL, as Intuit does",
    )
    emulator.add_argument(
        "--webhook-format",
        choices=["cloudevents", "legacy"],
        default="cloudevents",
        help="cloudevents: Intuit's current JSON array (default); legacy: eventNotifications",
    )
    emulator.add_argument(
        "--webhook-verifier",
        metavar="TOKEN",
        help=f"the app's verifier token that signs deliveries (default: ${VERIFIER_VARIABLE})",
    )
    emulator.add_argument(
        "--webhook-retry-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply Intuit's retry waits (10 s, 20 s, 30 s, 5 min ... 6 h) by FACTOR; "
        "0.001 for tests",
    )
    emulator.add_argument(
        "--webhook-batch-seconds",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how long changes are gathered into one delivery (default 0.5)",
    )
