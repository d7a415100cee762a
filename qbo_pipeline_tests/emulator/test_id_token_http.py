"""id_tokens verified as a client verifies Intuit's: against the keys the discovery
document's jwks_uri publishes, with its issuer and the app's client id as audience."""

from __future__ import annotations

import httpx
import jwt
import pytest

from qbo_pipeline_tests.emulator.conftest import (
    ACCOUNTING,
    CLIENT_ID,
    Connection,
    add_company,
    connect,
    refresh,
)

OPENID = f"{ACCOUNTING} openid email"
CLAIMS = {"iss", "aud", "sub", "realmid", "auth_time", "iat", "exp"}


def _verified(http: httpx.Client, id_token: str, leeway: float = 0) -> dict:
    """The claims, once the token passes every check; `leeway` covers an advanced clock."""
    discovery = http.get("/.well-known/openid_configuration").json()
    keys = jwt.PyJWKSet.from_dict(http.get(discovery["jwks_uri"]).json())
    key = next(k for k in keys.keys if k.key_id == jwt.get_unverified_header(id_token)["kid"])
    return jwt.decode(
        id_token,
        key.key,
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=discovery["issuer"],
        options={"require": sorted(CLAIMS)},
        leeway=leeway,
    )


@pytest.fixture
def openid(connected) -> Connection:
    """A connection to a second company, granted with the openid scope."""
    first = connected(customers=2, invoices=2)
    add_company(first.http, "4620816365213456", seed=11, customers=2, invoices=2)
    connection = connect(first.server, OPENID, realm_id="4620816365213456")
    yield connection
    connection.http.close()


def test_jwks_publishes_one_rs256_signing_key(emulator) -> None:
    keys = httpx.get(f"{emulator.base_url}/op/v1/jwks").json()["keys"]
    assert len(keys) == 1
    assert set(keys[0]) == {"kty", "kid", "use", "alg", "n", "e"}
    assert (keys[0]["kty"], keys[0]["use"], keys[0]["alg"]) == ("RSA", "sig", "RS256")
    assert httpx.get(f"{emulator.base_url}/op/v1/jwks").json()["keys"] == keys


def test_id_token_verifies_and_names_the_consented_company(openid: Connection) -> None:
    id_token = openid.tokens["id_token"]
    [key] = openid.http.get("/op/v1/jwks").json()["keys"]
    assert jwt.get_unverified_header(id_token) == {"alg": "RS256", "kid": key["kid"]}
    claims = _verified(openid.http, id_token)
    assert set(claims) == CLAIMS
    assert claims["realmid"] == openid.realm_id == "4620816365213456"
    assert claims["aud"] == [CLIENT_ID]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["auth_time"] <= claims["iat"]
    userinfo = openid.http.get(
        "/v1/openid_connect/userinfo",
        headers={"Authorization": f"Bearer {openid.tokens['access_token']}"},
    )
    assert userinfo.json()["sub"] == claims["sub"]


def test_refresh_carries_a_new_id_token_for_the_same_grant(openid: Connection) -> None:
    first = _verified(openid.http, openid.tokens["id_token"])
    openid.http.post("/_emulator/clock", json={"advance_seconds": 5})
    renewed = refresh(openid.http, openid.tokens["refresh_token"]).json()
    claims = _verified(openid.http, renewed["id_token"], leeway=10)
    assert claims["realmid"] == "4620816365213456" and claims["sub"] == first["sub"]
    assert claims["auth_time"] == first["auth_time"] and claims["iat"] >= first["iat"] + 5


def test_a_changed_token_fails_verification(openid: Connection) -> None:
    header, payload, signature = openid.tokens["id_token"].split(".")
    forged_claims = jwt.utils.base64url_decode(payload).replace(
        b"4620816365213456", b"4620816365213459"
    )
    forged = ".".join((header, jwt.utils.base64url_encode(forged_claims).decode(), signature))
    with pytest.raises(jwt.InvalidSignatureError):
        _verified(openid.http, forged)


def test_no_id_token_without_openid(connected) -> None:
    plain = connected(customers=2, invoices=2)
    assert "id_token" not in plain.tokens
    assert "id_token" not in refresh(plain.http, plain.tokens["refresh_token"]).json()
