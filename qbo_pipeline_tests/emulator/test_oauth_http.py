"""The OAuth server over HTTP, checked against QBO_API.md §5 and the Intuit fixtures."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest

from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline_tests.emulator.conftest import (
    ACCOUNTING,
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    authorize,
    callback_params,
    connect,
    refresh,
    token_request,
)

TOKEN_FIELDS = {
    "token_type",
    "expires_in",
    "refresh_token",
    "x_refresh_token_expires_in",
    "access_token",
}
TID = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")


def _b64_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _code(http: httpx.Client, **overrides: str) -> str:
    return callback_params(authorize(http, **overrides))["code"]


def _exchange(http: httpx.Client, code: str, **kwargs) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    return token_request(http, form, **kwargs)


@pytest.fixture
def http(emulator: EmulatorServer):
    with httpx.Client(base_url=emulator.base_url, timeout=10) as client:
        yield client


def test_discovery_matches_intuit_fields_and_points_here(http, emulator, fixtures_dir) -> None:
    response = http.get("/.well-known/openid_configuration")
    intuit = json.loads((fixtures_dir / "oauth" / "discovery.json").read_text())
    document = response.json()
    assert set(document) == set(intuit)
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint",
                "revocation_endpoint", "jwks_uri"):  # fmt: skip
        assert document[key].startswith(emulator.base_url + "/"), key
    for key in ("scopes_supported", "claims_supported", "token_endpoint_auth_methods_supported",
                "response_types_supported"):  # fmt: skip
        assert document[key] == intuit[key]
    assert http.get(document["jwks_uri"]).status_code == 200
    assert TID.match(response.headers["intuit_tid"])


def test_authorize_redirects_with_code_state_and_realm(http, emulator) -> None:
    params = callback_params(authorize(http))
    assert set(params) == {"code", "state", "realmId"}
    assert params["state"] == "csrf-123"
    assert params["realmId"] == emulator.config.realm_id


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"scope": "openid email"}, "invalid_scope"),
        ({"response_type": "token"}, "invalid_request"),
        ({"client_id": None}, "invalid_request"),
    ],
)
def test_authorize_errors_redirect_with_error_and_state(http, overrides, error) -> None:
    params = callback_params(authorize(http, **overrides))
    assert params == {"error": error, "state": "csrf-123"}


def test_authorize_without_redirect_uri_is_a_400_page(http) -> None:
    assert authorize(http, redirect_uri=None).status_code == 400


def test_token_exchange_has_exactly_intuits_fields(http, emulator) -> None:
    response = _exchange(http, _code(http))
    body = response.json()
    assert response.status_code == 200 and TID.match(response.headers["intuit_tid"])
    assert set(body) == TOKEN_FIELDS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600 and body["x_refresh_token_expires_in"] == 8726400
    assert all(isinstance(body[key], str) for key in ("access_token", "refresh_token"))
    header, empty, *rest = body["access_token"].split(".")
    assert empty == "" and len(rest) == 3
    assert _b64_json(header)["alg"] == "dir"
    assert re.match(r"^RT\d-\d+-H0-[0-9a-f]+$", body["refresh_token"])


def test_hard_expiry_only_on_request_and_id_token_only_for_openid(http, emulator) -> None:
    code = _code(http, scope=f"{ACCOUNTING} openid email")
    headers = {"x-include-refresh-token-hard-expires-in": "true"}
    body = _exchange(http, code, headers=headers).json()
    assert set(body) == TOKEN_FIELDS | {"id_token", "x_refresh_token_hard_expires_in"}
    assert 5 * 365 * 86400 - 5 <= body["x_refresh_token_hard_expires_in"] <= 5 * 365 * 86400
    claims = _b64_json(body["id_token"].split(".")[1])
    assert claims["realmid"] == emulator.config.realm_id and claims["aud"] == [CLIENT_ID]
    refreshed = refresh(http, body["refresh_token"]).json()
    assert "x_refresh_token_hard_expires_in" not in refreshed


def test_client_secret_post_is_accepted(http) -> None:
    form = {"grant_type": "authorization_code", "code": _code(http), "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}  # fmt: skip
    assert http.post("/oauth2/v1/tokens/bearer", data=form).status_code == 200


def test_code_reuse_and_redirect_mismatch_are_invalid_grant(http) -> None:
    code = _code(http)
    assert _exchange(http, code).status_code == 200
    reused = _exchange(http, code)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert TID.match(reused.headers["intuit_tid"])
    other = token_request(
        http,
        {"grant_type": "authorization_code", "code": _code(http), "redirect_uri": "http://x/cb"},
    )
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"


def test_wrong_client_credentials_are_invalid_client(http) -> None:
    response = _exchange(http, _code(http), auth=(CLIENT_ID, "wrong"))
    assert response.status_code == 401 and response.json() == {"error": "invalid_client"}
    assert TID.match(response.headers["intuit_tid"])


def test_bad_requests(http) -> None:
    unsupported = token_request(http, {"grant_type": "password"})
    assert (
        unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    )
    missing = token_request(http, {"grant_type": "refresh_token"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    unknown = refresh(http, "not-a-token")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"


def test_revoke_ends_refresh_and_access(emulator) -> None:
    connection = connect(emulator)
    response = connection.http.post(
        "/v2/oauth2/tokens/revoke",
        json={"token": connection.tokens["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert response.status_code == 200 and response.content == b""
    refused = refresh(connection.http, connection.tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert connection.query("select * from Customer").status_code == 401
