"""No token, client secret or key is written anywhere a person or another system can read.

A run that connects, refreshes an expired token, and then fails on a revoked grant leaves
the token store, the warehouse, the Dagster instance (run and event storage, captured
logs) and the process output; none may hold a secret.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import httpx

from qbo_pipeline.defs.execution import sync_realms


def secrets_of(company, collected: set[str]) -> None:
    tokens = company.runtime.store.decrypt(company.realm_id)
    collected.update({tokens.access_token, tokens.refresh_token})


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def test_no_secret_in_files_logs_or_output(connect, tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    company = connect(customers=40, invoices=60)
    issued: set[str] = set()
    secrets_of(company, issued)
    httpx.post(f"{company.emulator.base_url}/_emulator/tokens/expire").raise_for_status()
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()

    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        [refreshed] = sync_realms([company.realm_id], instance=instance)
        assert refreshed.success, refreshed.error
        secrets_of(company, issued)
        assert len(issued) == 4  # the refresh rotated both tokens

        company.runtime.oauth.revoke(company.runtime.store.decrypt(company.realm_id).refresh_token)
        httpx.post(f"{company.emulator.base_url}/_emulator/tokens/expire").raise_for_status()
        [failed] = sync_realms([company.realm_id], instance=instance)
        assert not failed.success
        assert "reconnect" in failed.error.lower()
        event_text = "\n".join(
            str(event) for run in (refreshed, failed) for event in instance.all_logs(run.run_id)
        )

    secrets = issued | {company.env["QUICKBOOKS_CLIENT_SECRET"], company.env["QBO_TOKEN_KEY"]}
    state = Path(company.env["QBO_STATE_DIR"])
    scanned = files_under(state, dagster_home)
    assert any(p.suffix == ".duckdb" for p in scanned)
    assert any(p.name == "connections.sqlite" for p in scanned)
    for path in scanned:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"a secret is in {path}"
    captured = capfd.readouterr()
    outputs = [captured.out, captured.err, caplog.text, event_text]
    for secret in secrets:
        assert all(secret not in text for text in outputs)
    assert company.runtime.store.get(company.realm_id).status == "needs_reauth"
