"""What the service answers to requests it must refuse: always a 4xx (or a known 5xx) with
one line saying why, never a trace, never a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from qbo_pipeline.companies import Companies
from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.service.app import create_app
from qbo_pipeline.service.errors import GENERIC
from qbo_pipeline.vault.oauth_states import OAuthStates
from qbo_pipeline_tests.service.conftest import PREFIX, follow_to_callback, path_of

ADMIN_ENDPOINTS = [
    ("GET", "authorize", None),
    ("POST", "exchange-code", {"code": "c", "realmId": "1"}),
    ("POST", "set-tokens", {"realmId": "1", "access_token": "a", "QUICKBOOKS_REFRESH_TOKEN": "r"}),
    ("POST", "refresh", {"realmId": "1"}),
    ("GET", "status?realmId=1", None),
    ("POST", "revoke", {"realmId": "1"}),
    ("GET", "connections", None),
]
POST_ENDPOINTS = ["exchange-code", "set-tokens", "refresh", "revoke"]


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message
    assert "Traceback" not in response.text
    return message


def connect(stack, client) -> None:
    """Connect the company through the app (the emulator still plays Intuit for real)."""
    started = client.get(f"{PREFIX}/authorize", headers=stack.admin)
    assert client.get(path_of(follow_to_callback(started.headers["location"]))).status_code == 200


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-of-decent-length", "Basic YWRtaW46YWRtaW4="]
)
def test_every_endpoint_but_the_callback_wants_the_admin_token(stack, client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method, endpoint, body in ADMIN_ENDPOINTS:
        response = client.request(method, f"{PREFIX}/{endpoint}", json=body, headers=headers)
        message = one_line_error(response, 401)
        assert "QBO_ADMIN_TOKEN" in message or "admin token" in message
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert stack.runtime.store.list() == []
    assert stack.token_calls() == 0


def test_a_prefix_of_the_admin_token_is_not_the_admin_token(stack, client):
    headers = {"Authorization": f"Bearer {stack.admin_token[:-1]}"}
    assert client.get(f"{PREFIX}/connections", headers=headers).status_code == 401
    assert client.get(f"{PREFIX}/connections", headers=stack.admin).status_code == 200


def test_the_service_refuses_to_exist_without_an_admin_token(stack):
    for token in (None, "short"):
        settings = stack.runtime.settings.with_overrides(admin_token=token)
        with pytest.raises(ConfigurationError, match="QBO_ADMIN_TOKEN"):
            create_app(Runtime(settings))


def callback(client, **params):
    return client.get(f"{PREFIX}/callback?{urlencode(params)}")


def assert_page(response, status: int, *phrases: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    text = response.text.split("<p>")[1].split("</p>")[0]
    for phrase in phrases:
        assert phrase in text, text


def test_a_forged_state_is_refused_before_intuit_is_asked(stack, client):
    response = callback(client, code="c0de", state="forged-by-someone", realmId=stack.realm_id)
    assert_page(response, 400, "not issued by this service", "authorize")
    assert stack.token_calls() == 0
    assert stack.runtime.store.list() == []


def test_a_used_state_is_refused(stack, client):
    started = client.get(f"{PREFIX}/authorize", headers=stack.admin)
    target = path_of(follow_to_callback(started.headers["location"]))
    assert client.get(target).status_code == 200
    assert_page(client.get(target), 400, "used already")


def test_an_expired_state_is_refused_and_burnt(stack, client):
    states = OAuthStates(stack.runtime.store.db)
    old = states.issue(now=datetime.now(UTC) - timedelta(minutes=10, seconds=1))
    code = stack.emulator_code()
    params = {"code": code, "state": old.value, "realmId": stack.realm_id}
    assert_page(callback(client, **params), 400, "expired")
    assert_page(callback(client, **params), 400, "used already")
    assert stack.token_calls() == 0


def test_a_state_just_inside_ten_minutes_still_works(stack, client):
    states = OAuthStates(stack.runtime.store.db)
    recent = states.issue(now=datetime.now(UTC) - timedelta(minutes=9, seconds=50))
    response = callback(
        client, code=stack.emulator_code(), state=recent.value, realmId=stack.realm_id
    )
    assert_page(response, 200, stack.connected_page)


def test_a_refused_consent_is_a_400_page_with_what_to_do_and_burns_the_state(stack, client):
    started = client.get(f"{PREFIX}/authorize", headers=stack.admin)
    state = started.headers["location"].split("state=")[1].split("&")[0]
    response = callback(client, error="access_denied", state=state)
    assert_page(response, 400, "access_denied", "start again")
    again = callback(client, code="c", state=state, realmId=stack.realm_id)
    assert_page(again, 400, "used already")


def test_the_page_escapes_what_the_query_says(client):
    response = callback(client, error="<script>alert(1)</script>")
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


@pytest.mark.parametrize(
    ("missing", "phrase"), [("state", "no state"), ("code", "lacks code"), ("realmId", "realmId")]
)
def test_a_callback_missing_a_parameter_is_a_400(stack, client, missing, phrase):
    state = OAuthStates(stack.runtime.store.db).issue().value
    params = {"code": "c0de", "state": state, "realmId": stack.realm_id}
    del params[missing]
    assert_page(callback(client, **params), 400, phrase)
    assert stack.token_calls() == 0


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
def test_a_body_that_is_not_a_json_object_is_a_400(stack, client, endpoint):
    for body in (b"{not json", b"", b"[1, 2]", b'"realmId"', b"\xff\xfe"):
        response = client.post(f"{PREFIX}/{endpoint}", content=body, headers=stack.admin)
        assert "JSON object" in one_line_error(response, 400), body


@pytest.mark.parametrize(
    ("endpoint", "body", "named"),
    [
        ("exchange-code", {}, "missing fields code, realmId"),
        ("exchange-code", {"code": "c"}, "missing field realmId"),
        ("set-tokens", {"realmId": "1"}, "missing fields access_token, QUICKBOOKS_REFRESH_TOKEN"),
        ("set-tokens", {"realmId": "1", "access_token": "a"}, "QUICKBOOKS_REFRESH_TOKEN"),
        ("refresh", {}, "missing field realmId"),
        ("refresh", {"realmId": ""}, "missing field realmId"),
        ("revoke", {"realm": "1"}, "missing field realmId"),
        ("refresh", {"realmId": ["1"]}, "realmId must be a string"),
        ("revoke", {"realmId": "1 OR 1=1"}, "realmId must be the company id"),
        ("set-tokens", {"realmId": "1", "access_token": 5, "refresh_token": "r"}, "access_token"),
    ],
)
def test_missing_or_wrong_fields_are_named(stack, client, endpoint, body, named):
    response = client.post(f"{PREFIX}/{endpoint}", json=body, headers=stack.admin)
    assert named in one_line_error(response, 400)
    assert stack.runtime.store.list() == []


def test_status_without_a_realm_is_a_400(stack, client):
    response = client.get(f"{PREFIX}/status", headers=stack.admin)
    assert "realmId" in one_line_error(response, 400)


@pytest.mark.parametrize(
    ("method", "endpoint", "body"),
    [
        ("GET", "status?realmId=404404", None),
        ("POST", "refresh", {"realmId": "404404"}),
        ("POST", "revoke", {"realmId": "404404"}),
    ],
)
def test_an_unknown_realm_is_a_404_with_the_fix(stack, client, method, endpoint, body):
    response = client.request(method, f"{PREFIX}/{endpoint}", json=body, headers=stack.admin)
    message = one_line_error(response, 404)
    assert "no QuickBooks connection for realm 404404" in message
    assert "auth authorize" in message
    assert stack.token_calls() == 0


def test_a_refused_code_is_a_400_saying_to_authorize_again(stack, client):
    body = {"code": "never-issued", "realmId": stack.realm_id}
    response = client.post(f"{PREFIX}/exchange-code", json=body, headers=stack.admin)
    assert "authorize again" in one_line_error(response, 400)
    assert stack.runtime.store.list() == []


def test_invalid_grant_on_refresh_marks_the_connection_and_answers_409(stack, client):
    connect(stack, client)
    realm = stack.realm_id
    # The user disconnects the app inside QuickBooks: Intuit ends the grant.
    with stack.oauth() as oauth:
        oauth.revoke(stack.runtime.store.decrypt(realm).refresh_token)

    response = client.post(f"{PREFIX}/refresh", json={"realmId": realm}, headers=stack.admin)
    message = one_line_error(response, 409)
    assert "needs to be reconnected" in message and "authorize" in message

    status = client.get(f"{PREFIX}/status?realmId={realm}", headers=stack.admin).json()
    assert status["status"] == "needs_reauth" and status["needsReauth"] is True
    assert "invalid_grant" in status["lastError"]

    calls = stack.token_calls()
    again = client.post(f"{PREFIX}/refresh", json={"realmId": realm}, headers=stack.admin)
    one_line_error(again, 409)
    assert stack.token_calls() == calls, "a dead grant is never retried at Intuit"


def test_a_callers_refused_refresh_token_leaves_the_connection_alone(stack, client):
    connect(stack, client)
    body = {"realmId": stack.realm_id, "QUICKBOOKS_REFRESH_TOKEN": "someone-elses"}
    response = client.post(f"{PREFIX}/refresh", json=body, headers=stack.admin)
    assert "unchanged" in one_line_error(response, 409)
    status = client.get(f"{PREFIX}/status?realmId={stack.realm_id}", headers=stack.admin).json()
    assert status["status"] == "active" and status["needsReauth"] is False
    # ...and the stored grant still refreshes.
    ok = client.post(f"{PREFIX}/refresh", json={"realmId": stack.realm_id}, headers=stack.admin)
    assert ok.status_code == 200


def test_revoking_twice_is_harmless(stack, client):
    connect(stack, client)
    body = {"realmId": stack.realm_id}
    first = client.post(f"{PREFIX}/revoke", json=body, headers=stack.admin)
    second = client.post(f"{PREFIX}/revoke", json=body, headers=stack.admin)
    assert first.json()["status"] == second.json()["status"] == "revoked"
    refreshed = client.post(f"{PREFIX}/refresh", json=body, headers=stack.admin)
    assert "reconnected" in one_line_error(refreshed, 409)


def test_an_unexpected_failure_is_a_generic_500(stack, client, monkeypatch, caplog):
    def broken(self):
        raise RuntimeError(f"boom with {stack.client_secret}")

    monkeypatch.setattr(Companies, "list", broken)
    response = client.get(f"{PREFIX}/connections", headers=stack.admin)
    assert one_line_error(response, 500) == GENERIC
    assert stack.client_secret not in response.text
    assert "RuntimeError" in caplog.text


def test_intuit_unreachable_is_a_503_naming_the_setting(stack, monkeypatch):
    settings = stack.runtime.settings.with_overrides(
        discovery_url="http://127.0.0.1:9/.well-known/openid_configuration"
    )
    from qbo_pipeline_tests.service.conftest import TestClient

    with TestClient(create_app(Runtime(settings)), follow_redirects=False) as other:
        response = other.get(f"{PREFIX}/authorize", headers=stack.admin)
    message = one_line_error(response, 503)
    assert "QUICKBOOKS_DISCOVERY_URL" in message and "retry" in message


def test_refused_requests_never_echo_a_token(stack, client):
    connect(stack, client)
    stack.collect_tokens()
    tokens = set(stack.known_tokens)
    client.post(f"{PREFIX}/refresh", json={"realmId": stack.realm_id}, headers=stack.admin)
    stack.collect_tokens()
    bad = {"realmId": stack.realm_id, "QUICKBOOKS_REFRESH_TOKEN": sorted(tokens)[0]}
    client.post(f"{PREFIX}/refresh", json=bad, headers=stack.admin)
    client.post(f"{PREFIX}/set-tokens", json={"access_token": "x"}, headers=stack.admin)
    assert len(stack.responses) >= 5
    for response in stack.responses:
        for secret in stack.known_tokens | {stack.client_secret}:
            assert secret not in response.text


def test_a_callback_with_a_garbled_realm_is_refused_before_intuit_is_asked(stack, client):
    state = OAuthStates(stack.runtime.store.db).issue().value
    response = callback(client, code="c0de", state=state, realmId="9130'; DROP TABLE x")
    assert_page(response, 400, "realmId must be the company id")
    assert stack.token_calls() == 0
    assert stack.runtime.store.list() == []
