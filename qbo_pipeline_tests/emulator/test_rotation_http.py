"""Refresh-token policies over HTTP: rotation, rolling and hard expiry, revocation, and
the switch that makes the token endpoint fail (QBO_API.md §5, §9 pitfalls 2-3).

The emulator clock is advanced through the admin API, so day-long rules run in seconds.
"""

from __future__ import annotations

import httpx
import pytest

from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.emulator.tokens import HARD_LIFETIME
from qbo_pipeline_tests.emulator.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    advance_clock,
    connect,
    refresh,
    token_stats,
)

DAY = 86400
HARD_HEADER = {"x-include-refresh-token-hard-expires-in": "true"}


def assert_invalid_grant(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"


def refreshed(http: httpx.Client, refresh_token: str, **kwargs) -> dict:
    response = refresh(http, refresh_token, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_intuit_same_value_for_a_day_then_a_new_one_with_a_day_of_grace(connected) -> None:
    qbo = connected(rotation="intuit")
    first = qbo.tokens["refresh_token"]

    advance_clock(qbo.http, 3600)
    same = refreshed(qbo.http, first)
    assert same["refresh_token"] == first
    assert same["access_token"] != qbo.tokens["access_token"]
    assert same["x_refresh_token_expires_in"] == pytest.approx(8726400 - 3600, abs=2)
    advance_clock(qbo.http, DAY - 3600 - 5)
    assert refreshed(qbo.http, first)["refresh_token"] == first

    advance_clock(qbo.http, 10)  # the value is now older than 24 h
    rotated = refreshed(qbo.http, first)
    second = rotated["refresh_token"]
    assert second != first
    assert rotated["x_refresh_token_expires_in"] == 8726400
    advance_clock(qbo.http, DAY - 5)
    assert refreshed(qbo.http, first)["refresh_token"] == second  # grace answers the newest
    advance_clock(qbo.http, 10)
    assert_invalid_grant(refresh(qbo.http, first))
    assert refresh(qbo.http, second).status_code == 200


def test_strict_kills_the_previous_token_at_once(connected) -> None:
    qbo = connected(rotation="strict")
    first = qbo.tokens["refresh_token"]
    second = refreshed(qbo.http, first)["refresh_token"]
    assert second != first
    assert_invalid_grant(refresh(qbo.http, first))
    third = refreshed(qbo.http, second)["refresh_token"]
    assert third not in (first, second)
    stats = token_stats(qbo.http)
    assert stats["calls_by_grant_type"] == {"authorization_code": 1, "refresh_token": 3}
    assert stats["grants"] == {"authorization_code": 1, "refresh_token": 2}
    assert stats["refresh_successes"] == 2
    assert stats["invalid_grant"] == 1
    assert stats["failures_injected"] == 0


@pytest.mark.parametrize("rotation", ["intuit", "strict"])
def test_unused_refresh_token_expires_after_its_rolling_window(connected, rotation) -> None:
    qbo = connected(rotation=rotation, refresh_token_ttl=1000)
    advance_clock(qbo.http, 400)
    body = refreshed(qbo.http, qbo.tokens["refresh_token"])
    remaining = body["x_refresh_token_expires_in"]
    # intuit hands the same token out again, so its window counts down; strict starts anew.
    assert remaining == pytest.approx(600 if rotation == "intuit" else 1000, abs=2)
    advance_clock(qbo.http, remaining + 1)
    expired = refresh(qbo.http, body["refresh_token"])
    assert_invalid_grant(expired)
    assert expired.json()["error_description"] == "Refresh token expired"


def test_hard_expiry_field_only_with_the_header_and_ends_the_grant(connected) -> None:
    qbo = connected(rotation="strict")
    token = qbo.tokens["refresh_token"]
    assert "x_refresh_token_hard_expires_in" not in qbo.tokens
    body = refreshed(qbo.http, token)
    assert "x_refresh_token_hard_expires_in" not in body
    body = refreshed(qbo.http, body["refresh_token"], headers=HARD_HEADER)
    assert body["x_refresh_token_hard_expires_in"] == pytest.approx(HARD_LIFETIME, abs=5)

    elapsed = 0
    while elapsed + 90 * DAY < HARD_LIFETIME:  # keep the grant alive by refreshing
        advance_clock(qbo.http, 90 * DAY)
        elapsed += 90 * DAY
        body = refreshed(qbo.http, body["refresh_token"], headers=HARD_HEADER)
        hard = body["x_refresh_token_hard_expires_in"]
        assert hard == pytest.approx(HARD_LIFETIME - elapsed, abs=5)
        assert body["x_refresh_token_expires_in"] <= hard  # never outlives the grant
    advance_clock(qbo.http, HARD_LIFETIME - elapsed)
    assert_invalid_grant(refresh(qbo.http, body["refresh_token"]))


def test_revoking_one_token_kills_every_token_of_the_grant(connected) -> None:
    qbo = connected(rotation="intuit")
    first = qbo.tokens
    advance_clock(qbo.http, DAY + 1)
    second = refreshed(qbo.http, first["refresh_token"])  # first now in its grace day
    assert second["refresh_token"] != first["refresh_token"]
    other = connect(qbo.server)  # another grant on the same company

    revoked = qbo.http.post(
        "/v2/oauth2/tokens/revoke",
        json={"token": second["access_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert revoked.status_code == 200
    for refresh_token in (first["refresh_token"], second["refresh_token"]):
        assert_invalid_grant(refresh(qbo.http, refresh_token))
    qbo.tokens = second
    assert qbo.query("select * from Customer").status_code == 401
    assert other.query("select * from Customer").status_code == 200
    assert refresh(other.http, other.tokens["refresh_token"]).status_code == 200
    other.http.close()


def test_configured_failure_answers_every_token_call_until_deleted() -> None:
    config = EmulatorConfig(token_endpoint_failure=503)
    with EmulatorServer(config) as server, httpx.Client(base_url=server.base_url) as http:
        for form in (
            {"grant_type": "refresh_token", "refresh_token": "anything"},
            {"grant_type": "authorization_code", "code": "x", "redirect_uri": "http://cb"},
        ):
            failed = http.post("/oauth2/v1/tokens/bearer", data=form, auth=("a", "b"))
            assert failed.status_code == 503
            assert failed.json()["error"] == "temporarily_unavailable"
        assert http.delete("/_emulator/oauth/failures").status_code == 200
        connection = connect(server)
        assert refresh(http, connection.tokens["refresh_token"]).status_code == 200
        stats = token_stats(http)
        assert stats["failures_injected"] == 2
        assert stats["calls_by_grant_type"] == {"refresh_token": 2, "authorization_code": 2}
        assert stats["refresh_successes"] == 1
        connection.http.close()


def test_admin_failures_for_a_count_or_until_deleted(connected) -> None:
    qbo = connected()
    http = qbo.http
    set_two = http.post("/_emulator/oauth/failures", json={"status": 500, "count": 2})
    assert set_two.json() == {"status": 500, "count": 2}
    for _ in range(2):
        failed = refresh(http, qbo.tokens["refresh_token"])
        assert failed.status_code == 500 and failed.json()["error"] == "server_error"
    token = refreshed(http, qbo.tokens["refresh_token"])["refresh_token"]

    http.post("/_emulator/oauth/failures", json={"status": 503}).raise_for_status()
    for _ in range(3):
        assert refresh(http, token).status_code == 503
    http.delete("/_emulator/oauth/failures").raise_for_status()
    assert refresh(http, token).status_code == 200  # failed calls did not use the token up

    stats = token_stats(http)
    assert stats["failures_injected"] == 5
    assert stats["calls_by_grant_type"]["refresh_token"] == 7
    assert stats["refresh_successes"] == 2
    assert stats["invalid_grant"] == 0


@pytest.mark.parametrize(
    "body", [{"status": 400}, {"status": 503, "count": -1}, {"status": 503, "count": "2"}, {}]
)
def test_admin_failures_reject_bad_requests(emulator: EmulatorServer, body: dict) -> None:
    response = httpx.post(f"{emulator.base_url}/_emulator/oauth/failures", json=body)
    assert response.status_code == 400


def test_config_rejects_a_failure_status_that_is_not_transient() -> None:
    with pytest.raises(ValueError, match="token_endpoint_failure"):
        EmulatorConfig(token_endpoint_failure=404)
    with pytest.raises(ValueError, match="rotation"):
        EmulatorConfig(rotation="lenient")


def introspect(http: httpx.Client, token: str) -> dict:
    response = http.post("/_emulator/oauth/introspect", json={"token": token})
    assert response.status_code == 200, response.text
    assert token not in response.text
    return response.json()


def test_introspection_follows_strict_rotation_and_expiry(connected) -> None:
    qbo = connected(rotation="strict")
    first = qbo.tokens
    live = {"active": True, "token_type": "refresh_token", "realm_id": qbo.realm_id}
    assert introspect(qbo.http, first["refresh_token"]) == live
    assert introspect(qbo.http, first["access_token"]) == {**live, "token_type": "access_token"}

    second = refreshed(qbo.http, first["refresh_token"])
    assert introspect(qbo.http, first["refresh_token"]) == {**live, "active": False}
    assert introspect(qbo.http, second["refresh_token"]) == live
    assert introspect(qbo.http, first["access_token"])["active"] is True  # until it expires
    qbo.http.post("/_emulator/tokens/expire").raise_for_status()
    assert introspect(qbo.http, second["access_token"])["active"] is False
    assert qbo.query("select count(*) from Customer").status_code == 401
    assert introspect(qbo.http, "never-issued-by-this-emulator") == {
        "active": False,
        "token_type": None,
        "realm_id": None,
    }


def test_introspection_counts_intuits_grace_and_revocation(connected) -> None:
    qbo = connected(rotation="intuit")
    first = qbo.tokens["refresh_token"]
    advance_clock(qbo.http, DAY + 1)
    second = refreshed(qbo.http, first)["refresh_token"]
    assert introspect(qbo.http, first)["active"] is True  # replaced, within its grace day
    advance_clock(qbo.http, DAY)
    assert introspect(qbo.http, first)["active"] is False
    assert refresh(qbo.http, first).status_code == 400
    assert introspect(qbo.http, second)["active"] is True
    qbo.http.post(
        "/v2/oauth2/tokens/revoke", json={"token": second}, auth=(CLIENT_ID, CLIENT_SECRET)
    ).raise_for_status()
    assert introspect(qbo.http, second)["active"] is False
    missing = qbo.http.post("/_emulator/oauth/introspect", json={})
    assert missing.status_code == 400 and set(missing.json()) == {"error"}
