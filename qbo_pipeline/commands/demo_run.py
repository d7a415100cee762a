"""The demo: the main job on embedded defaults, with the local emulator standing in for Intuit.

It connects the emulator's company through the real OAuth flow over HTTP (our service's
authorize link, the emulator's consent, the redirect to our service's callback, the code
exchange), runs `qbo_sync` through Dagster into `.qbo/warehouse.duckdb` and shows
what an analyst would see. Running it again changes nothing in the warehouse.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from qbo_pipeline.commands.execution import (
    RealmRun,
    build_analytics,
    dagster_instance,
    first_failure,
    report_realms,
    sync_realms,
)
from qbo_pipeline.companies import Companies
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.generator import ANCHOR
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.quickbooks.catalog import ENTITIES
from qbo_pipeline.quickbooks.faults import QuickBooksError
from qbo_pipeline.quickbooks.reports import months_ending
from qbo_pipeline.quickbooks.timestamps import PACIFIC
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.service.app import create_app
from qbo_pipeline.service.auth import AUTHORIZE_PATH, CALLBACK_PATH
from qbo_pipeline.service.server import ServiceServer
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.crypto import generate_key

EXAMPLE_QUERY = """
SELECT c.display_name, c.currency, count(*) AS open_invoices, sum(i.balance) AS open_balance
FROM qbo.invoices i
JOIN qbo.customers c ON c.realm_id = i.realm_id AND c.id = i.customer_id
WHERE i.balance > 0 AND i.deleted_at IS NULL
GROUP BY c.display_name, c.currency
ORDER BY open_balance DESC
LIMIT 5
"""


NET_INCOME_QUERY = """
SELECT period_start, amount FROM qbo.report_lines
WHERE realm_id = $1 AND report = 'profit_and_loss' AND section_path = 'NetIncome'
ORDER BY period_start
"""
# The same months' net income from dbt's general ledger, built from the synced lines.
MODELLED_NET_INCOME_QUERY = """
SELECT month, sum(net_income_effect) FROM analytics.profit_and_loss_by_month
WHERE realm_id = $1 GROUP BY month
"""


@dataclass
class DemoReport:
    realm_id: str
    run: RealmRun
    table_rows: dict[str, int]
    example: list[tuple]
    seconds: float
    warehouse: str
    report_runs: list[RealmRun]
    net_income: list[tuple]
    analytics_error: str | None
    modelled_net_income: dict

    @property
    def rows_loaded(self) -> int:
        return sum(self.table_rows.values())

    @property
    def succeeded(self) -> bool:
        """The demo's exit status: the sync, every report run and the dbt build."""
        return (
            self.run.success
            and all(run.success for run in self.report_runs)
            and self.analytics_error is None
        )


def ensure_token_key(settings: Settings) -> None:
    """Generate the embedded default key once, unless the operator configured keys."""
    if settings.token_keys or settings.token_key:
        return
    key_file = settings.demo_key_file
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(generate_key() + "\n")
        key_file.chmod(0o600)


def _follow(url: str, **kwargs) -> httpx.Response:
    response = httpx.get(url, follow_redirects=False, timeout=30, **kwargs)
    if response.status_code not in (302, 303) or "location" not in response.headers:
        raise QuickBooksError(f"expected a redirect from {url.split('?')[0]}, got HTTP "
                              f"{response.status_code}: {response.text[:200]}")  # fmt: skip
    return response


def _callback_query(location: str) -> dict[str, str]:
    query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
    if "error" in query:
        raise QuickBooksError(f"authorization was refused: {query['error']}")
    return query


def connect_through_oauth(runtime: Runtime) -> str:
    """Play the user's browser through consent, then hand the callback to the same code the
    service's callback runs (state checked and burnt, code exchanged, tokens stored).

    Returns the realm id the callback named.
    """
    companies = Companies(runtime)
    consent = _follow(companies.begin_authorization().url)
    callback = _callback_query(consent.headers["location"])
    companies.complete_authorization(
        callback.get("code"), callback.get("state"), callback.get("realmId")
    )
    return callback["realmId"]


def connect_through_service(settings: Settings, realm_id: str) -> str:
    """The whole flow a user sees, on a service started for the purpose; see
    `authorize_through`. Returns the connected realm id."""
    server = ServiceServer()
    admin_token = secrets.token_urlsafe(24)
    settings = settings.with_overrides(
        redirect_uri=f"{server.base_url}{CALLBACK_PATH}", admin_token=admin_token
    )
    runtime = Runtime(settings)
    server.start(create_app(runtime))
    try:
        return authorize_through(server.base_url, admin_token, runtime, realm_id)
    finally:
        server.stop()
        runtime.close()


def authorize_through(service_url: str, admin_token: str, runtime: Runtime, realm_id: str) -> str:
    """Our service's authorize link, Intuit's consent, and the redirect back to our
    service's callback, over HTTP. Returns the connected realm id.

    `realm_id` is the company the user will choose. Once it is connected (a second
    `make demo`), the link is one that reconnects it: a plain link never replaces an
    active connection.
    """
    known = runtime.store.find(realm_id) is not None
    reconnect = f"?realmId={realm_id}" if known else ""
    authorize = _follow(
        f"{service_url}{AUTHORIZE_PATH}{reconnect}",
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    consent = _follow(authorize.headers["location"])
    location = consent.headers["location"]
    realm_id = _callback_query(location)["realmId"]
    page = httpx.get(location, timeout=30)
    if page.status_code != 200:
        raise QuickBooksError(f"the OAuth callback failed: {page.text.strip()[:300]}")
    return realm_id


def run_demo(
    state_dir: Path = Path(".qbo"), *, customers: int = 500, invoices: int = 1500, seed: int = 7
) -> DemoReport:
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env().with_overrides(state_dir=state_dir)
    ensure_token_key(settings)
    client_id, client_secret = "demo-app", secrets.token_urlsafe(24)
    config = EmulatorConfig(
        seed=seed,
        customers=customers,
        invoices=invoices,
        client_id=client_id,
        client_secret=client_secret,
    )
    with EmulatorServer(config) as emulator:
        settings = settings.with_overrides(
            client_id=client_id,
            client_secret=client_secret,
            environment="sandbox",
            discovery_url=emulator.discovery_url,
            api_base_url=emulator.api_base_url,
        )
        realm_id = connect_through_service(settings, config.realm_id)
        instance = dagster_instance(state_dir)
        [run] = sync_realms([realm_id], instance=instance, settings=settings)
        # The last three months of the generated data, which ends at a fixed date.
        months = months_ending(ANCHOR.astimezone(PACIFIC).date(), 3)
        reports = report_realms([realm_id], months, instance=instance, settings=settings)
    analytics = build_analytics(instance=instance, settings=settings)
    analytics_error = None if analytics.success else first_failure(analytics)
    with Runtime(settings).warehouse() as warehouse:
        tables = [e.table for e in ENTITIES] + [e.lines.table for e in ENTITIES if e.lines]
        counts = {table: warehouse.count(table, realm_id) for table in tables}
        example = warehouse.query(EXAMPLE_QUERY) if run.success else []
        net_income = warehouse.query(NET_INCOME_QUERY, [realm_id])
        modelled = (
            {} if analytics_error else dict(warehouse.query(MODELLED_NET_INCOME_QUERY, [realm_id]))
        )
        location = warehouse.url_for_display
    return DemoReport(
        realm_id=realm_id,
        run=run,
        table_rows=counts,
        example=example,
        seconds=time.monotonic() - started,
        warehouse=location,
        report_runs=reports,
        net_income=net_income,
        analytics_error=analytics_error,
        modelled_net_income=modelled,
    )


def format_report(report: DemoReport) -> str:
    lines = [
        f"Connected QuickBooks company (realm {report.realm_id}) through the OAuth flow: "
        "authorize link, consent, callback, code exchange.",
        f"qbo_sync run {report.run.run_id}: {'succeeded' if report.run.success else 'FAILED'}",
    ]
    if report.run.error:
        lines.append(f"  error: {report.run.error}")
    lines.append(f"Warehouse {report.warehouse}:")
    lines += [f"  qbo.{table:<22} {rows:>8,} rows" for table, rows in report.table_rows.items()]
    lines.append("Top open balances (example analyst query):")
    lines += [f"    {line}" for line in EXAMPLE_QUERY.strip().splitlines()]
    for name, currency, count, balance in report.example:
        lines.append(f"  {name:<40} {currency:<4} {count:>4} invoices  {balance:>14,.2f}")
    failed = [run for run in report.report_runs if not run.success]
    lines.append(
        f"qbo_reports: {len(report.report_runs) - len(failed)} of {len(report.report_runs)} "
        "months read (ProfitAndLoss, BalanceSheet, AgedReceivables into qbo.report_lines)"
    )
    lines += [f"  error: {run.error}" for run in failed]
    analytics = "built" if report.analytics_error is None else "FAILED"
    lines.append(
        f"qbo_analytics: dbt models {analytics} (analytics.general_ledger, "
        "profit_and_loss_by_month, balance_sheet_by_month, ar_aging, ap_aging)"
    )
    if report.analytics_error:
        lines.append(f"  error: {report.analytics_error}")
    for month, amount in report.net_income:
        line = f"  net income {month:%Y-%m}: {amount:>14,.2f} (QuickBooks' P&L)"
        if month in report.modelled_net_income:
            modelled = report.modelled_net_income[month]
            line += f" {modelled:>14,.2f} (dbt, from the synced lines)"
        lines.append(line)
    lines.append(
        f"Done in {report.seconds:.1f} s; the warehouse holds {report.rows_loaded:,} rows "
        "for this company. Run again: nothing changes."
    )
    return "\n".join(lines)
