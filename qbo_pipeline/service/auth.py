"""The `/quickbooks/auth/` endpoints: connect, callback, tokens, status, revoke, list.

Each handler only reads the request and shapes the answer; the work is done by
`qbo_pipeline.companies.Companies`, in a worker thread because it talks to the
database and to Intuit with blocking calls. Field names follow what users of QuickBooks
integrations already send (`realmId`, `QUICKBOOKS_REFRESH_TOKEN`).
"""

from __future__ import annotations

import contextlib
import html
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from qbo_pipeline.companies import Companies
from qbo_pipeline.errors import BadRequest
from qbo_pipeline.service.bodies import read_body
from qbo_pipeline.service.errors import NO_STORE, answers_errors
from qbo_pipeline.vault.oauth_states import InvalidState

PREFIX = "/quickbooks/auth"
AUTHORIZE_PATH = f"{PREFIX}/authorize"
CALLBACK_PATH = f"{PREFIX}/callback"
_ERROR_SHOWN = 100  # characters of Intuit's `error` parameter echoed on the page
MAX_BODY = 64 * 1024  # bytes; the largest real body (set-tokens) is about 2 KB
_OBJECT_HINT = 'the body must be a JSON object, e.g. {"realmId": "..."}'


def _companies(request: Request) -> Companies:
    return request.app.state.companies


def _json(payload: Any) -> JSONResponse:
    return JSONResponse(payload, headers=NO_STORE)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object a request carries, at most MAX_BODY bytes (see `read_body`)."""
    raw = await read_body(request, MAX_BODY)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise BadRequest(_OBJECT_HINT) from None
    if not isinstance(data, dict):
        raise BadRequest(_OBJECT_HINT)
    return data


def _text(data: dict[str, Any], *names: str, required: bool = True) -> str | None:
    """The first of `names` present (aliases), as a non-empty string."""
    for name in names:
        value = data.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool) and name == "realmId":
            value = str(value)
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string")
        return value
    if required:
        raise BadRequest(f"missing field {names[0]}")
    return None


def _require(data: dict[str, Any], *names: str) -> None:
    """Name every missing field at once, so one round trip fixes the request."""
    missing = [name for name in names if data.get(name) in (None, "")]
    if missing:
        raise BadRequest(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")


@answers_errors()
async def authorize(request: Request) -> Response:
    """302 to Intuit's consent page; `?realmId=R` makes the link reconnect company R only."""
    realm_id = request.query_params.get("realmId") or None
    authorization = await run_in_threadpool(_companies(request).begin_authorization, realm_id)
    return RedirectResponse(authorization.url, status_code=302, headers=NO_STORE)


def _page(status: int, message: str) -> HTMLResponse:
    title = "QuickBooks connected" if status == 200 else "QuickBooks not connected"
    body = (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body><p>{html.escape(message)}</p></body></html>\n"
    )
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


@answers_errors(render=_page)
async def callback(request: Request) -> Response:
    params = request.query_params
    companies = _companies(request)
    if params.get("error"):
        if params.get("state"):  # burn it: this attempt is over either way
            await run_in_threadpool(_consume_quietly, companies, params["state"])
        error = params["error"][:_ERROR_SHOWN]
        raise BadRequest(
            f"QuickBooks did not connect: Intuit answered {error!r}; start again "
            f"from {AUTHORIZE_PATH} and approve access"
        )
    status = await run_in_threadpool(
        companies.complete_authorization,
        params.get("code"),
        params.get("state"),
        params.get("realmId"),
    )
    name = (
        f"{status['companyName']} (realm {status['realmId']})"
        if status.get("companyName")
        else status["realmId"]
    )
    return _page(200, f"Connected QuickBooks company {name}. You can close this page.")


def _consume_quietly(companies: Companies, state: str) -> None:
    with contextlib.suppress(InvalidState):  # the error callback is reported either way
        companies.states.consume(state)


@answers_errors()
async def exchange_code(request: Request) -> Response:
    data = await _body(request)
    _require(data, "code", "realmId")
    code = _text(data, "code")
    realm_id = _text(data, "realmId")
    return _json(await run_in_threadpool(_companies(request).exchange_code, code, realm_id))


@answers_errors()
async def set_tokens(request: Request) -> Response:
    data = await _body(request)
    if data.get("refresh_token") and not data.get("QUICKBOOKS_REFRESH_TOKEN"):
        data["QUICKBOOKS_REFRESH_TOKEN"] = data["refresh_token"]
    _require(data, "access_token", "realmId", "QUICKBOOKS_REFRESH_TOKEN")
    expires_in = data.get("expires_in", 0)
    realm_id = _text(data, "realmId")
    access_token = _text(data, "access_token")
    refresh_token = _text(data, "QUICKBOOKS_REFRESH_TOKEN")
    status = await run_in_threadpool(
        _companies(request).set_tokens,
        realm_id,
        access_token,
        refresh_token,
        expires_in=expires_in,
    )
    return _json(status)


@answers_errors()
async def refresh(request: Request) -> Response:
    data = await _body(request)
    realm_id = _text(data, "realmId")
    own = _text(data, "QUICKBOOKS_REFRESH_TOKEN", "refresh_token", required=False)
    return _json(await run_in_threadpool(_companies(request).refresh, realm_id, own))


@answers_errors()
async def status(request: Request) -> Response:
    realm_id = request.query_params.get("realmId", "")
    return _json(await run_in_threadpool(_companies(request).status, realm_id))


@answers_errors()
async def revoke(request: Request) -> Response:
    data = await _body(request)
    realm_id = _text(data, "realmId")
    return _json(await run_in_threadpool(_companies(request).revoke, realm_id))


@answers_errors()
async def connections(request: Request) -> Response:
    listing = await run_in_threadpool(_companies(request).list)
    return _json({"connections": listing})


routes = [
    Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
    Route(CALLBACK_PATH, callback, methods=["GET"]),
    Route(f"{PREFIX}/exchange-code", exchange_code, methods=["POST"]),
    Route(f"{PREFIX}/set-tokens", set_tokens, methods=["POST"]),
    Route(f"{PREFIX}/refresh", refresh, methods=["POST"]),
    Route(f"{PREFIX}/status", status, methods=["GET"]),
    Route(f"{PREFIX}/revoke", revoke, methods=["POST"]),
    Route(f"{PREFIX}/connections", connections, methods=["GET"]),
]
