"""The accounting API client for one company (realm): query, count, get.

Every request goes through the realm's limiter, retries transient failures with
exponential backoff and jitter (honouring Retry-After), and on a 401 asks its token
source for a fresh token once before giving up. Faults of every shape become the typed
errors of `faults`. Its waits between attempts go through `sleep`, so tests can see
exactly how long it waited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar
from urllib.parse import quote

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from qbo_pipeline.errors import is_transient
from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.faults import (
    AuthenticationFailed,
    QuickBooksError,
    QuickBooksUnreachable,
    ThrottleExceeded,
    fault_from_response,
)
from qbo_pipeline.quickbooks.limiter import DEFAULT_LIMITS, Limits, RealmLimiter, limiter_for
from qbo_pipeline.quickbooks.timestamps import format_qbo, parse_instant

log = logging.getLogger(__name__)

MINOR_VERSION = 75
_LONG_QUERY = 1500  # longer statements go in a POST body rather than the URL

T = TypeVar("T")
Read = Callable[[bytes], T]


class TokenSource(Protocol):
    """Where the client gets bearer tokens; the vault's provider, bound to one realm."""

    def access_token(self) -> str: ...

    def refresh_after_unauthorized(self, rejected: str) -> str | None:
        """A new token after QBO refused `rejected`; None when there is no other."""
        ...


class FixedToken:
    """One access token, never refreshed: for checking a grant before it is stored."""

    def __init__(self, access_token: str) -> None:
        self._access_token = access_token

    def __repr__(self) -> str:
        return "FixedToken()"

    def access_token(self) -> str:
        return self._access_token

    def refresh_after_unauthorized(self, rejected: str) -> None:
        return None  # QBO's 401 stands: asking again would only spend another call


class TruncatedResponse(QuickBooksError):
    """A 200 whose body is not complete JSON: the connection dropped mid-body."""

    transient = True


@dataclass(frozen=True)
class QueryPage:
    entities: list[dict]
    start_position: int | None
    max_results: int | None
    server_time: datetime | None  # the envelope's `time`: QBO's clock, not ours


@dataclass(frozen=True)
class ChangeSet:
    """A CDC answer: per entity name, changed entities and `status: Deleted` stubs."""

    changed: dict[str, list[dict]]
    server_time: datetime | None

    def deleted(self, entity: Entity) -> list[tuple[str, datetime]]:
        """(Id, deletion instant) of the entity's deleted objects."""
        return [
            (row["Id"], parse_instant(row["MetaData"]["LastUpdatedTime"]))
            for row in self.changed.get(entity.name, [])
            if row.get("status") == "Deleted"
        ]


def _document(body: bytes) -> dict:
    """A JSON object; anything else is a response cut short (ValueError)."""
    document = orjson.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def _on_written(sent: Callable[[], None]) -> Callable[[str, dict], None]:
    """An httpcore trace hook that marks the request sent once its body is written, the
    instant nearest QBO's count that the client can see (see the limiter's docstring)."""

    def trace(event: str, info: dict) -> None:
        if event.endswith(".send_request_body.complete"):
            sent()

    return trace


def _backoff(initial: float, maximum: float) -> Callable[[RetryCallState], float]:
    """Exponential with jitter; after a throttle, the Retry-After QBO sent (capped at
    `maximum`), since retrying sooner only earns another 429."""
    exponential = wait_exponential_jitter(multiplier=initial, max=maximum)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ThrottleExceeded) and error.retry_after is not None:
            return min(error.retry_after, maximum)
        return exponential(state)

    return wait


class QuickBooksClient:
    def __init__(
        self,
        *,
        base_url: str,
        realm_id: str,
        tokens: TokenSource,
        http: httpx.Client | None = None,
        limiter: RealmLimiter | None = None,
        limits: Limits = DEFAULT_LIMITS,
        timeout: float = 120.0,
        max_attempts: int = 8,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm_id = realm_id
        self._tokens = tokens
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=timeout, limits=httpx.Limits(max_connections=limits.max_in_flight * 2)
        )
        self.limiter = limiter or limiter_for(self.base_url, realm_id, limits)
        self._retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=_backoff(backoff_initial, backoff_max),
            stop=stop_after_attempt(max_attempts),
            sleep=sleep,
            reraise=True,
            before_sleep=self._log_retry,
        )

    def __repr__(self) -> str:
        return f"QuickBooksClient(base_url={self.base_url!r}, realm_id={self.realm_id!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> QuickBooksClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def company_url(self) -> str:
        return f"{self.base_url}/v3/company/{self.realm_id}"

    def query(self, statement: str) -> QueryPage:
        """One query statement, one page of entities as QBO returns them."""
        document = self._request_json("query", statement)
        response = document.get("QueryResponse", {})
        entities = next((v for v in response.values() if isinstance(v, list)), [])
        stamp = document.get("time")
        return QueryPage(
            entities=entities,
            start_position=response.get("startPosition"),
            max_results=response.get("maxResults"),
            server_time=parse_instant(stamp) if isinstance(stamp, str) else None,
        )

    def query_body(self, statement: str, read: Read[T]) -> T:
        """One query statement's answer, as `read` makes of the bytes QBO sent.

        `read` runs inside the retries: a body it cannot parse (ValueError) is a response
        cut short, and is asked for again."""
        return self._request("query", statement, {}, read)

    def cdc(self, entities: Sequence[Entity], changed_since: datetime) -> ChangeSet:
        """Entities changed since an instant (at most 30 days back), deletions included.

        QBO answers at most 1000 objects per call, oldest first; a full answer means there
        may be more after the last LastUpdatedTime returned.
        """
        params = {
            "entities": ",".join(entity.name for entity in entities),
            "changedSince": format_qbo(changed_since),
        }
        document = self._request_json("cdc", None, params)
        changed: dict[str, list[dict]] = {entity.name: [] for entity in entities}
        for block in document.get("CDCResponse", []):
            for response in block.get("QueryResponse", []):
                for name, rows in response.items():
                    if isinstance(rows, list):
                        changed.setdefault(name, []).extend(rows)
        stamp = document.get("time")
        return ChangeSet(
            changed=changed,
            server_time=parse_instant(stamp) if isinstance(stamp, str) else None,
        )

    def count(self, entity: Entity, where: str = "") -> int:
        statement = f"SELECT COUNT(*) FROM {entity.name}" + (f" WHERE {where}" if where else "")
        document = self._request_json("query", statement)
        return int(document.get("QueryResponse", {}).get("totalCount", 0))

    def company_info(self) -> dict:
        """The company's CompanyInfo: whose data this realm's token opens."""
        document = self._request_json(f"companyinfo/{quote(self.realm_id)}", None)
        return document.get("CompanyInfo") or {}

    def report(self, name: str, params: dict[str, str]) -> dict:
        """One report (reports.REPORTS) for the parameters of one period."""
        return self._request_json(f"reports/{quote(name)}", None, params)

    def get(self, entity: Entity, entity_id: str) -> dict:
        document = self._request_json(f"{entity.resource}/{quote(entity_id)}", None)
        return document[entity.name]

    def _request_json(
        self, path: str, statement: str | None, params: dict[str, str] | None = None
    ) -> dict:
        return self._request(path, statement, params or {}, _document)

    def _request(
        self, path: str, statement: str | None, params: dict[str, str], read: Read[T]
    ) -> T:
        context = statement if statement is not None else f"GET {path}"
        if params:
            context += " " + " ".join(f"{k}={v}" for k, v in params.items())
        return self._retrying(self._authorised_request, path, statement, context, params, read)

    def _authorised_request(
        self, path: str, statement: str | None, context: str, extra: dict[str, str], read: Read[T]
    ) -> T:
        token = self._tokens.access_token()
        try:
            body = self._send(path, statement, token, context, extra)
        except AuthenticationFailed:
            fresh = self._tokens.refresh_after_unauthorized(token)
            if fresh is None:
                raise
            log.info("realm %s: access token rejected, refreshed once", self.realm_id)
            try:
                body = self._send(path, statement, fresh, context, extra)
            except AuthenticationFailed as error:
                raise AuthenticationFailed(
                    f"QuickBooks rejected the access token of realm {self.realm_id} again after "
                    "a refresh; reconnect the company with `qbo-pipeline auth authorize`",
                    status=error.status,
                    fault_type=error.fault_type,
                    errors=error.errors,
                    intuit_tid=error.intuit_tid,
                ) from None
        try:
            return read(body)
        except ValueError:
            raise TruncatedResponse(
                f"QuickBooks sent an incomplete response for {context}"
            ) from None

    def _send(
        self, path: str, statement: str | None, token: str, context: str, extra: dict[str, str]
    ) -> bytes:
        """The body of a successful answer; a fault raises."""
        url = f"{self.company_url}/{path}"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        params: dict[str, str] = {**extra, "minorversion": str(MINOR_VERSION)}
        with self.limiter.slot() as sent:
            extensions = {"trace": _on_written(sent)}
            try:
                if statement is not None and len(statement) > _LONG_QUERY:
                    headers["Content-Type"] = "application/text"
                    response = self._http.post(
                        url,
                        params=params,
                        headers=headers,
                        content=statement,
                        extensions=extensions,
                    )
                else:
                    if statement is not None:
                        params["query"] = statement
                    response = self._http.get(
                        url, params=params, headers=headers, extensions=extensions
                    )
            except httpx.TransportError as error:
                raise QuickBooksUnreachable(f"QuickBooks at {self.base_url}", error) from error
        fault = fault_from_response(response, context=context)
        if isinstance(fault, ThrottleExceeded):
            self.limiter.throttled()
        if fault is not None:
            raise fault
        return response.content

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "realm %s: attempt %d failed (%s); retrying in %.1f s",
            self.realm_id,
            state.attempt_number,
            str(error).splitlines()[0] if error else "unknown",
            state.next_action.sleep if state.next_action else 0.0,
        )
