"""The accounting API under /v3/company/{realmId}/: query, read, create, update, delete.

Every request passes the same gate as at Intuit: injected faults first (an outage
answers before authentication), then the bearer token (401 gateway fault), then the
token's realm against the path (403, 3100).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qbo_pipeline.emulator import query
from qbo_pipeline.emulator.company import Company
from qbo_pipeline.emulator.faults import (
    ServiceFault,
    gateway_fault_body,
    not_found,
    server_fault,
    service_fault_body,
    service_fault_xml,
    throttle_fault,
)
from qbo_pipeline.emulator.store import EmulatorState
from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity
from qbo_pipeline.quickbooks.timestamps import format_envelope

_BY_RESOURCE = {entity.resource: entity for entity in ENTITIES}
Handler = Callable[[Request, EmulatorState, Company], Awaitable[Response]]


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def _envelope(state: EmulatorState, body: dict[str, Any]) -> JSONResponse:
    body["time"] = format_envelope(state.clock.datetime())
    return JSONResponse(body)


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


def accounting(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state = _state(request)
        realm_id = request.path_params["realm_id"]
        injected = state.faults.take()
        if injected is not None:
            status, shape = injected
            fault = throttle_fault() if status == 429 else server_fault(status)
            return fault_response(state, fault, "xml" if status == 429 else shape)
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
        try:
            return await handler(request, state, company)
        except ServiceFault as fault:
            return fault_response(state, fault)

    return endpoint


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
    try:
        plan = query.bind(query.parse(text))
    except query.QueryError as error:
        raise ServiceFault("4001", error.message, error.detail) from None
    ids = company.select(plan)
    if plan.count:
        return _envelope(state, {"QueryResponse": {"totalCount": len(ids)}})
    table = company.tables[plan.schema.entity.name]
    entities = [table.get(entity_id) for entity_id in query.page(plan, ids)]
    if not entities:
        return _envelope(state, {"QueryResponse": {}})
    response = {
        plan.schema.entity.name: entities,
        "startPosition": plan.start_position,
        "maxResults": len(entities),
    }
    return _envelope(state, {"QueryResponse": response})


@accounting
async def read(request: Request, state: EmulatorState, company: Company) -> Response:
    entity = _entity(request.path_params["resource"])
    entity_id = request.path_params["entity_id"]
    body = company.get(entity.name, entity_id)
    if body is None:
        raise not_found(entity.name, entity_id)
    return _envelope(state, {entity.name: body})


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
    if request.query_params.get("operation") == "delete":
        return _envelope(state, {entity.name: company.delete(entity, payload, now)})
    return _envelope(state, {entity.name: company.save(entity, payload, now)})


routes = [
    Route("/v3/company/{realm_id}/query", run_query, methods=["GET", "POST"]),
    Route("/v3/company/{realm_id}/{resource}/{entity_id}", read, methods=["GET"]),
    Route("/v3/company/{realm_id}/{resource}", write, methods=["POST"]),
]
