"""A failed check as a person sees it in the Dagster UI (Debian's chromium, as in
qbo_pipeline_tests/ui): after a row is lost from the warehouse, the next `qbo-pipeline
sync --count-check` leaves both checks it breaks failed, each with its one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from qbo_pipeline_tests.browser import free_port, open_page, start_webserver
from qbo_pipeline_tests.command import CLI, clean_env

pytestmark = pytest.mark.slow


def test_a_failed_check_shows_its_one_line_in_the_ui(connect, tmp_path: Path, browser) -> None:
    company = connect(customers=6, invoices=10)
    env = {**clean_env(), **company.env}
    env.pop("DAGSTER_HOME", None)

    def sync(*options: str) -> None:
        done = subprocess.run(
            [CLI, "sync", *options], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    sync()
    with company.runtime.warehouse() as warehouse:
        [(lost,)] = warehouse.query("SELECT id FROM qbo.invoices ORDER BY updated_at, id LIMIT 1")
        warehouse.query("DELETE FROM qbo.invoices WHERE id = $1", [lost])
    sync("--count-check")  # the COUNT against QBO, which the hourly run leaves to the night

    env["DAGSTER_HOME"] = str(Path(company.env["QBO_STATE_DIR"]) / "dagster")
    port = free_port()
    server = start_webserver(env, port)
    base = f"http://127.0.0.1:{port}"
    realm = company.realm_id
    try:
        invoices = open_page(browser, f"{base}/assets/qbo/invoices?view=checks")
        expect(invoices.get_by_text("live_rows_match_qbo").first).to_be_visible(timeout=60_000)
        expect(
            invoices.get_by_text(f"qbo.invoices for realm {realm}: 9 live rows, QBO counts 10")
        ).to_be_visible(timeout=60_000)
        lines = open_page(browser, f"{base}/assets/qbo/invoice_lines?view=checks")
        expect(
            lines.get_by_text(f"name an Invoice missing from qbo.invoices (e.g. {lost})")
        ).to_be_visible(timeout=60_000)
        expect(lines.get_by_text("Failed").first).to_be_visible()
    finally:
        server.terminate()
        server.wait(timeout=30)
