"""token_health_sensor for real: a revoked grant seen by qbo_sync, a failing token endpoint,
expiring refresh tokens and a failing webhook, each alerted exactly once."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import httpx
import pytest
from tenacity import wait_none

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline.definitions import defs
from qbo_pipeline.quickbooks.faults import OAuthError
from qbo_pipeline.quickbooks.oauth import OAuthClient
from qbo_pipeline_tests.alerts.conftest import save_connection
from qbo_pipeline_tests.ticks import sensor_tick

REALM = "9130355377741016"
OTHER = "4620816365"


def tick(instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    return sensor_tick("token_health_sensor", instance, cursor)


def token_endpoint_stats(company) -> dict:
    return httpx.get(f"{company.emulator.base_url}/_emulator/stats").json()["token_endpoint"]


def test_the_sensor_is_registered_and_runs_every_minute_by_default():
    dg.Definitions.validate_loadable(defs)
    sensor = defs.resolve_sensor_def("token_health_sensor")
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60


def test_a_revoked_grant_fails_fast_and_is_alerted_once(connect, receiver, monkeypatch, capfd):
    company = connect(customers=5, invoices=5)
    monkeypatch.setenv("QBO_ALERT_WEBHOOK_URL", receiver.url)
    issued = company.runtime.store.decrypt(company.realm_id)
    company.runtime.oauth.revoke(issued.refresh_token)
    httpx.post(f"{company.emulator.base_url}/_emulator/tokens/expire").raise_for_status()

    with dg.instance_for_test() as instance:
        [failed] = sync_realms([company.realm_id], instance=instance)
        assert not failed.success
        assert company.runtime.store.get(company.realm_id).status == "needs_reauth"

        result = tick(instance)
        [body] = receiver.delivered
        text = body["text"]
        assert company.realm_id in text
        assert "invalid_grant" in text and "reconnect" in text
        assert f"qbo-pipeline auth authorize --realm {company.realm_id}" in text
        assert "/quickbooks/auth/authorize" in text
        assert "1 of 1 delivered" in result.skip_reason.skip_message

        calls = token_endpoint_stats(company)
        for _ in range(2):
            [again] = sync_realms([company.realm_id], instance=instance)
            assert not again.success
        assert token_endpoint_stats(company) == calls  # not one more call to Intuit

        quiet = tick(instance, result.cursor)
        assert len(receiver.requests) == 1
        assert "no token problems" in quiet.skip_reason.skip_message

    secrets = {
        issued.access_token,
        issued.refresh_token,
        company.env["QUICKBOOKS_CLIENT_SECRET"],
        company.env["QBO_TOKEN_KEY"],
        receiver.secret_path,
    }
    output = capfd.readouterr()
    assert f"company realm {company.realm_id} (invalid_grant)" in output.err  # Dagster log
    for secret in secrets:
        assert secret not in json.dumps(body)
        assert secret not in output.out + output.err
        assert secret not in result.skip_reason.skip_message


def test_a_failing_token_endpoint_is_alerted_once_as_refresh_failed(connect, receiver, monkeypatch):
    company = connect(customers=1, invoices=1)
    realm = company.realm_id
    monkeypatch.setenv("QBO_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setattr(OAuthClient.refresh.retry, "wait", wait_none())  # keep the test fast
    failures = f"{company.emulator.base_url}/_emulator/oauth/failures"
    httpx.post(failures, json={"status": 503}).raise_for_status()
    stale = company.runtime.store.decrypt(realm).access_token
    with pytest.raises(OAuthError):
        company.runtime.tokens.force_refresh(realm, stale)
    assert token_endpoint_stats(company)["failures_injected"] > 1  # retried, then gave up

    with dg.instance_for_test() as instance:
        result = tick(instance)
        [body] = receiver.delivered
        assert realm in body["text"]
        assert "Refreshing the access token failed" in body["text"]
        assert "503" in body["text"]

        httpx.delete(failures).raise_for_status()
        company.runtime.tokens.force_refresh(realm, stale)  # Intuit is back: recovered
        again = tick(instance, result.cursor)
    assert len(receiver.requests) == 1
    assert "no token problems" in again.skip_reason.skip_message


def test_expiring_refresh_tokens_are_warned_about_once(store, receiver, monkeypatch):
    save_connection(store, REALM, refresh_in=timedelta(days=3))
    save_connection(store, OTHER, hard_in=timedelta(days=5))
    save_connection(store, "1234567890")  # healthy: 100 days rolling, ~5 years hard
    monkeypatch.setenv("QBO_ALERT_WEBHOOK_URL", receiver.url)

    with dg.instance_for_test() as instance:
        monkeypatch.setenv("QBO_EXPIRY_WARNING_DAYS", "2")
        assert receiver.requests == [] and "no token problems" in str(tick(instance).skip_reason)

        monkeypatch.setenv("QBO_EXPIRY_WARNING_DAYS", "7")
        first = tick(instance)
        texts = sorted(body["text"] for body in receiver.delivered)
        assert len(texts) == 2
        [hard, rolling] = texts if OTHER in texts[0] else texts[::-1]
        assert OTHER in hard and "maximum lifetime in 5 days" in hard
        assert REALM in rolling and "expires in 3 days" in rolling

        second = tick(instance, first.cursor)
        assert len(receiver.requests) == 2
        assert "no token problems" in second.skip_reason.skip_message

        save_connection(store, REALM)  # reconnected: the rolling expiry moved out of reach
        tick(instance, second.cursor)
        assert len(receiver.requests) == 2


def test_a_webhook_answering_500_then_200_gets_the_alert_once(store, receiver, monkeypatch):
    save_connection(store, REALM)
    store.mark_needs_reauth(REALM, "invalid_grant: Incorrect or invalid refresh token")
    monkeypatch.setenv("QBO_ALERT_WEBHOOK_URL", receiver.url)
    receiver.statuses = [500]
    with dg.instance_for_test() as instance:
        result = tick(instance)
        tick(instance, result.cursor)
    assert [r.status for r in receiver.requests] == [500, 200]
    assert len(receiver.delivered) == 1


def test_an_unreachable_webhook_is_logged_and_the_sensor_moves_on(
    store, unreachable_url, monkeypatch, capfd
):
    save_connection(store, REALM)
    store.mark_needs_reauth(REALM, "invalid_grant: Incorrect or invalid refresh token")
    monkeypatch.setenv("QBO_ALERT_WEBHOOK_URL", unreachable_url)
    with dg.instance_for_test() as instance:
        result = tick(instance)
        assert "0 of 1 delivered" in result.skip_reason.skip_message
        after = json.loads(result.cursor)["after_event_id"]
        assert after == store.events()[-1].id  # this event will not be alerted again
        again = tick(instance, result.cursor)
        assert "no token problems" in again.skip_reason.skip_message
    err = capfd.readouterr().err
    assert f"invalid_grant alert for realm {REALM} was not delivered" in err
    assert "ConnectError" in err
    assert f"qbo-pipeline auth authorize --realm {REALM}" in err  # the alert itself, in the log
    assert unreachable_url.split("/services/")[1] not in err


def test_without_a_webhook_alerts_go_to_the_dagster_log(store, capfd):
    save_connection(store, REALM)
    store.mark_needs_reauth(REALM, "invalid_grant")
    with dg.instance_for_test() as instance:
        result = tick(instance)
    assert "QBO_ALERT_WEBHOOK_URL is not set" in result.skip_reason.skip_message
    assert f"company realm {REALM} (invalid_grant)" in capfd.readouterr().err


def test_an_unreadable_vault_or_cursor_skips_with_the_reason(vault_env, monkeypatch):
    with dg.instance_for_test() as instance:
        assert "cursor" in tick(instance, "not json").skip_reason.skip_message
        monkeypatch.delenv("QBO_TOKEN_KEY")
        skipped = tick(instance, '{"after_event_id": 3, "warned": {}}')
    assert "QBO_TOKEN_KEY is not set" in skipped.skip_reason.skip_message
    assert skipped.cursor == '{"after_event_id": 3, "warned": {}}'
