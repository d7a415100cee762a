"""`qbo-pipeline auth ...`, `keys rotate` and `serve` as an operator runs them: subprocesses
with an environment pointing at the emulator, which runs in this test process."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.crypto import generate_key
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.service.conftest import PREFIX, Stack, follow_to_callback, served

pytestmark = pytest.mark.slow


def run(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = clean_env()
    completed = subprocess.run(
        [CLI, *args],
        env={**base, **stack.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    stack.collect_tokens(env.get("QBO_TOKEN_KEYS"))
    return completed


def assert_no_secret(stack: Stack, *outputs: subprocess.CompletedProcess) -> None:
    secrets_ = stack.known_tokens | {stack.client_secret}
    assert stack.known_tokens
    for completed in outputs:
        for secret in secrets_:
            assert secret not in completed.stdout + completed.stderr, completed.args


def test_connect_from_the_cli_through_the_running_service_then_manage_it(service):
    """The link printed by one process is honoured by the service's callback in another."""
    authorize = run(service, "auth", "authorize", "--realm", service.realm_id)
    assert authorize.returncode == 0, authorize.stderr
    [url] = [line for line in authorize.stdout.splitlines() if line.startswith("http")]
    assert "until 20" in authorize.stdout
    page = httpx.get(follow_to_callback(url))
    assert page.status_code == 200
    assert service.connected_page in page.text
    service.collect_tokens()

    status = run(service, "auth", "status", "--realm", service.realm_id)
    assert status.returncode == 0, status.stderr
    lines = dict(line.split(None, 1) for line in status.stdout.splitlines())
    assert lines["realmId"] == service.realm_id
    assert lines["status"] == "active" and lines["needsReauth"] == "no"
    assert lines["lastRefreshAt"] == "-"
    assert len(lines["refreshTokenFingerprint"]) == 8

    refresh = run(service, "auth", "refresh", "--realm", service.realm_id)
    assert refresh.returncode == 0, refresh.stderr
    assert f"refreshed realm {service.realm_id}" in refresh.stdout

    as_json = run(service, "auth", "status", "--realm", service.realm_id, "--json")
    reported = json.loads(as_json.stdout)
    assert reported["lastRefreshAt"] is not None
    assert reported["refreshTokenFingerprint"] != lines["refreshTokenFingerprint"]

    listing = run(service, "auth", "connections")
    assert service.realm_id in listing.stdout and "active" in listing.stdout

    ring = {"QBO_TOKEN_KEYS": f"k2:{generate_key()},k1:{service.env['QBO_TOKEN_KEY']}"}
    ring["QBO_TOKEN_KEY"] = ""
    rotate = run(service, "keys", "rotate", **ring)
    assert rotate.returncode == 0, rotate.stderr
    assert rotate.stdout.strip() == "re-encrypted 1 of 1 connections under key id k2"
    rotated = run(service, "auth", "status", "--realm", service.realm_id, "--json", **ring)
    assert json.loads(rotated.stdout)["keyId"] == "k2"

    revoke = run(service, "auth", "revoke", "--realm", service.realm_id, **ring)
    assert revoke.returncode == 0, revoke.stderr
    after = run(service, "auth", "status", "--realm", service.realm_id, "--json", **ring)
    assert json.loads(after.stdout)["status"] == "revoked"

    outputs = (authorize, status, refresh, as_json, listing, rotate, rotated, revoke, after)
    assert_no_secret(service, *outputs)


def test_exchange_code_and_set_tokens_from_the_cli(stack):
    exchanged = run(
        stack, "auth", "exchange-code", "--code", stack.emulator_code(), "--realm", stack.realm_id
    )
    assert exchanged.returncode == 0, exchanged.stderr
    assert f"connected realm {stack.realm_id}" in exchanged.stdout
    assert stack.runtime.store.get(stack.realm_id).status == "active"

    own = stack.oauth().refresh(stack.runtime.store.decrypt(stack.realm_id).refresh_token)
    stack.known_tokens |= {own.access_token, own.refresh_token}
    stored = run(
        stack,
        "auth",
        "set-tokens",
        "--realm",
        stack.realm_id,
        "--access-token",
        own.access_token,
        "--refresh-token",
        own.refresh_token,
        "--expires-in",
        "3000",
    )
    assert stored.returncode == 0, stored.stderr
    assert stack.runtime.store.decrypt(stack.realm_id).refresh_token == own.refresh_token
    assert_no_secret(stack, exchanged, stored)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["auth", "status", "--realm", "404404"], {}, "no QuickBooks connection for realm 404404"),
        (["auth", "refresh", "--realm", "404404"], {}, "no QuickBooks connection for realm"),
        (["auth", "revoke", "--realm", "404404"], {}, "no QuickBooks connection for realm"),
        (["auth", "exchange-code", "--code", "bogus", "--realm", "1"], {}, "authorize again"),
        (["serve", "--port", "0"], {"QBO_ADMIN_TOKEN": ""}, "QBO_ADMIN_TOKEN is not set"),
        (["auth", "authorize"], {"QUICKBOOKS_CLIENT_SECRET": ""}, "QUICKBOOKS_CLIENT_SECRET"),
        (["auth", "status", "--realm", "1"], {"QBO_TOKEN_KEY": "nope"}, "QBO_TOKEN_KEY"),
    ],
)
def test_errors_are_one_line_on_stderr_with_exit_2(stack, args, env, expected):
    completed = run(stack, *args, **env)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("qbo-pipeline: ") and expected in lines[0]
    assert completed.stdout == ""


def test_serve_runs_the_service_behind_the_admin_token(stack):
    with served(stack) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        listing = httpx.get(f"{base_url}{PREFIX}/connections", headers=stack.admin, timeout=10)
        assert listing.status_code == 200 and listing.json() == {"connections": []}
        assert httpx.get(f"{base_url}{PREFIX}/connections", timeout=10).status_code == 401
    # The same store the CLI and the pipeline read.
    assert Runtime(Settings.from_env(stack.env)).store.list() == []
