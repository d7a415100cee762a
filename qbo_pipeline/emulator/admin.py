"""The emulator's own API under /_emulator/: data, counters, clock, limits, faults, churn.

Not part of QBO and unauthenticated; for tests, the demo and benchmarks. Every setting
the CLI takes at start-up can be changed here while serving.
"""

from __future__ import annotations

import json
import random
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qbo_pipeline.emulator import churn
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
    state = _state(request)
    return JSONResponse(state.stats.as_json(state.limits))


async def reset_stats(request: Request) -> Response:
    state = _state(request)
    state.reset_stats()
    return JSONResponse(state.stats.as_json(state.limits))


async def expire_tokens(request: Request) -> Response:
    state = _state(request)
    count = state.tokens.expire_access_tokens(state.clock.now())
    return JSONResponse({"expired": count})


async def faults(request: Request) -> Response:
    """One-shot faults `{"status", "count", "shape"}`, or rates `{"rates": {kind: p}}`."""
    state = _state(request)
    if request.method == "DELETE":
        state.faults.clear()
        state.fault_rates.set({})
        return JSONResponse({"status": 0, "count": 0, "rates": {}})
    body = await _json_body(request)
    if "rates" in body:
        try:
            state.fault_rates.set(body["rates"])
        except ValueError as error:
            return _error(str(error))
        if isinstance(body.get("seed"), int):
            state.fault_rates.random.seed(body["seed"])
        return JSONResponse({"rates": state.fault_rates.rates})
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


def _number(body: dict, key: str, *, minimum: float, integer: bool = False) -> Any:
    value = body[key]
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{key} must be {kind} of at least {minimum}")
    return value


async def limits(request: Request) -> Response:
    """QBO's limits: `{"enabled", "requests_per_minute", "max_in_flight"}`, any subset."""
    current = _state(request).limits
    if request.method == "POST":
        body = await _json_body(request)
        try:
            if "enabled" in body and not isinstance(body["enabled"], bool):
                raise ValueError("enabled must be true or false")
            rpm = (
                _number(body, "requests_per_minute", minimum=1, integer=True)
                if ("requests_per_minute" in body)
                else current.requests_per_minute
            )
            ceiling = (
                _number(body, "max_in_flight", minimum=1, integer=True)
                if ("max_in_flight" in body)
                else current.max_in_flight
            )
        except ValueError as error:
            return _error(str(error))
        current.enabled = body.get("enabled", current.enabled)
        current.requests_per_minute, current.max_in_flight = rpm, ceiling
    return JSONResponse(
        {
            "enabled": current.enabled,
            "requests_per_minute": current.requests_per_minute,
            "max_in_flight": current.max_in_flight,
        }
    )


async def latency(request: Request) -> Response:
    """Answer time: `{"ms": time for 1000 rows, "jitter": fraction}`, either or both."""
    state = _state(request)
    if request.method == "POST":
        body = await _json_body(request)
        try:
            ms = _number(body, "ms", minimum=0) if "ms" in body else state.latency_ms
            jitter = _number(body, "jitter", minimum=0) if "jitter" in body else None
            if jitter is not None and jitter > 1:
                raise ValueError("jitter must be at most 1")
        except ValueError as error:
            return _error(str(error))
        state.latency_ms = float(ms)
        if jitter is not None:
            state.latency_jitter = float(jitter)
    return JSONResponse({"ms": state.latency_ms, "jitter": state.latency_jitter})


async def churn_rate(request: Request) -> Response:
    """Background changes: POST `{"rate": changes per second}`, DELETE to stop."""
    state = _state(request)
    if request.method == "DELETE":
        await churn.stop(state)
    elif request.method == "POST":
        body = await _json_body(request)
        try:
            rate = _number(body, "rate", minimum=0) if "rate" in body else None
        except ValueError as error:
            return _error(str(error))
        if rate is None:
            return _error("rate is required (changes per second)")
        if rate == 0:
            await churn.stop(state)
        else:
            churn.start(state, float(rate))
    return JSONResponse({"rate": state.churn_rate, "changes": state.stats.churn_changes})


async def mutate(request: Request) -> Response:
    """A burst of changes now: `{"creates", "updates", "deletes", "deactivations", "seed"}`."""
    state = _state(request)
    company = _company(request)
    if company is None:
        return _error("unknown realm", 404)
    body = await _json_body(request)
    try:
        counts = {k: _number(body, k, minimum=0, integer=True) for k in churn.KINDS if k in body}
        seed = _number(body, "seed", minimum=0, integer=True) if "seed" in body else None
    except ValueError as error:
        return _error(str(error))
    rng = random.Random(seed) if seed is not None else state.mutation_random
    changes = churn.Mutator(company, rng).burst(counts, state)
    return JSONResponse(changes.as_json())


routes = [
    Route("/_emulator/companies", companies),
    Route("/_emulator/companies/{realm_id}/entities/{entity}", entities),
    Route("/_emulator/companies/{realm_id}/summary", summary),
    Route("/_emulator/companies/{realm_id}/deletions", deletions),
    Route("/_emulator/companies/{realm_id}/mutate", mutate, methods=["POST"]),
    Route("/_emulator/stats", stats),
    Route("/_emulator/stats/reset", reset_stats, methods=["POST"]),
    Route("/_emulator/limits", limits, methods=["GET", "POST"]),
    Route("/_emulator/latency", latency, methods=["GET", "POST"]),
    Route("/_emulator/churn", churn_rate, methods=["GET", "POST", "DELETE"]),
    Route("/_emulator/tokens/expire", expire_tokens, methods=["POST"]),
    Route("/_emulator/faults", faults, methods=["POST", "DELETE"]),
    Route("/_emulator/oauth/failures", token_failures, methods=["POST", "DELETE"]),
    Route("/_emulator/clock", clock, methods=["GET", "POST"]),
]
