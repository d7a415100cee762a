"""No token, client secret or key is written anywhere a person or another system can read.

A run that connects, refreshes an expired token, then fails on a revoked grant and is
alerted leaves the token store, the warehouse, the Dagster instance (run and event
storage, captured logs), the alert posted to the webhook, the auth service's answers and
the process output; none may hold a secret. Both storage set-ups are checked: the
embedded SQLite and DuckDB files, and PostgreSQL for both.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.service.app import create_app
from qbo_pipeline_tests.pipeline.secret_scan import assert_no_secret, vault_tokens
from qbo_pipeline_tests.postgres_server import create_database
from qbo_pipeline_tests.ticks import sensor_tick

ADMIN = "admin-token-for-the-secrets-test"


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def postgres_dump(url: str) -> str:
    """Every row of every table of the database, as text."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        return "\n".join(
            str(row)
            for schema, table in tables
            for row in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
        )


def service_answers(company) -> str:
    client = TestClient(create_app(company.runtime))
    headers = {"Authorization": f"Bearer {ADMIN}"}
    realm = company.realm_id
    answers = [
        client.get(f"/quickbooks/auth/status?realmId={realm}", headers=headers),
        client.get("/quickbooks/auth/connections", headers=headers),
        client.post("/quickbooks/auth/refresh", json={"realmId": realm}, headers=headers),
        client.get("/quickbooks/auth/authorize", headers=headers, follow_redirects=False),
    ]
    assert answers[0].status_code == 200
    assert answers[2].status_code == 409  # the grant is revoked: reconnect
    return "\n".join(f"{a.headers}\n{a.text}" for a in answers)


@pytest.mark.parametrize("storage", ["embedded", "postgres"])
def test_no_secret_in_files_logs_alerts_or_answers(
    storage, connect, receiver, tmp_path, capfd, caplog, monkeypatch, request
):
    caplog.set_level(logging.DEBUG)
    urls: dict[str, str] = {}
    if storage == "postgres":
        server = request.getfixturevalue("postgres_server_url")
        urls = {
            "database_url": create_database(server, f"secrets_vault_{id(request)}"),
            "warehouse_url": create_database(server, f"secrets_wh_{id(request)}"),
        }
    monkeypatch.setenv("QBO_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("QBO_ALERT_WEBHOOK_URL", receiver.url)
    company = connect(customers=40, invoices=60, **urls)
    issued = vault_tokens(company.runtime, company.realm_id, "first")
    httpx.post(f"{company.emulator.base_url}/_emulator/tokens/expire").raise_for_status()
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()

    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        [refreshed] = sync_realms([company.realm_id], instance=instance)
        assert refreshed.success, refreshed.error
        issued |= vault_tokens(company.runtime, company.realm_id, "refreshed")
        assert len(set(issued.values())) == 4  # the refresh rotated both tokens

        company.runtime.oauth.revoke(company.runtime.store.decrypt(company.realm_id).refresh_token)
        httpx.post(f"{company.emulator.base_url}/_emulator/tokens/expire").raise_for_status()
        [failed] = sync_realms([company.realm_id], instance=instance)
        assert not failed.success
        assert "reconnect" in failed.error.lower()
        alerted = sensor_tick("token_health_sensor", instance)
        event_text = "\n".join(
            str(event) for run in (refreshed, failed) for event in instance.all_logs(run.run_id)
        )
    [alert] = receiver.delivered
    assert company.realm_id in alert["text"]
    assert company.runtime.store.get(company.realm_id).status == "needs_reauth"
    answers = service_answers(company)

    secrets = issued | {
        "client secret": company.env["QUICKBOOKS_CLIENT_SECRET"],
        "QBO_TOKEN_KEY": company.env["QBO_TOKEN_KEY"],
        "admin token": ADMIN,
        "webhook's secret path": receiver.secret_path,
    }
    state = Path(company.env["QBO_STATE_DIR"])
    scanned = files_under(state, dagster_home)
    if storage == "embedded":
        assert any(p.suffix == ".duckdb" for p in scanned)
        assert any(p.name == "connections.sqlite" for p in scanned)
    assert_no_secret({f"file {path}": path.read_bytes() for path in scanned}, secrets)
    captured = capfd.readouterr()
    texts = {
        "stdout": captured.out,
        "stderr": captured.err,
        "logs": caplog.text,
        "Dagster event log": event_text,
        "alert": json.dumps(alert),
        "sensor result": str(alerted.skip_reason),
        "service answers": answers,
        **{f"PostgreSQL {name}": postgres_dump(url) for name, url in urls.items()},
    }
    assert_no_secret(texts, secrets)
