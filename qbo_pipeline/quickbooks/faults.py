"""QuickBooks errors as a small hierarchy, and the parser of every fault shape QBO sends.

QBO answers failures in three shapes: the service `Fault` (JSON, capitalised keys), the
gateway `fault` (JSON, lower-case keys, epoch-millisecond time) and XML `IntuitResponse`
bodies, the last even when JSON was asked for (throttling, some auth errors). A 200 can
carry a Fault too. `fault_from_response` reads them all into one of the classes below,
keeping Intuit's transaction id (`intuit_tid`), which Intuit support asks for.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx

from qbo_pipeline.errors import PipelineError


class QuickBooksError(PipelineError):
    """Anything that went wrong talking to QuickBooks Online or Intuit's OAuth server."""

    def __init__(
        self, message: str, *, intuit_tid: str | None = None, transient: bool | None = None
    ) -> None:
        self.intuit_tid = intuit_tid
        suffix = f" (intuit_tid {intuit_tid})" if intuit_tid else ""
        super().__init__(f"{message}{suffix}", transient=transient)


class QuickBooksUnreachable(QuickBooksError):
    """No answer at all: refused, reset or timed out; the network or Intuit may recover."""

    transient = True

    def __init__(self, what: str, error: Exception) -> None:
        # httpx messages can quote the URL with its query; the class name says enough.
        super().__init__(f"cannot reach {what} ({type(error).__name__}); retry later")


@dataclass(frozen=True)
class FaultDetail:
    code: str
    message: str
    detail: str
    element: str | None = None


class QuickBooksFault(QuickBooksError):
    """A fault answered by the accounting API."""

    def __init__(
        self,
        summary: str,
        *,
        status: int,
        fault_type: str,
        errors: tuple[FaultDetail, ...],
        intuit_tid: str | None = None,
    ) -> None:
        self.status = status
        self.fault_type = fault_type
        self.errors = errors
        super().__init__(summary, intuit_tid=intuit_tid)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(error.code for error in self.errors)


class AuthenticationFailed(QuickBooksFault):
    """401: the access token is expired, revoked or malformed."""


class AuthorizationFailed(QuickBooksFault):
    """403: the token does not grant access to this company (3100), or wrong cluster."""


class ThrottleExceeded(QuickBooksFault):
    """429: over 500 requests a minute or 10 in flight for the realm."""

    transient = True

    def __init__(self, *args: object, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


class ValidationFault(QuickBooksFault):
    """4xx the request itself is wrong (bad query, stale SyncToken); retrying cannot help."""


class ObjectNotFound(ValidationFault):
    """610, or a 404: the entity or the company does not exist."""


class ServiceUnavailable(QuickBooksFault):
    """5xx: QBO failed; the request may succeed if sent again."""

    transient = True


class OAuthError(QuickBooksError):
    """An error answered by Intuit's token or revoke endpoint."""

    def __init__(
        self, error: str, description: str | None, *, status: int, intuit_tid: str | None = None
    ) -> None:
        self.error = error
        self.status = status
        text = f"Intuit OAuth error {error} (HTTP {status})"
        if description:
            text += f": {description}"
        # Intuit's token endpoint failing or throttling passes; a refusal (4xx) does not.
        super().__init__(text, intuit_tid=intuit_tid, transient=status >= 500 or status == 429)


class InvalidGrant(OAuthError):
    """The refresh token or authorization code is expired, revoked, rotated away or reused.

    Never retried: the company must be reconnected.
    """


class InvalidClient(OAuthError):
    """The client id or secret is wrong for this environment."""


def fault_from_response(response: httpx.Response, *, context: str = "") -> QuickBooksFault | None:
    """The fault a response carries, or None when it is a success without a Fault."""
    if response.status_code < 400 and not _may_hold_fault(response.content):
        return None  # a page of data: not worth parsing twice
    errors, fault_type = _parse_fault_body(response)
    status = response.status_code
    if errors is None and status < 400:
        return None
    if errors is None:
        text = response.text.strip().replace("\n", " ")[:200]
        errors = (FaultDetail(code=str(status), message=f"HTTP {status}", detail=text),)
        fault_type = "HTTP"
    return _classify(status, fault_type, errors, response, context)


def _classify(
    status: int,
    fault_type: str,
    errors: tuple[FaultDetail, ...],
    response: httpx.Response,
    context: str,
) -> QuickBooksFault:
    first = errors[0]
    described = "; ".join(
        f"{error.code} {error.message}" + (f": {error.detail}" if error.detail else "")
        for error in errors
    )
    summary = f"QuickBooks {fault_type} (HTTP {status})"
    if context:
        summary += f" for {context}"
    summary += f": {described}"
    tid = response.headers.get("intuit_tid")
    kwargs = {"status": status, "fault_type": fault_type, "errors": errors, "intuit_tid": tid}
    code = first.code.lstrip("0")
    if status == 429 or code == "3001" or "ThrottleExceeded" in first.message:
        retry_after = _retry_after(response)
        return ThrottleExceeded(summary, retry_after=retry_after, **kwargs)
    if status == 401 or fault_type in {"AUTHENTICATION", "AuthenticationFault"}:
        return AuthenticationFailed(summary, **kwargs)
    if status == 403 or code == "3100":
        return AuthorizationFailed(summary, **kwargs)
    if status == 404 or code == "610":
        return ObjectNotFound(summary, **kwargs)
    if status >= 500 or fault_type == "SystemFault":
        return ServiceUnavailable(summary, **kwargs)
    return ValidationFault(summary, **kwargs)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _may_hold_fault(body: bytes) -> bool:
    """Faults open with their marker (XML, `{"Fault"`, or the gateway's `"fault"` after a
    few null fields); a data page opens with its envelope."""
    head = body[:256].lstrip()
    return head.startswith(b"<") or b'"Fault"' in head or b'"fault"' in head


def _parse_fault_body(response: httpx.Response) -> tuple[tuple[FaultDetail, ...] | None, str]:
    body = response.content.strip()
    if not body:
        return None, ""
    if body.startswith(b"<"):
        return _parse_xml_fault(body)
    try:
        document = json.loads(body)
    except ValueError:
        return None, ""
    if not isinstance(document, dict):
        return None, ""
    if isinstance(document.get("Fault"), dict):
        fault = document["Fault"]
        errors = tuple(
            FaultDetail(
                code=str(error.get("code", "")),
                message=str(error.get("Message", "")),
                detail=str(error.get("Detail") or ""),
                element=error.get("element") or None,
            )
            for error in fault.get("Error", [])
        )
        return errors or None, str(fault.get("type", "Fault"))
    if isinstance(document.get("fault"), dict):
        fault = document["fault"]
        errors = tuple(
            FaultDetail(
                code=str(error.get("code", "")),
                message=str(error.get("message", "")),
                detail=str(error.get("detail") or ""),
                element=error.get("element") or None,
            )
            for error in fault.get("error", [])
        )
        return errors or None, str(fault.get("type", "fault"))
    return None, ""


def _parse_xml_fault(body: bytes) -> tuple[tuple[FaultDetail, ...] | None, str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None, ""
    fault = next((el for el in root.iter() if _local(el.tag) == "Fault"), None)
    if fault is None:
        return None, ""
    errors = []
    for error in (el for el in fault.iter() if _local(el.tag) == "Error"):
        texts = {_local(child.tag): (child.text or "").strip() for child in error}
        errors.append(
            FaultDetail(
                code=error.get("code", ""),
                message=texts.get("Message", ""),
                detail=texts.get("Detail", ""),
                element=error.get("element") or None,
            )
        )
    return tuple(errors) or None, fault.get("type", "Fault")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def oauth_error_from_response(response: httpx.Response) -> OAuthError:
    """The typed error for a failed token or revoke call; never includes the request body."""
    tid = response.headers.get("intuit_tid")
    try:
        document = response.json()
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    error = str(document.get("error") or f"http_{response.status_code}")
    description = document.get("error_description")
    cls = {"invalid_grant": InvalidGrant, "invalid_client": InvalidClient}.get(error, OAuthError)
    return cls(error, description, status=response.status_code, intuit_tid=tid)
