"""`qbo-pipeline demo`: the whole pipeline on the embedded defaults, against the emulator."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from qbo_pipeline.commands.demo_run import format_report, run_demo

    report = run_demo(
        Path(args.state_dir), customers=args.customers, invoices=args.invoices, seed=args.seed
    )
    print(format_report(report))
    return 0 if report.succeeded else 1


def add_parser(commands: argparse._SubParsersAction) -> None:
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
