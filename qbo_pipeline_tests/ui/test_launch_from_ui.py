"""The Dagster UI as a newcomer uses it under `make dev` (webserver and daemon), in
Debian's chromium: the asset graph, a materialization launched for the demo company,
its run succeeding, and the row count and passing checks on the asset's page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from qbo_pipeline.commands.dev_stack import DevStack
from qbo_pipeline_tests.browser import dismiss_dialogs, free_port, open_page, wait_for_dagster
from qbo_pipeline_tests.pipeline.secret_scan import assert_no_secret

pytestmark = pytest.mark.slow

INVOICES = 50


def test_a_materialization_launched_from_the_asset_graph_succeeds_with_its_checks(
    tmp_path: Path, browser
) -> None:
    stack = DevStack(
        state_dir=tmp_path / "state",
        dagster_port=free_port(),
        churn=0,
        customers=30,
        invoices=INVOICES,
    )
    try:
        stack.start()
        wait_for_dagster(stack.dagster_url)
        # The sync's assets are a group of their own (the reports, partitioned by month
        # too, are another): the lineage of that group, as its link in the catalog opens it.
        graph = open_page(browser, f"{stack.dagster_url}/asset-groups~group%3A%22quickbooks%22")
        for table in ("customers", "invoices", "invoice_lines"):
            expect(graph.get_by_text(table, exact=True).first).to_be_visible(timeout=120_000)

        dismiss_dialogs(graph)
        try:
            graph.get_by_role("button", name="Materialize all…").click(timeout=15_000)
        finally:
            graph.screenshot(path=str(tmp_path / "before-launch.png"))
        dialog = graph.get_by_role("dialog")
        dialog.get_by_text("Select a partition or create one").click()
        graph.get_by_text(stack.realm_id, exact=True).filter(visible=True).first.click()
        graph.keyboard.press("Escape")
        dialog.get_by_role("button", name="Launch 1 run").click()
        view = graph.locator('a[href^="/runs/"]', has_text="View")  # the launch's toast
        expect(view).to_be_visible(timeout=30_000)
        run_url = f"{stack.dagster_url}{view.get_attribute('href')}"

        run = open_page(browser, run_url)
        expect(run.get_by_text(stack.realm_id).first).to_be_visible(timeout=60_000)
        expect(run.get_by_text("Success", exact=True).first).to_be_visible(timeout=180_000)

        asset = open_page(browser, f"{stack.dagster_url}/assets/qbo/invoices")
        row_count = asset.get_by_text("Row count").locator("xpath=..")
        expect(row_count).to_contain_text(str(INVOICES), timeout=60_000)
        checks = open_page(browser, f"{stack.dagster_url}/assets/qbo/invoices?view=checks")
        expect(checks.get_by_text("live_rows_match_qbo").first).to_be_visible(timeout=60_000)
        expect(checks.get_by_text("Succeeded").first).to_be_visible()
        expect(checks.get_by_text(f"{INVOICES} live rows created before")).to_be_visible()
        expect(checks.get_by_text("Passed").first).to_be_visible()
        checks.screenshot(path=str(tmp_path / "asset-checks.png"), full_page=True)
        graph.screenshot(path=str(tmp_path / "asset-graph.png"))
        pages = {"graph": graph, "run": run, "asset": asset, "checks": checks}
        shown = {name: page.content() for name, page in pages.items()}
        assert stack.settings is not None
        secrets = {
            "client secret": stack.settings.client_secret or "",
            "admin token": stack.settings.admin_token or "",
            "webhook verifier token": stack.settings.webhook_verifier_token or "",
        }
    finally:
        stack.stop()
    assert (tmp_path / "asset-checks.png").stat().st_size > 10_000
    assert_no_secret(shown, secrets)
