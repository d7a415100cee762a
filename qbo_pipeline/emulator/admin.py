"""The emulator's own API under /_emulator/: companies, consent, data and edits to it
(merge, void), counters, clock, limits, faults, churn, webhook deliveries, and the OAuth
server's failures, stalls and token introspection.

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
from qbo_pipeline.emulator.company import Company
from qbo_pipeline.emulator.config import TOKEN_FAILURE_STATUSES, check_realm_id
from qbo_pipeline.emulator.faults import ServiceFault
from qbo_pipeline.emulator.store import EmulatorState, TokenEndpointStall
from qbo_pipeline.emulator.webhooks import WebhookSettings, disabled_json
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


def _listing(company: Company) -> dict[str, Any]:
    return {
        "realm_id": company.realm_id,
        "company_name": company.name,
        "customers": len(company.tables[catalog.CUSTOMER.name]),
        "invoices": len(company.tables[catalog.INVOICE.name]),
    }


async def companies(request: Request) -> Response:
    """The companies served; POST generates another, for tests that connect several."""
    state = _state(request)
    if request.method == "POST":
        return await _add_company(request, state)
    return JSONResponse([_listing(company) for company in state.companies.values()])


async def _add_company(request: Request, state: EmulatorState) -> Response:
    """`{"realm_id", "customers", "invoices", "seed", "company_name"}`; all but realm_id
    default to the emulator's own settings, the name to one drawn from the seed."""
    body = await _json_body(request)
    config = state.config
    try:
        realm_id = check_realm_id(body.get("realm_id"))
        customers = _count(body, "customers", config.customers)
        invoices = _count(body, "invoices", config.invoices)
        seed = _count(body, "seed", config.seed)
        name = body.get("company_name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError("company_name must be a non-empty string")
        if invoices and not customers:
            raise ValueError("invoices need at least one customer to bill")
    except ValueError as error:
        return _error(str(error))
    if realm_id in state.companies:
        return _error(f"realm {realm_id} exists", 409)
    company = Company.generated(realm_id, seed, customers, invoices, name)
    state.add_company(company)
    return JSONResponse(_listing(company), status_code=201)


def _count(body: dict, key: str, default: int) -> int:
    return _number(body, key, minimum=0, integer=True) if key in body else default


async def consent(request: Request) -> Response:
    """The company the user picks on Intuit's consent page, for every authorization after."""
    state = _state(request)
    if request.method == "POST":
        realm_id = (await _json_body(request)).get("realm_id")
        if not isinstance(realm_id, str) or not realm_id:
            return _error("realm_id is required")
        if realm_id not in state.companies:
            return _error("unknown realm", 404)
        state.consent_realm = realm_id
    return JSONResponse({"realm_id": state.consent_realm})


def _company(request: Request) -> Company | None:
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


def _stall_json(stall: TokenEndpointStall) -> dict[str, Any]:
    return {
        "active": stall.active,
        "realm_id": stall.realm_id,
        "seconds": stall.seconds,
        "held": stall.held,
    }


async def token_stall(request: Request) -> Response:
    """Hold token requests: `{"realm_id": realm or null for all, "seconds": n or null}`.

    null seconds hold them until DELETE, which answers every held request and stops.
    """
    state = _state(request)
    stall = state.token_stall
    if request.method == "DELETE":
        released = stall.release()
        return JSONResponse(
            {"active": False, "realm_id": None, "seconds": None, "released": released}
        )
    if request.method == "POST":
        body = await _json_body(request)
        realm_id, seconds = body.get("realm_id"), body.get("seconds")
        if realm_id is not None and not isinstance(realm_id, str):
            return _error("realm_id must be a realm id, or null for every realm")
        if realm_id is not None and realm_id not in state.companies:
            return _error("unknown realm", 404)
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0
        ):
            return _error("seconds must be a positive number, or null to hold until DELETE")
        stall.set(realm_id, None if seconds is None else float(seconds))
    return JSONResponse(_stall_json(stall))


async def introspect(request: Request) -> Response:
    """RFC 7662's answer for `{"token"}`: would a refresh or an API call with it work now?"""
    state = _state(request)
    value = (await _json_body(request)).get("token")
    if not isinstance(value, str) or not value:
        return _error("token is required")
    found = state.tokens.introspect(value, state.clock.now())
    return JSONResponse(
        {"active": found.active, "token_type": found.token_type, "realm_id": found.realm_id}
    )


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
    """QBO's limits: `{"enabled", "requests_per_minute", "requests_per_second",
    "max_in_flight"}`, any subset."""
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
            rps = (
                _number(body, "requests_per_second", minimum=1, integer=True)
                if ("requests_per_second" in body)
                else current.requests_per_second
            )
        except ValueError as error:
            return _error(str(error))
        current.enabled = body.get("enabled", current.enabled)
        current.requests_per_minute, current.max_in_flight = rpm, ceiling
        current.requests_per_second = rps
    return JSONResponse(
        {
            "enabled": current.enabled,
            "requests_per_minute": current.requests_per_minute,
            "requests_per_second": current.requests_per_second,
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


async def _edit(
    request: Request, default: catalog.Entity
) -> tuple[Company, catalog.Entity, dict] | Response:
    """The company, entity and body of an admin edit, or the error answer."""
    company = _company(request)
    if company is None:
        return _error("unknown realm", 404)
    body = await _json_body(request)
    try:
        entity = catalog.entity(str(body.get("entity", default.name)))
    except KeyError as error:
        return _error(str(error))
    return company, entity, body


async def merge(request: Request) -> Response:
    """Merge two customers: `{"entity": "Customer", "from": "7", "into": "2"}`.

    QBO merges in its UI only; this is how a test produces a `merged` webhook event.
    """
    edit = await _edit(request, catalog.CUSTOMER)
    if isinstance(edit, Response):
        return edit
    company, entity, body = edit
    source, into = body.get("from"), body.get("into")
    if not isinstance(source, str | int) or not isinstance(into, str | int):
        return _error("from and into are required: the Ids of the merged-away and kept entity")
    try:
        merged = company.merge(entity, str(source), str(into), _state(request).clock.datetime())
    except ServiceFault as fault:
        return _fault_error(fault)
    return JSONResponse(merged)


async def void(request: Request) -> Response:
    """Void an invoice: `{"Id": "12", "SyncToken": "0"}`; without SyncToken, the current one."""
    edit = await _edit(request, catalog.INVOICE)
    if isinstance(edit, Response):
        return edit
    company, entity, body = edit
    entity_id = str(body.get("Id", ""))
    payload = {"Id": entity_id, "SyncToken": body.get("SyncToken")}
    if payload["SyncToken"] is None:
        current = company.get(entity.name, entity_id)
        payload["SyncToken"] = current["SyncToken"] if current else None
    try:
        voided = company.void(entity, payload, _state(request).clock.datetime())
    except ServiceFault as fault:
        return _fault_error(fault)
    return JSONResponse({entity.name: voided})


def _fault_error(fault: ServiceFault) -> JSONResponse:
    """The admin API's one-line error for a write QBO's rules refused."""
    return _error(fault.detail, 404 if fault.code == "610" else 400)


_WEBHOOK_KEYS = ("url", "format", "verifier", "retry_scale", "batch_seconds")


async def webhooks(request: Request) -> Response:
    """Webhook deliveries: GET the record and totals, DELETE to clear them, POST settings.

    POST takes any of `{"url", "format", "verifier", "retry_scale", "batch_seconds"}`;
    `"url": null` stops deliveries and drops what was gathered.
    """
    state = _state(request)
    if request.method == "POST":
        body = await _json_body(request)
        unknown = sorted(set(body) - set(_WEBHOOK_KEYS))
        if unknown:
            return _error(f"unknown setting {unknown[0]!r}; use {', '.join(_WEBHOOK_KEYS)}")
        if "url" in body and body["url"] is None:
            await state.set_webhooks(None)
        else:
            try:
                settings = _webhook_settings(state, body)
            except (TypeError, ValueError) as error:
                return _error(str(error))
            await state.set_webhooks(settings)
    elif request.method == "DELETE" and state.webhooks is not None:
        state.webhooks.clear()
    return JSONResponse(state.webhooks.as_json() if state.webhooks else disabled_json())


def _webhook_settings(state: EmulatorState, body: dict[str, Any]) -> WebhookSettings:
    if state.webhooks is not None:
        return state.webhooks.settings.changed(body)
    if "url" not in body:
        raise ValueError("url is required to start webhook deliveries")
    config = state.config
    defaults = {
        "verifier": config.webhook_verifier,
        "format": config.webhook_format,
        "retry_scale": config.webhook_retry_scale,
        "batch_seconds": config.webhook_batch_seconds,
    }
    return WebhookSettings(**{**defaults, **body})


async def flush_webhooks(request: Request) -> Response:
    """Send what is gathered now, or retry the delivery waiting for its next attempt."""
    dispatcher = _state(request).webhooks
    if dispatcher is None:
        return _error("webhooks are off; start the emulator with --webhook-url", 409)
    return JSONResponse({"events": dispatcher.flush()})


routes = [
    Route("/_emulator/companies", companies, methods=["GET", "POST"]),
    Route("/_emulator/consent", consent, methods=["GET", "POST"]),
    Route("/_emulator/companies/{realm_id}/entities/{entity}", entities),
    Route("/_emulator/companies/{realm_id}/summary", summary),
    Route("/_emulator/companies/{realm_id}/deletions", deletions),
    Route("/_emulator/companies/{realm_id}/mutate", mutate, methods=["POST"]),
    Route("/_emulator/companies/{realm_id}/merge", merge, methods=["POST"]),
    Route("/_emulator/companies/{realm_id}/void", void, methods=["POST"]),
    Route("/_emulator/webhooks", webhooks, methods=["GET", "POST", "DELETE"]),
    Route("/_emulator/webhooks/flush", flush_webhooks, methods=["POST"]),
    Route("/_emulator/stats", stats),
    Route("/_emulator/stats/reset", reset_stats, methods=["POST"]),
    Route("/_emulator/limits", limits, methods=["GET", "POST"]),
    Route("/_emulator/latency", latency, methods=["GET", "POST"]),
    Route("/_emulator/churn", churn_rate, methods=["GET", "POST", "DELETE"]),
    Route("/_emulator/tokens/expire", expire_tokens, methods=["POST"]),
    Route("/_emulator/faults", faults, methods=["POST", "DELETE"]),
    Route("/_emulator/oauth/failures", token_failures, methods=["POST", "DELETE"]),
    Route("/_emulator/oauth/stall", token_stall, methods=["GET", "POST", "DELETE"]),
    Route("/_emulator/oauth/introspect", introspect, methods=["POST"]),
    Route("/_emulator/clock", clock, methods=["GET", "POST"]),
]
