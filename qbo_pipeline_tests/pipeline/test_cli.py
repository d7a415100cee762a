"""The `qbo-pipeline` command as a user runs it: a subprocess with an environment."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from qbo_pipeline.quickbooks.catalog import ENTITIES
from qbo_pipeline.quickbooks.oauth import OAuthClient
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.crypto import generate_key
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.pipeline.expectations import assert_warehouse_equals
from qbo_pipeline_tests.pipeline.secret_scan import (
    assert_no_secret,
    command_output,
    company_secrets,
    vault_tokens,
)


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    base = clean_env()
    return subprocess.run(
        [CLI, *args], env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=180
    )


GOOD_KEY = generate_key()


def test_keys_generate_prints_a_32_byte_key(tmp_path):
    completed = run(["keys", "generate"], {}, tmp_path)
    assert completed.returncode == 0
    assert len(base64.b64decode(completed.stdout.strip(), validate=True)) == 32


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"QBO_TOKEN_KEY": "not-base64!"}, "QBO_TOKEN_KEY"),
        ({"QBO_TOKEN_KEY": base64.b64encode(b"short").decode()}, "32 bytes"),
        ({"QUICKBOOKS_ENVIRONMENT": "staging"}, "QUICKBOOKS_ENVIRONMENT"),
        # With a good key: a bad URL is named at start-up, not reported as "no companies".
        ({"QBO_WAREHOUSE_URL": "mysql://x/y", "QBO_TOKEN_KEY": GOOD_KEY}, "QBO_WAREHOUSE_URL"),
        ({"QBO_DATABASE_URL": "mysql://x/y", "QBO_TOKEN_KEY": GOOD_KEY}, "QBO_DATABASE_URL"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_problem(tmp_path, env, named):
    completed = run(["sync"], {"QBO_STATE_DIR": str(tmp_path / "s"), **env}, tmp_path)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("qbo-pipeline: ")
    assert named in lines[0]
    if named.endswith("_URL"):
        assert "duckdb:///" in lines[0] or "postgresql://" in lines[0]  # what it accepts
    assert "Traceback" not in completed.stderr
    if env.get("QBO_TOKEN_KEY"):  # even a key that is no key is not repeated
        assert_no_secret(command_output(completed), {"QBO_TOKEN_KEY": env["QBO_TOKEN_KEY"]})


def test_unknown_realm_is_one_line_with_the_fix(connect, tmp_path):
    company = connect(customers=5, invoices=5)
    completed = run(["sync", "--realm", "123145678"], company.env, tmp_path)
    assert completed.returncode == 2
    assert "no QuickBooks connection for realm 123145678" in completed.stderr
    assert "auth" in completed.stderr
    assert_no_secret(command_output(completed), company_secrets(company))


@pytest.mark.slow
def test_set_tokens_then_sync_from_the_command_line(connect, tmp_path):
    """An operator stores tokens obtained elsewhere, then syncs; the CLI refreshes them."""
    company = connect(customers=90, invoices=140)
    settings = Settings.from_env()
    oauth = OAuthClient(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        redirect_uri=settings.redirect_uri,
        discovery_url=settings.discovery_url,
    )
    secrets = company_secrets(company)
    fresh = oauth.refresh(secrets["refresh token"])
    secrets |= {"set access token": fresh.access_token, "set refresh token": fresh.refresh_token}
    env = {**company.env, "QBO_STATE_DIR": str(tmp_path / "cli-state")}

    stored = run(
        [
            "auth",
            "set-tokens",
            "--realm",
            company.realm_id,
            "--access-token",
            fresh.access_token,
            "--refresh-token",
            fresh.refresh_token,
        ],
        env,
        tmp_path,
    )
    assert stored.returncode == 0, stored.stderr
    assert_no_secret(command_output(stored), secrets)
    database = (tmp_path / "cli-state" / "connections.sqlite").read_bytes()
    assert_no_secret({"token store's file": database}, secrets)

    synced = run(["-v", "sync"], env, tmp_path)  # -v: the progress log is scanned too
    assert synced.returncode == 0, synced.stderr
    assert f"realm {company.realm_id}: run" in synced.stdout
    cli_runtime = Runtime(Settings.from_env(env))
    with cli_runtime.warehouse() as wh:
        assert_warehouse_equals(wh, company.realm_id, company.entities)
    rotated = vault_tokens(cli_runtime, company.realm_id, "rotated")
    assert rotated["rotated refresh token"] != fresh.refresh_token
    assert_no_secret(command_output(synced), secrets | rotated)

    # Nothing changed since: one CDC call for all entities; counting each table read costs
    # one more (the lists CDC cannot track are read, and counted, once a day).
    calls = []
    for args in (["sync"], ["sync", "--count-check"]):
        httpx.post(f"{company.emulator.base_url}/_emulator/stats/reset").raise_for_status()
        again = run(args, env, tmp_path)
        assert again.returncode == 0, again.stderr
        stats = httpx.get(f"{company.emulator.base_url}/_emulator/stats").json()
        calls.append(stats["realms"][company.realm_id]["requests"])
    assert calls == [1, 1 + sum(1 for entity in ENTITIES if entity.cdc)]

    # The dbt models over what the CLI synced, into the same warehouse.
    built = run(["analytics"], env, tmp_path)
    assert built.returncode == 0, built.stdout[-3000:]
    assert re.search(
        r"ok: \d{2} models built in schema analytics, (\d+) of \1 dbt tests", built.stdout
    )
    with cli_runtime.warehouse() as wh:
        [(invoices,)] = wh.query(
            "SELECT count(DISTINCT transaction_id) FROM analytics.general_ledger "
            "WHERE transaction_type = 'Invoice'"
        )
    assert invoices == len([i for i in company.entities("Invoice") if i.get("TotalAmt")])
    assert_no_secret(command_output(built), secrets | rotated)


def test_a_bug_is_a_traceback_not_a_one_line_exit(monkeypatch, capsys):
    """Only the project's own errors (PipelineError) become one line and exit 2; anything
    else is a bug, and its traceback is what a bug report needs."""
    from qbo_pipeline import cli
    from qbo_pipeline.commands import keys
    from qbo_pipeline.errors import ConfigurationError

    def broken(args):
        raise KeyError("access_token")

    monkeypatch.setattr(keys, "_generate", broken)
    with pytest.raises(KeyError):
        cli.main(["keys", "generate"])

    def misconfigured(args):
        raise ConfigurationError("QBO_SOMETHING must be set")

    monkeypatch.setattr(keys, "_generate", misconfigured)
    assert cli.main(["keys", "generate"]) == 2
    assert capsys.readouterr().err == "qbo-pipeline: QBO_SOMETHING must be set\n"
