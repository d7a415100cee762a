"""`qbo-pipeline analytics`: build the dbt models (analytics/) in this process, as the
`qbo_analytics` job, over every company's synced tables."""

from __future__ import annotations

import argparse


def _analytics(args: argparse.Namespace) -> int:
    from qbo_pipeline.commands.execution import build_analytics, dagster_instance, first_failure
    from qbo_pipeline.settings import Settings

    settings = Settings.from_env()
    result = build_analytics(instance=dagster_instance(settings.state_dir))
    if not result.success:
        print(f"qbo_analytics run {result.run_id} FAILED: {first_failure(result)}")
        return 1
    built = len(result.get_asset_materialization_events())
    checks = result.get_asset_check_evaluations()
    failed = [check.check_name for check in checks if not check.passed]
    print(
        f"qbo_analytics run {result.run_id} ok: {built} models built in schema analytics, "
        f"{len(checks) - len(failed)} of {len(checks)} dbt tests passed"
    )
    for name in failed:
        print(f"  failed: {name}")
    return 0 if not failed else 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    analytics = commands.add_parser(
        "analytics", help="build the dbt models (analytics/) over the synced tables"
    )
    analytics.set_defaults(handler=_analytics)
