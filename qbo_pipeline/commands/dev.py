"""`qbo-pipeline dev` (`make dev`): the emulator, the service and Dagster, reacting live."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _dev(args: argparse.Namespace) -> int:
    from qbo_pipeline.commands.dev_stack import DevStack

    stack = DevStack(
        state_dir=Path(args.state_dir),
        dagster_port=args.port,
        churn=args.churn,
        customers=args.customers,
        invoices=args.invoices,
    )
    try:
        stack.start()
        print(stack.banner(), flush=True)
        return stack.wait()
    finally:
        stack.stop()


def add_parser(commands: argparse._SubParsersAction) -> None:
    dev = commands.add_parser(
        "dev",
        help="run the emulator (webhooks on, churning), the service and Dagster with its daemon",
    )
    dev.add_argument(
        "--state-dir",
        default=os.environ.get("QBO_STATE_DIR") or ".qbo",
        help="where the key, token store, warehouse and Dagster instance go (QBO_STATE_DIR)",
    )
    dev.add_argument("--port", type=int, default=3000, help="the Dagster UI's port")
    dev.add_argument("--churn", type=float, default=0.2, help="emulator changes per second")
    dev.add_argument("--customers", type=int, default=200)
    dev.add_argument("--invoices", type=int, default=600)
    dev.set_defaults(handler=_dev)
