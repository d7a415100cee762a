"""The fault bodies QBO sends, in each of its shapes, and the exception that carries one.

Service faults (JSON `Fault`, capitalised keys) answer bad requests; gateway faults
(JSON `fault`, lower-case keys, epoch-millisecond `time`) answer authentication and
authorisation failures; throttling and some 5xx answer in XML even when JSON was asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from qbo_pipeline.quickbooks.timestamps import format_envelope


class ServiceFault(Exception):
    """A request QBO answers with a service Fault; raised by the company, rendered by the API."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str,
        *,
        status: int = 400,
        fault_type: str = "ValidationFault",
        element: str = "",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        self.fault_type = fault_type
        self.element = element


def not_found(entity: str, entity_id: str) -> ServiceFault:
    return ServiceFault(
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. "
        f"({entity} {entity_id})",
    )


def stale_object() -> ServiceFault:
    return ServiceFault(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and root were working on this at the same time. "
        "root finished before you did, so your work was not saved.",
    )


def service_fault_body(fault: ServiceFault, now: datetime) -> dict[str, Any]:
    error = {
        "Message": fault.message,
        "Detail": fault.detail,
        "code": fault.code,
        "element": fault.element,
    }
    return {"Fault": {"Error": [error], "type": fault.fault_type}, "time": format_envelope(now)}


def service_fault_xml(fault: ServiceFault, now: datetime) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" '
        f'time="{format_envelope(now)}"><Fault type="{fault.fault_type}">'
        f'<Error code="{fault.code}"><Message>{escape(fault.message)}</Message>'
        f"<Detail>{escape(fault.detail)}</Detail></Error></Fault></IntuitResponse>"
    )


def throttle_fault() -> ServiceFault:
    return ServiceFault(
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.  Try again later",
        status=429,
        fault_type="SERVICE",
    )


def server_fault(status: int) -> ServiceFault:
    if status == 503:
        return ServiceFault(
            "10000",
            "Service Unavailable",
            "The service is temporarily unavailable. Please retry later.",
            status=503,
            fault_type="SystemFault",
        )
    return ServiceFault(
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your "
        "data. Please wait a few minutes and try again.",
        status=status,
        fault_type="SystemFault",
    )


def gateway_fault_body(
    *, status: int, code: str, name: str, detail: str | None, fault_type: str, now: datetime
) -> dict[str, Any]:
    """The lower-case gateway shape, key for key as QBO sends it."""
    message = f"message={name}; errorCode={int(code):06d}; statusCode={status}"
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [{"message": message, "detail": detail, "code": code, "element": None}],
            "type": fault_type,
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": int(now.timestamp() * 1000),
        "status": None,
        "cdcresponse": [],
    }
