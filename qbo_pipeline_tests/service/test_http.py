"""The service over real HTTP: a company connected through the browser flow, then every
endpoint an operator uses, and not one token in any answer."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from qbo_pipeline.quickbooks.faults import InvalidGrant
from qbo_pipeline.vault.store import fingerprint
from qbo_pipeline_tests.service.conftest import PREFIX, Stack, follow_to_callback

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def http(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.server.base_url, event_hooks={"response": [stack.record]}, timeout=30
    )


def connect_through_browser(stack: Stack, browser: httpx.Client) -> httpx.Response:
    """authorize (admin) -> the emulator's consent -> our callback (no admin token)."""
    started = browser.get(f"{PREFIX}/authorize", headers=stack.admin)
    assert started.status_code == 302
    location = started.headers["location"]
    assert location.startswith(f"{stack.emulator.base_url}/connect/oauth2?")
    callback_url = follow_to_callback(location)
    assert callback_url.startswith(f"{stack.server.base_url}{PREFIX}/callback?")
    return browser.get(callback_url)


def test_browser_flow_connects_the_company_and_the_callback_cannot_be_replayed(service):
    with http(service) as browser:
        started = browser.get(f"{PREFIX}/authorize", headers=service.admin)
        query = parse_qs(urlsplit(started.headers["location"]).query)
        assert query["redirect_uri"] == [service.runtime.settings.redirect_uri]
        assert len(query["state"][0]) >= 32
        callback_url = follow_to_callback(started.headers["location"])

        page = browser.get(callback_url)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert service.connected_page in page.text
        connection = service.runtime.store.get(service.realm_id)
        assert connection.status == "active"

        calls = service.token_calls()
        replay = browser.get(callback_url)
        assert replay.status_code == 400
        assert "used already" in replay.text
        assert service.token_calls() == calls, "a replayed callback must not reach Intuit"


def test_every_endpoint_over_http_and_no_answer_holds_a_token(service):
    realm = service.realm_id
    with http(service) as api:
        assert connect_through_browser(service, api).status_code == 200
        service.collect_tokens()

        status = api.get(f"{PREFIX}/status", params={"realmId": realm}, headers=service.admin)
        assert status.status_code == 200
        body = status.json()
        stored = service.runtime.store.decrypt(realm)
        assert body["realmId"] == realm
        assert body["status"] == "active"
        assert body["needsReauth"] is False and body["isExpired"] is False
        assert body["accessTokenFingerprint"] == fingerprint(stored.access_token)
        assert body["refreshTokenFingerprint"] == fingerprint(stored.refresh_token)
        for name in ("accessTokenExpiresAt", "refreshTokenExpiresAt", "refreshTokenHardExpiresAt"):
            assert ISO_UTC.match(body[name]), (name, body[name])
        expires = datetime.fromisoformat(body["accessTokenExpiresAt"])
        assert 3000 < (expires - datetime.now(UTC)).total_seconds() <= 3600
        assert body["lastRefreshAt"] is None and body["lastError"] is None

        refreshed = api.post(f"{PREFIX}/refresh", json={"realmId": realm}, headers=service.admin)
        assert refreshed.status_code == 200, refreshed.text
        assert ISO_UTC.match(refreshed.json()["lastRefreshAt"])
        assert refreshed.json()["refreshTokenFingerprint"] != body["refreshTokenFingerprint"]
        service.collect_tokens()

        # A caller keeping its own copy refreshed elsewhere: the stored token is now dead
        # (strict rotation) and only the caller's copy works.
        own = service.oauth().refresh(service.runtime.store.decrypt(realm).refresh_token)
        service.known_tokens |= {own.access_token, own.refresh_token}
        with_own = api.post(
            f"{PREFIX}/refresh",
            json={"realmId": realm, "QUICKBOOKS_REFRESH_TOKEN": own.refresh_token},
            headers=service.admin,
        )
        assert with_own.status_code == 200, with_own.text
        assert with_own.json()["status"] == "active"
        service.collect_tokens()

        elsewhere = service.oauth().refresh(service.runtime.store.decrypt(realm).refresh_token)
        service.known_tokens |= {elsewhere.access_token, elsewhere.refresh_token}
        set_tokens = api.post(
            f"{PREFIX}/set-tokens",
            json={
                "realmId": realm,
                "access_token": elsewhere.access_token,
                "QUICKBOOKS_REFRESH_TOKEN": elsewhere.refresh_token,
            },
            headers=service.admin,
        )
        assert set_tokens.status_code == 200, set_tokens.text
        assert set_tokens.json()["refreshTokenFingerprint"] == fingerprint(elsewhere.refresh_token)

        code = service.emulator_code()
        exchanged = api.post(
            f"{PREFIX}/exchange-code", json={"code": code, "realmId": realm}, headers=service.admin
        )
        assert exchanged.status_code == 200, exchanged.text
        assert exchanged.json()["status"] == "active"
        service.collect_tokens()

        listing = api.get(f"{PREFIX}/connections", headers=service.admin)
        assert listing.status_code == 200
        assert [c["realmId"] for c in listing.json()["connections"]] == [realm]

        last = service.runtime.store.decrypt(realm)
        revoked = api.post(f"{PREFIX}/revoke", json={"realmId": realm}, headers=service.admin)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "revoked"
        assert revoked.json()["needsReauth"] is True

    # Revoked at Intuit too: neither the access token nor the refresh token works there.
    answer = httpx.get(
        f"{service.emulator.api_base_url}/v3/company/{realm}/query",
        params={"query": "select * from Customer"},
        headers={"Authorization": f"Bearer {last.access_token}", "Accept": "application/json"},
    )
    assert answer.status_code == 401
    with pytest.raises(InvalidGrant):
        service.oauth().refresh(last.refresh_token)

    secrets_ = service.known_tokens | {service.client_secret}
    assert len(service.known_tokens) >= 8
    assert len(service.responses) >= 9
    for response in service.responses:
        seen = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        leaked = [s for s in secrets_ if s in seen]
        assert not leaked, f"{response.request.method} {response.request.url.path} leaks"
