"""The accounting API under /v3/company/{realmId}/: query, read, write (create, update,
delete, void), CDC, batch and CompanyInfo.

Limits and injected faults are answered before these routes (app.QuickBooksGate); here
every request checks the bearer token (401 gateway fault), then the token's realm
against the path (403, 3100), and answers after the configured latency for the rows it
returns, while it still counts as in flight.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qbo_pipeline.emulator import cdc, query, reports
from qbo_pipeline.emulator.company import Company, encode
from qbo_pipeline.emulator.faults import (
    ServiceFault,
    gateway_fault_body,
    not_found,
    server_fault,
    service_fault_body,
    service_fault_xml,
    throttle_fault,
)
from qbo_pipeline.emulator.limits import Rejection
from qbo_pipeline.emulator.store import EmulatorState
from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.quickbooks.timestamps import PACIFIC, format_envelope, format_qbo

_BY_RESOURCE = {entity.resource: entity for entity in ENTITIES}
Handler = Callable[[Request, EmulatorState, Company], Awaitable[Response]]


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def _envelope(state: EmulatorState, body: dict[str, Any]) -> JSONResponse:
    body["time"] = format_envelope(state.clock.datetime())
    return JSONResponse(body)


def _time(state: EmulatorState) -> bytes:
    return format_envelope(state.clock.datetime()).encode()


def fault_response(state: EmulatorState, fault: ServiceFault, shape: str = "json") -> Response:
    now = state.clock.datetime()
    headers = {"Retry-After": "1"} if fault.status == 429 else None
    if shape == "xml":
        return Response(
            service_fault_xml(fault, now),
            status_code=fault.status,
            media_type="application/xml",
            headers=headers,
        )
    return JSONResponse(service_fault_body(fault, now), status_code=fault.status, headers=headers)


def _gateway_fault(state: EmulatorState, status: int, detail: str | None) -> Response:
    if status == 401:
        name, code, fault_type = "AuthenticationFailed", "3200", "AUTHENTICATION"
    else:
        name, code, fault_type = "ApplicationAuthorizationFailed", "3100", "SERVICE"
    body = gateway_fault_body(
        status=status,
        code=code,
        name=name,
        detail=detail,
        fault_type=fault_type,
        now=state.clock.datetime(),
    )
    return JSONResponse(body, status_code=status)


def throttled(state: EmulatorState, rejection: Rejection) -> Response:
    """QBO's XML ThrottleExceeded (XML even to Accept: JSON, as observed), with the whole
    seconds until the request would be admitted in Retry-After."""
    response = fault_response(state, throttle_fault(), "xml")
    response.headers["Retry-After"] = str(rejection.retry_after)
    return response


def injected_fault(state: EmulatorState, kind: str) -> Response:
    """The answer of an injected fault kind ("503", or "503-xml" to fix the shape)."""
    if kind == "429":
        return fault_response(state, throttle_fault(), "xml")
    if kind == "fault200":
        return _fault_in_a_200(state)
    if kind == "xml":
        return fault_response(state, server_fault(500), "xml")
    status, _, shape = kind.partition("-")
    if not shape:
        shape = state.fault_rates.random.choice(("json", "xml"))
    return fault_response(state, server_fault(int(status)), shape)


def _fault_in_a_200(state: EmulatorState) -> Response:
    """HTTP 200 whose body is a transient Fault, as QBO answers some failures."""
    transient = server_fault(500) if state.fault_rates.random.random() < 0.5 else throttle_fault()
    response = fault_response(state, transient)
    response.status_code = 200
    return response


def accounting(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        response = await _authorised(request, handler)
        delay = _state(request).latency(getattr(request.state, "rows", 0))
        if delay:
            await asyncio.sleep(delay)
        return response

    return endpoint


async def _authorised(request: Request, handler: Handler) -> Response:
    state = _state(request)
    realm_id = request.path_params["realm_id"]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    record, reason = state.tokens.access(token.strip(), state.clock.now())
    if scheme.lower() != "bearer" or record is None:
        if reason == "Token expired":
            detail = f"Token expired: {format_envelope(state.clock.datetime())}"
        else:
            detail = "Token invalid"
        return _gateway_fault(state, 401, detail)
    company = state.companies.get(realm_id)
    if record.grant.realm_id != realm_id or company is None:
        return _gateway_fault(state, 403, None)
    request.state.app = record.grant.client_id  # batch limits are per realm and app
    try:
        return await handler(request, state, company)
    except ServiceFault as fault:
        return fault_response(state, fault)


def _entity(resource: str) -> Entity:
    entity = _BY_RESOURCE.get(resource)
    if entity is None:
        raise ServiceFault(
            "500",
            "Unsupported Operation",
            f"Operation Could not find resource for relative : /{resource} is not supported.",
        )
    return entity


@accounting
async def run_query(request: Request, state: EmulatorState, company: Company) -> Response:
    if request.method == "POST":
        text = (await request.body()).decode("utf-8", "replace")
    else:
        text = request.query_params.get("query", "")
    body, rows = query_response(state, company, text)
    request.state.rows = rows
    return _json(b'{"QueryResponse":' + body + b',"time":"' + _time(state) + b'"}')


def query_response(state: EmulatorState, company: Company, text: str) -> tuple[bytes, int]:
    """The QueryResponse object of a statement, as JSON bytes, and its row count.

    Pages are joined from each entity's cached JSON fragment: no dict is built or
    encoded per request, which keeps a 1000-invoice page cheap.
    """
    try:
        plan = query.bind(query.parse(text))
    except query.QueryError as error:
        raise ServiceFault("4001", error.message, error.detail) from None
    if plan.count:
        total = company.count(plan)
        state.stats.count_queries[company.realm_id] += 1
        return b'{"totalCount":%d}' % total, 0
    ids = company.page(plan)
    if not ids:
        return b"{}", 0
    table = company.tables[plan.schema.entity.name]
    entities = _join(table.fragment(entity_id) for entity_id in ids)
    name = plan.schema.entity.name.encode()
    tail = b',"startPosition":%d,"maxResults":%d}' % (plan.start_position, len(ids))
    return b'{"' + name + b'":' + entities + tail, len(ids)


def _join(fragments: Iterable[bytes]) -> bytes:
    return b"[" + b",".join(fragments) + b"]"


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


@accounting
async def read(request: Request, state: EmulatorState, company: Company) -> Response:
    entity = _entity(request.path_params["resource"])
    entity_id = request.path_params["entity_id"]
    body = company.get(entity.name, entity_id)
    if body is None:
        raise not_found(entity.name, entity_id)
    return _envelope(state, {entity.name: body})


@accounting
async def company_info(request: Request, state: EmulatorState, company: Company) -> Response:
    """One per realm, read here by the realm's own id and by no other (and by query)."""
    entity_id = request.path_params["entity_id"]
    if entity_id != company.realm_id:
        raise not_found("CompanyInfo", entity_id)
    request.state.rows = 1
    return _envelope(state, {"CompanyInfo": company.info})


@accounting
async def write(request: Request, state: EmulatorState, company: Company) -> Response:
    entity = _entity(request.path_params["resource"])
    try:
        payload = json.loads(await request.body())
    except ValueError:
        raise ServiceFault(
            "2010", "Request has invalid or unsupported property", "Request body is not JSON"
        ) from None
    if not isinstance(payload, dict):
        raise ServiceFault(
            "2010", "Request has invalid or unsupported property", "Request body is not an object"
        )
    now = state.clock.datetime()
    operation = request.query_params.get("operation")
    if operation == "delete":
        return _envelope(state, {entity.name: company.delete(entity, payload, now)})
    if operation == "void":
        return _envelope(state, {entity.name: company.void(entity, payload, now)})
    return _envelope(state, {entity.name: company.save(entity, payload, now)})


@accounting
async def change_data_capture(request: Request, state: EmulatorState, company: Company) -> Response:
    """GET /cdc?entities=Customer,Invoice&changedSince=…, metered like a query."""
    state.stats.cdc_calls[company.realm_id] += 1
    params = request.query_params
    entities = cdc.requested_entities(params.get("entities"))
    since = cdc.changed_since(params.get("changedSince"), state.clock.datetime())
    objects = cdc.changes(company, entities, since)
    request.state.rows = sum(len(rows) for rows in objects.values())
    parts = [_cdc_part(entity.name, objects[entity.name]) for entity in entities]
    body = b'{"CDCResponse":[{"QueryResponse":[' + b",".join(parts) + b"]}]"
    return _json(body + b',"time":"' + _time(state) + b'"}')


@accounting
async def run_report(request: Request, state: EmulatorState, company: Company) -> Response:
    """GET /reports/{name}?start_date=…&end_date=… (or report_date=…), from the company's
    own transactions (reports.py)."""
    now = state.clock.datetime()
    try:
        body = reports.report(
            company,
            request.path_params["name"],
            dict(request.query_params),
            now.astimezone(PACIFIC).date(),
            format_qbo(now),
        )
    except reports.ReportError as error:
        raise ServiceFault(
            "2010", "Request has invalid or unsupported property", str(error)
        ) from None
    request.state.rows = len(body["Rows"]["Row"])
    return JSONResponse(body)


def _cdc_part(name: str, rows: list[bytes]) -> bytes:
    if not rows:
        return b"{}"
    counts = b',"startPosition":1,"maxResults":%d,"totalCount":%d}' % (len(rows), len(rows))
    return b'{"' + name.encode() + b'":' + _join(rows) + counts


@accounting
async def batch(request: Request, state: EmulatorState, company: Company) -> Response:
    """POST /batch with Query items; each item is metered as one request, the batch as
    one of the app's and the realm's batch requests."""
    items = _batch_items(await request.body())
    now = state.clock.now()
    rejection = state.limits.charge(company.realm_id, len(items), now, app=request.state.app)
    if rejection is not None:
        return throttled(state, rejection)
    state.stats.batch_calls[company.realm_id] += 1
    state.stats.batch_items[company.realm_id] += len(items)
    answers, rows = [], 0
    for item in items:
        answer, item_rows = _batch_item(state, company, item)
        answers.append(answer)
        rows += item_rows
    request.state.rows = rows
    body = b'{"BatchItemResponse":[' + b",".join(answers) + b"]"
    return _json(body + b',"time":"' + _time(state) + b'"}')


MAX_BATCH_ITEMS = 30  # QBO_API.md §3: current docs and API Explorer; 31 fails


def _batch_items(raw: bytes) -> list[dict[str, Any]]:
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    items = payload.get("BatchItemRequest") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ServiceFault(
            "2020",
            "Required param missing, need to supply the required value for the API",
            "Required parameter BatchItemRequest is missing in the request",
            element="BatchItemRequest",
        )
    if len(items) > MAX_BATCH_ITEMS:
        # Code UNCONFIRMED: Intuit documents the limit of 30, not the fault that enforces it.
        raise ServiceFault(
            "2003",
            "Batch size exceeded",
            f"Batch request has {len(items)} items. Max allowed value is {MAX_BATCH_ITEMS}",
            element="BatchItemRequest",
        )
    return items


def _batch_item(state: EmulatorState, company: Company, item: dict) -> tuple[bytes, int]:
    """One item's answer, keyed by its bId; a failing item carries its own Fault."""
    head = b'{"bId":' + encode(str(item.get("bId", ""))) + b","
    try:
        if not isinstance(item.get("Query"), str):
            raise ServiceFault(
                "500",
                "Unsupported Operation",
                "The emulator's batch answers Query items only",
            )
        body, rows = query_response(state, company, item["Query"])
    except ServiceFault as fault:
        error = service_fault_body(fault, state.clock.datetime())["Fault"]
        return head + b'"Fault":' + encode(error) + b"}", 0
    return head + b'"QueryResponse":' + body + b"}", rows


routes = [
    Route("/v3/company/{realm_id}/query", run_query, methods=["GET", "POST"]),
    Route("/v3/company/{realm_id}/cdc", change_data_capture, methods=["GET"]),
    Route("/v3/company/{realm_id}/batch", batch, methods=["POST"]),
    Route("/v3/company/{realm_id}/reports/{name}", run_report, methods=["GET"]),
    Route("/v3/company/{realm_id}/companyinfo/{entity_id}", company_info, methods=["GET"]),
    Route("/v3/company/{realm_id}/{resource}/{entity_id}", read, methods=["GET"]),
    Route("/v3/company/{realm_id}/{resource}", write, methods=["POST"]),
]
