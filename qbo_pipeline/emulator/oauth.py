"""Intuit's OAuth 2.0 server as QBO clients see it: discovery, JWKS, authorize, token,
revoke and userinfo.

Consent is given at once, so a client's whole connect flow (redirect, callback, code
exchange) runs unattended. The company it grants is, as on Intuit's company picker, the
one the user picks: the one an authorize link's `realm_hint` names, else the admin API's
choice, else (an emulator started with several companies) each company in turn.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from qbo_pipeline.emulator.store import EmulatorState
from qbo_pipeline.emulator.tokens import ACCOUNTING_SCOPE, InvalidGrant, Issued

log = logging.getLogger(__name__)

SCOPES_SUPPORTED = ("openid", "email", "profile", "address", "phone")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The OAuth error an injected failure answers with (RFC 6749 §5.2 and §4.1.2.1 names).
FAILURE_ERRORS = {500: "server_error", 502: "server_error"}
ID_TOKEN_TTL = 3600


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def discovery(request: Request) -> Response:
    base = _base_url(request)
    return JSONResponse(
        {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": list(SCOPES_SUPPORTED),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }
    )


async def jwks(request: Request) -> Response:
    return JSONResponse({"keys": [_state(request).signing_key.jwk()]})


async def authorize(request: Request) -> Response:
    state = _state(request)
    params = request.query_params
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        return HTMLResponse("<h1>400 Bad Request</h1><p>redirect_uri is required</p>", 400)
    client_id = params.get("client_id", "")
    expected = state.config.client_id
    if expected is not None and client_id and client_id != expected:
        return HTMLResponse("<h1>400 Bad Request</h1><p>unknown client_id</p>", 400)
    csrf = params.get("state")
    scopes = tuple(params.get("scope", "").split())
    error = None
    if not client_id or params.get("response_type") != "code" or not csrf:
        error = "invalid_request"
    elif ACCOUNTING_SCOPE not in scopes:
        error = "invalid_scope"
    if error:
        return _redirect(redirect_uri, {"error": error, "state": csrf})
    try:
        realm_id = state.pick_company(params.get("realm_hint"))
    except KeyError:
        return HTMLResponse("<h1>400 Bad Request</h1><p>realm_hint names no company</p>", 400)
    code = state.tokens.issue_code(
        client_id=client_id,
        redirect_uri=redirect_uri,
        realm_id=realm_id,
        scopes=scopes,
        now=state.clock.now(),
    )
    log.info("authorized client for realm %s", realm_id)
    return _redirect(redirect_uri, {"code": code, "state": csrf, "realmId": realm_id})


def _redirect(uri: str, params: dict[str, str | None]) -> Response:
    query = urlencode({key: value for key, value in params.items() if value is not None})
    separator = "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{separator}{query}", status_code=302)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """client_secret_basic, falling back to client_secret_post."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _oauth_error(
    state: EmulatorState, error: str, description: str | None, status: int
) -> Response:
    state.stats.token_errors[error] += 1
    body = {"error": error}
    if description:
        body["error_description"] = description
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def _injected_failure(state: EmulatorState, status: int) -> Response:
    state.stats.token_failures_injected += 1
    body = {
        "error": FAILURE_ERRORS.get(status, "temporarily_unavailable"),
        "error_description": "failure injected by the QBO emulator",
    }
    return JSONResponse(body, status_code=status, headers=NO_STORE)


async def token(request: Request) -> Response:
    state = _state(request)
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    state.stats.token_calls += 1
    state.stats.token_calls_by_grant[form.get("grant_type") or "none"] += 1
    if state.token_stall.covers(_request_realm(state, form)):
        state.stats.token_stalled += 1
        await state.token_stall.hold()
    failure = state.token_failures.take()
    if failure is not None:
        return _injected_failure(state, failure)
    client_id, client_secret = _client_credentials(request, form)
    if not client_id or not state.client_allowed(client_id, client_secret):
        return _oauth_error(state, "invalid_client", None, 401)
    grant_type = form.get("grant_type")
    now = state.clock.now()
    try:
        if grant_type == "authorization_code":
            if not form.get("code") or not form.get("redirect_uri"):
                return _oauth_error(
                    state, "invalid_request", "code and redirect_uri are required", 400
                )
            issued = state.tokens.exchange_code(
                form["code"], client_id=client_id, redirect_uri=form["redirect_uri"], now=now
            )
        elif grant_type == "refresh_token":
            if not form.get("refresh_token"):
                return _oauth_error(state, "invalid_request", "refresh_token is required", 400)
            issued = state.tokens.refresh(form["refresh_token"], client_id=client_id, now=now)
        elif not grant_type:
            return _oauth_error(state, "invalid_request", "grant_type is required", 400)
        else:
            return _oauth_error(state, "unsupported_grant_type", None, 400)
    except InvalidGrant as error:
        log.info("token request refused: invalid_grant (%s)", error)
        return _oauth_error(state, "invalid_grant", str(error), 400)
    state.stats.grants[grant_type] += 1
    hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"
    return JSONResponse(
        _token_body(issued, request, include_hard_expiry=hard, now=now), headers=NO_STORE
    )


def _request_realm(state: EmulatorState, form: dict[str, str]) -> str | None:
    """The realm whose code or refresh token the request presents, if the emulator knows it."""
    if form.get("grant_type") == "authorization_code":
        return state.tokens.code_realm(form.get("code", ""))
    if form.get("grant_type") == "refresh_token":
        return state.tokens.refresh_realm(form.get("refresh_token", ""))
    return None


def _token_body(issued: Issued, request: Request, *, include_hard_expiry: bool, now: float) -> dict:
    body: dict[str, object] = {
        "token_type": "bearer",
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "x_refresh_token_expires_in": issued.refresh_expires_in,
        "access_token": issued.access_token,
    }
    if "openid" in issued.grant.scopes:
        body["id_token"] = _id_token(_state(request), issued, _base_url(request), now)
    if include_hard_expiry:
        body["x_refresh_token_hard_expires_in"] = issued.hard_expires_in
    return body


def _id_token(state: EmulatorState, issued: Issued, base: str, now: float) -> str:
    """Intuit's claims, signed with the key /op/v1/jwks publishes."""
    grant = issued.grant
    claims = {
        "sub": f"emulator-user-{grant.id}",
        "aud": [grant.client_id],
        "realmid": grant.realm_id,
        "auth_time": int(grant.created_at),
        "iss": f"{base}/op/v1",
        "exp": int(now) + ID_TOKEN_TTL,
        "iat": int(now),
    }
    return state.signing_key.sign(claims)


async def revoke(request: Request) -> Response:
    state = _state(request)
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = {}
    form = body if isinstance(body, dict) else {}
    client_id, client_secret = _client_credentials(request, {k: str(v) for k, v in form.items()})
    if not client_id or not state.client_allowed(client_id, client_secret):
        return _oauth_error(state, "invalid_client", None, 401)
    token_value = form.get("token")
    if not isinstance(token_value, str) or not token_value:
        return _oauth_error(state, "invalid_request", "token is required", 400)
    if state.tokens.revoke(token_value, client_id=client_id):
        log.info("grant revoked by its client")
    return Response(status_code=200)


async def userinfo(request: Request) -> Response:
    state = _state(request)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    record, _reason = state.tokens.access(value.strip(), state.clock.now())
    if scheme.lower() != "bearer" or record is None:
        return JSONResponse({"error": "invalid_token"}, status_code=401)
    return JSONResponse(
        {
            "sub": f"emulator-user-{record.grant.id}",
            "email": "owner@emulator.example",
            "emailVerified": True,
            "givenName": "Emulator",
            "familyName": "Owner",
        }
    )


routes = [
    Route("/.well-known/openid_configuration", discovery),
    Route("/.well-known/openid_configuration/", discovery),
    Route("/.well-known/openid_sandbox_configuration", discovery),
    Route("/.well-known/openid_sandbox_configuration/", discovery),
    Route("/op/v1/jwks", jwks),
    Route("/connect/oauth2", authorize),
    Route("/oauth2/v1/tokens/bearer", token, methods=["POST"]),
    Route("/v2/oauth2/tokens/revoke", revoke, methods=["POST"]),
    Route("/v1/openid_connect/userinfo", userinfo),
]
