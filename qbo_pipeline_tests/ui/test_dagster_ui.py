"""The Dagster UI as a person sees it, in a real headless Chromium (Debian's package,
driven by Playwright): after `qbo-pipeline sync`, the webserver started from the
repository shows the QuickBooks tables as assets under `qbo/`, their company partition,
what the last sync did, their columns with descriptions, and the run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from qbo_pipeline_tests.browser import free_port, open_page, start_webserver
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.pipeline.secret_scan import assert_no_secret, company_secrets

pytestmark = pytest.mark.slow


def test_the_synced_company_shows_in_the_dagster_ui(connect, tmp_path: Path, browser) -> None:
    company = connect(customers=40, invoices=60)
    env = {**clean_env(), **company.env}
    env.pop("DAGSTER_HOME", None)
    sync = subprocess.run(
        [CLI, "sync"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert sync.returncode == 0, sync.stderr
    env["DAGSTER_HOME"] = str(Path(company.env["QBO_STATE_DIR"]) / "dagster")
    port = free_port()
    server = start_webserver(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        # The sync's group in the catalog (the dbt models are listed in their own).
        catalog = open_page(browser, f"{base}/assets?asset-selection=group%3Aquickbooks")
        # Every table of the company is listed: tall enough for the list to show them all.
        catalog.set_viewport_size({"width": 1400, "height": 4000})
        for table in ("customers", "invoices", "invoice_lines", "payments", "bill_lines"):
            expect(catalog.get_by_text(f"qbo / {table}").first).to_be_visible(timeout=60_000)
        expect(catalog.get_by_text("1 partition").first).to_be_visible()

        asset = open_page(browser, f"{base}/assets/qbo/invoices?view=partitions")
        expect(asset.get_by_text(company.realm_id).first).to_be_visible(timeout=60_000)
        asset.goto(f"{base}/assets/qbo/invoices?view=events", wait_until="networkidle")
        for shown in ("rows_loaded", "cursor", "realm_id", "dagster/row_count"):
            expect(asset.get_by_text(shown).first).to_be_visible(timeout=60_000)
        overview = open_page(browser, f"{base}/assets/qbo/invoices")
        expect(overview.get_by_text("DuckDB").first).to_be_visible(timeout=60_000)
        expect(overview.get_by_text("qbo.invoices").first).to_be_visible()
        # The column schema, with what each column means in QuickBooks terms.
        expect(overview.get_by_text("What is still unpaid on the invoice").first).to_be_visible()

        # A dbt model: what it holds, its columns described, built after each sync.
        model = open_page(browser, f"{base}/assets/analytics/general_ledger")
        expect(model.get_by_text("Every posting transaction as debits").first).to_be_visible(
            timeout=60_000
        )
        expect(model.get_by_text("Debit positive, credit negative").first).to_be_visible()
        expect(model.get_by_text("qbo_analytics_after_sync").first).to_be_visible()
        expect(model.get_by_text("after_sync", exact=True).first).to_be_visible()

        runs = open_page(browser, f"{base}/runs")
        expect(runs.get_by_text("qbo_sync").first).to_be_visible(timeout=60_000)
        expect(runs.get_by_text("Success").first).to_be_visible()
        pages = {"runs page": runs, "catalog": catalog, "events": asset, "asset page": overview}
        shown = {name: page.content() for name, page in pages.items()}
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert_no_secret(shown, company_secrets(company))
