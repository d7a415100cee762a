"""`qbo-pipeline sync`: run `qbo_sync` in this process for connected companies."""

from __future__ import annotations

import argparse
import sys


def _sync(args: argparse.Namespace) -> int:
    from qbo_pipeline.commands.execution import dagster_instance, sync_realms
    from qbo_pipeline.quickbooks.realms import check_realm_id
    from qbo_pipeline.runtime import Runtime

    runtime = Runtime.from_env()
    if args.realm:
        realms = [runtime.store.get(check_realm_id(r, name="--realm")).realm_id for r in args.realm]
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
    runs = sync_realms(
        realms, instance=instance, full_refresh=args.full_refresh, count_check=args.count_check
    )
    for run in runs:
        status = "ok" if run.success else f"FAILED: {run.error}"
        print(f"realm {run.realm_id}: run {run.run_id} {status}")
    return 0 if all(run.success for run in runs) else 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser("sync", help="run qbo_sync for connected companies")
    sync.add_argument("--realm", action="append", help="only this realm (repeatable)")
    sync.add_argument("--full-refresh", action="store_true", help="ignore the cursors")
    sync.add_argument(
        "--count-check",
        action="store_true",
        help="also count each table's rows in QuickBooks (live_rows_match_qbo; one API call "
        "per table, as the nightly reconciliation does)",
    )
    sync.set_defaults(handler=_sync)
