"""The emulator's own API under /_emulator/: inspect data, counters, clock and faults.

Not part of QBO and unauthenticated; for tests, the demo and benchmarks.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qbo_pipeline.emulator.config import TOKEN_FAILURE_STATUSES
from qbo_pipeline.emulator.store import EmulatorState
from qbo_pipeline.quickbooks import catalog
from qbo_pipeline.quickbooks.timestamps import format_qbo

FAULT_STATUSES = (429, 500, 502, 503, 504)


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def companies(request: Request) -> Response:
    listing = [
        {
            "realm_id": company.realm_id,
            "customers": len(company.tables[catalog.CUSTOMER.name]),
            "invoices": len(company.tables[catalog.INVOICE.name]),
        }
        for company in _state(request).companies.values()
    ]
    return JSONResponse(listing)


def _company(request: Request):
    return _state(request).companies.get(request.path_params["realm_id"])


async def entities(request: Request) -> Response:
    company = _company(request)
    if company is None:
        return _error("unknown realm", 404)
    try:
        entity = catalog.entity(request.path_params["entity"])
    except KeyError as error:
        return _error(str(error), 404)
    return JSONResponse(list(company.tables[entity.name].all()))


async def summary(request: Request) -> Response:
    company = _company(request)
    if company is None:
        return _error("unknown realm", 404)
    return JSONResponse(company.summary())


async def deletions(request: Request) -> Response:
    company = _company(request)
    if company is None:
        return _error("unknown realm", 404)
    return JSONResponse(
        [
            {"entity": d.entity, "id": d.id, "deleted_at": format_qbo(d.deleted_at)}
            for d in company.deletions
        ]
    )


async def stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats.as_json())


async def expire_tokens(request: Request) -> Response:
    state = _state(request)
    count = state.tokens.expire_access_tokens(state.clock.now())
    return JSONResponse({"expired": count})


async def faults(request: Request) -> Response:
    state = _state(request)
    if request.method == "DELETE":
        state.faults.clear()
        return JSONResponse({"status": 0, "count": 0})
    body = await _json_body(request)
    status, count, shape = body.get("status"), body.get("count", 1), body.get("shape", "json")
    if status not in FAULT_STATUSES:
        return _error(f"status must be one of {FAULT_STATUSES}")
    if not isinstance(count, int) or count < 0 or shape not in ("json", "xml"):
        return _error("count must be a non-negative integer and shape json or xml")
    state.faults.status, state.faults.remaining, state.faults.shape = status, count, shape
    return JSONResponse({"status": status, "count": count, "shape": shape})


async def token_failures(request: Request) -> Response:
    """Make the OAuth token endpoint fail: the next `count` calls, or all until DELETE."""
    failures = _state(request).token_failures
    if request.method == "DELETE":
        failures.clear()
        return JSONResponse({"status": None, "count": 0})
    body = await _json_body(request)
    status, count = body.get("status"), body.get("count")
    if status not in TOKEN_FAILURE_STATUSES:
        return _error(f"status must be one of {TOKEN_FAILURE_STATUSES}")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        return _error("count must be a non-negative integer, or omitted to fail until DELETE")
    failures.set(status, count)
    return JSONResponse({"status": status, "count": count})


async def clock(request: Request) -> Response:
    """Move emulator time forward so expiry and rotation grace can be tested quickly."""
    state = _state(request)
    if request.method == "POST":
        seconds = (await _json_body(request)).get("advance_seconds", 0)
        if not isinstance(seconds, int | float) or seconds < 0:
            return _error("advance_seconds must be a non-negative number")
        state.clock.advance(seconds)
    return JSONResponse({"offset_seconds": state.clock.offset, "now": state.clock.now()})


routes = [
    Route("/_emulator/companies", companies),
    Route("/_emulator/companies/{realm_id}/entities/{entity}", entities),
    Route("/_emulator/companies/{realm_id}/summary", summary),
    Route("/_emulator/companies/{realm_id}/deletions", deletions),
    Route("/_emulator/stats", stats),
    Route("/_emulator/tokens/expire", expire_tokens, methods=["POST"]),
    Route("/_emulator/faults", faults, methods=["POST", "DELETE"]),
    Route("/_emulator/oauth/failures", token_failures, methods=["POST", "DELETE"]),
    Route("/_emulator/clock", clock, methods=["GET", "POST"]),
]
