"""QuickBooks' own reports as assets: ProfitAndLoss, BalanceSheet and AgedReceivables, one
partition per company and month.

Each partition reads one month from the Reports API (a month answers well inside
Intuit's 120-second limit, and a backfill is then one run per month) and replaces that
month in qbo.reports and qbo.report_lines. `qbo_reports_schedule` refreshes the current
and the previous month of every connected company each day: the previous one still
changes while the books are being closed.
"""

from datetime import UTC, date, datetime

import dagster as dg

from qbo_pipeline.defs.assets import KEY_PREFIX, RETRY_POLICY, as_dagster_failure, table_metadata
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.resources import QuickBooksResource, WarehouseResource, warehouse_resource
from qbo_pipeline.defs.schedules import TIMEZONE, cron_from_env, realms_or_skip, tick_label
from qbo_pipeline.quickbooks.reports import (
    REPORTS,
    Report,
    ReportLine,
    flatten,
    month_of,
    months_ending,
)
from qbo_pipeline.warehouse.report_tables import REPORT_LINES_TABLE

GROUP = "quickbooks_reports"
REPORTS_CRON_VARIABLE = "QBO_REPORTS_CRON"
DEFAULT_REPORTS_CRON = "15 6 * * *"
# The oldest month a backfill can ask for; `end_offset=1` makes the current month one.
FIRST_MONTH = "2020-01-01"
month_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, end_offset=1)
report_partitions = dg.MultiPartitionsDefinition(
    {"month": month_partitions, "realm": realm_partitions}
)
# The figure each report's materialisation shows: (its metadata name, the section whose
# last total it is).
HEADLINES = {
    "ProfitAndLoss": ("net_income", "NetIncome"),
    "BalanceSheet": ("total_assets", "TotalAssets"),
    "AgedReceivables": ("total_receivable", "GrandTotal"),
}


def _headline(report: Report, lines: list[ReportLine]) -> dict[str, float]:
    name, section = HEADLINES[report.name]
    totals = [line for line in lines if line.section_path == section]
    if not totals:
        return {}
    last = max(totals, key=lambda line: (line.row_index, line.column_index))
    return {name: float(last.amount)}


def build_report_asset(report: Report, *, warehouse_kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=report.table_name,
        key_prefix=[KEY_PREFIX, "reports"],
        group_name=GROUP,
        partitions_def=report_partitions,
        retry_policy=RETRY_POLICY,
        description=(
            f"{report.description}. Rows in qbo.report_lines (report = "
            f"'{report.table_name}'), the answer as QuickBooks gave it in qbo.reports."
        ),
        kinds={"quickbooks", warehouse_kind},
        metadata=table_metadata(REPORT_LINES_TABLE),
    )
    def _report(
        context: dg.AssetExecutionContext,
        quickbooks: QuickBooksResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
        realm = keys["realm"]
        start, end = month_of(date.fromisoformat(keys["month"]))
        with as_dagster_failure():
            with quickbooks.client(realm) as client:
                document = client.report(report.name, report.params(start, end))
            lines = flatten(document)
            with warehouse.open() as store:
                written = store.replace_report(
                    realm, report.table_name, (start, end), document, lines
                )
        context.log.info(f"realm {realm} {report.name} {start}..{end}: {written} lines stored")
        return dg.MaterializeResult(
            metadata={
                "realm_id": realm,
                "period_start": start.isoformat(),
                "period_end": end.isoformat(),
                "dagster/row_count": written,
                **_headline(report, lines),
            }
        )

    return _report


report_assets = [
    build_report_asset(report, warehouse_kind=warehouse_resource.kind) for report in REPORTS
]

qbo_reports = dg.define_asset_job(
    name="qbo_reports",
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=report_partitions,
    executor_def=dg.in_process_executor,
    description="Read one connected company's QuickBooks reports for one month.",
)


def build_reports_schedule(cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="qbo_reports_schedule",
        cron_schedule=cron,
        job=qbo_reports,
        execution_timezone=TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"The reports of this month and the last for every connected company "
            f"({REPORTS_CRON_VARIABLE}, now {cron!r})."
        ),
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext, quickbooks: QuickBooksResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        realms = realms_or_skip(context, quickbooks, skip_busy=False)
        if isinstance(realms, dg.SkipReason):
            return realms
        scheduled = context.scheduled_execution_time or datetime.now(UTC)
        tick = tick_label(context)
        return [
            dg.RunRequest(
                partition_key=dg.MultiPartitionKey({"realm": realm, "month": month}),
                run_key=f"reports-{realm}-{month}-{tick}",
            )
            for realm in realms.due
            # This month and the one before, which changes while the books are closed.
            for month in months_ending(scheduled.astimezone(UTC).date(), 2)
        ]

    return _schedule


qbo_reports_schedule = build_reports_schedule(
    cron_from_env(REPORTS_CRON_VARIABLE, DEFAULT_REPORTS_CRON)
)
