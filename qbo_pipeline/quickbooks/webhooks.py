"""Intuit's webhook deliveries: the signature, and the two body formats, as events.

A delivery is authentic when its `intuit-signature` header is base64(HMAC-SHA256(raw body))
keyed with the app's verifier token; nothing else about it is trusted before that.
Intuit sends two formats (QBO_API.md section 7): the CloudEvents array it moved every app
to in 2026, and the legacy `eventNotifications` object. Both become `WebhookEvent`s.

A delivery that is not JSON, or not either shape, raises `UndeliverableBody`; an element
that lacks what an event needs becomes a `RejectedEvent` beside the good ones, so one bad
element never costs the rest of the delivery. Intuit retries a whole delivery that is not
answered 200, so the receiver stores rejects and answers 200 all the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qbo_pipeline.errors import PipelineError
from qbo_pipeline.quickbooks.realms import is_realm_id
from qbo_pipeline.quickbooks.timestamps import parse_instant

SIGNATURE_HEADER = "intuit-signature"
# QBO's verbs, past tense as CloudEvents spells them; the legacy format's are mapped here.
# Spellings seen in the wild differ ("void" and "voided"), so both are read.
_VERBS = {
    "create": "created",
    "created": "created",
    "update": "updated",
    "updated": "updated",
    "delete": "deleted",
    "deleted": "deleted",
    "merge": "merged",
    "merged": "merged",
    "void": "voided",
    "voided": "voided",
    "emailed": "emailed",
}
KNOWN_OPERATIONS = frozenset(_VERBS.values())
_CLOUDEVENT_TYPE = re.compile(r"qbo\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.v\d+")
_ENTITY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_ENTITY_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
# A CloudEvents id is any non-empty string (UUIDs in practice); control characters and
# lone surrogates (which json.loads lets through) cannot be stored, so they make a reject.
_EVENT_ID_LIMIT = 256
_UNSTORABLE = {"Cc", "Cs"}
# QBO did not exist before 2000; a stamp outside these years is garbage, and near year 1 or
# 9999 it would not even survive a conversion to UTC.
_YEARS = range(2000, 2200)
# Elements rejected one by one per delivery; the rest are summed up in one more row, so a
# signed body of a million bad elements cannot write a million rows.
MAX_REJECTS = 100


class UndeliverableBody(PipelineError):
    """The body is not a webhook delivery at all (not JSON, or neither format)."""


@dataclass(frozen=True)
class WebhookEvent:
    """One change Intuit reported.

    `event_id` is what makes a redelivery recognisable: the CloudEvents `id`, or for the
    legacy format (which has none) a digest of realm, entity, id, operation and stamp.
    `entity` is lower-case ("invoice"), as CloudEvents spells it; `operation` is one of
    KNOWN_OPERATIONS or the verb as sent; `deleted_id` is the id a merge absorbed.
    """

    event_id: str
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: datetime | None
    deleted_id: str | None = None


@dataclass(frozen=True)
class RejectedEvent:
    """An element of a delivery that is not an event this receiver understands."""

    event_id: str
    reason: str
    realm_id: str | None = None


def sign(body: bytes, verifier_token: str) -> str:
    """The `intuit-signature` Intuit sends with `body`."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_matches(body: bytes, signature: str | None, verifier_token: str) -> bool:
    """Whether `signature` is the body's, compared in constant time."""
    if not signature:
        return False
    return hmac.compare_digest(sign(body, verifier_token).encode(), signature.strip().encode())


def parse_delivery(body: bytes) -> list[WebhookEvent | RejectedEvent]:
    """The events of a delivery in either format; see the module docstring."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UndeliverableBody("the body is not UTF-8 JSON") from None
    digest = body_digest(body)
    if isinstance(document, list):
        events = [_cloudevent(element, index, digest) for index, element in enumerate(document)]
    elif isinstance(document, dict) and "eventNotifications" in document:
        events = list(_legacy(document["eventNotifications"], digest))
    elif isinstance(document, dict) and "specversion" in document:
        events = [_cloudevent(document, 0, digest)]  # a single event sent without its array
    else:
        raise UndeliverableBody(
            "the body is neither a CloudEvents array nor a legacy eventNotifications object"
        )
    return _capped_rejects(events, digest)


def body_digest(body: bytes) -> str:
    """What names a body's rejects: the same delivery sent again names them the same."""
    return hashlib.sha256(body).hexdigest()[:32]


def _capped_rejects(
    events: list[WebhookEvent | RejectedEvent], digest: str
) -> list[WebhookEvent | RejectedEvent]:
    rejected = [event for event in events if isinstance(event, RejectedEvent)]
    if len(rejected) <= MAX_REJECTS:
        return events
    extra = set(map(id, rejected[MAX_REJECTS:]))
    kept = [event for event in events if id(event) not in extra]
    summary = f"and {len(extra)} more elements rejected in the same delivery"
    return [*kept, RejectedEvent(f"rejected:{digest}:more", summary)]


def _cloudevent(element: Any, index: int, digest: str) -> WebhookEvent | RejectedEvent:
    if not isinstance(element, dict):
        return _rejected(digest, index, "a CloudEvents element is not an object")
    event_id = element.get("id")
    if not _usable_event_id(event_id):
        return _rejected(digest, index, "a CloudEvents element has no usable id")
    realm_id = element.get("intuitaccountid")
    if not is_realm_id(realm_id):
        return RejectedEvent(event_id, "intuitaccountid is missing or not a realm id")
    event_type = element.get("type")
    match = _CLOUDEVENT_TYPE.fullmatch(event_type) if isinstance(event_type, str) else None
    if match is None:
        return RejectedEvent(
            event_id, f"type {_shown(element.get('type'))} is not qbo.<entity>.<verb>.vN", realm_id
        )
    entity, verb = match.groups()
    entity_id = element.get("intuitentityid")
    if not isinstance(entity_id, str) or not _ENTITY_ID.fullmatch(entity_id):
        return RejectedEvent(event_id, "intuitentityid is missing or malformed", realm_id)
    data = element.get("data")
    deleted_id = data.get("deletedid") if isinstance(data, dict) else None
    return _event(event_id, realm_id, entity, entity_id, verb, element.get("time"), deleted_id)


def _usable_event_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= _EVENT_ID_LIMIT
        and not any(unicodedata.category(char) in _UNSTORABLE for char in value)
    )


def _legacy(notifications: Any, digest: str) -> Iterator[WebhookEvent | RejectedEvent]:
    if not isinstance(notifications, list):
        yield _rejected(digest, 0, "eventNotifications is not a list")
        return
    for position, notification in enumerate(notifications):
        realm_id = notification.get("realmId") if isinstance(notification, dict) else None
        if not is_realm_id(realm_id):
            yield _rejected(digest, position, "an eventNotification has no usable realmId")
            continue
        change = notification.get("dataChangeEvent")
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list):
            yield _rejected(digest, position, "dataChangeEvent.entities is not a list", realm_id)
            continue
        for index, element in enumerate(entities):
            yield _legacy_event(element, realm_id, digest, f"{position}.{index}")


def _legacy_event(
    element: Any, realm_id: str, digest: str, where: str
) -> WebhookEvent | RejectedEvent:
    if not isinstance(element, dict):
        return _rejected(digest, where, "a dataChangeEvent entity is not an object", realm_id)
    name, entity_id = element.get("name"), element.get("id")
    operation, stamp = element.get("operation"), element.get("lastUpdated")
    if not isinstance(name, str) or not _ENTITY_NAME.fullmatch(name):
        return _rejected(digest, where, "a dataChangeEvent entity has no usable name", realm_id)
    if not isinstance(entity_id, str) or not _ENTITY_ID.fullmatch(entity_id):
        return _rejected(digest, where, "a dataChangeEvent entity has no usable id", realm_id)
    if not isinstance(operation, str) or not _ENTITY_NAME.fullmatch(operation):
        return _rejected(
            digest, where, "a dataChangeEvent entity has no usable operation", realm_id
        )
    deleted_id = element.get("deletedId", element.get("deletedID", element.get("DeletedId")))
    # The legacy format has no event id: the same change redelivered has the same tuple.
    key = json.dumps([realm_id, name.lower(), entity_id, operation.lower(), str(stamp)])
    event_id = "legacy:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return _event(event_id, realm_id, name.lower(), entity_id, operation.lower(), stamp, deleted_id)


def _event(
    event_id: str,
    realm_id: str,
    entity: str,
    entity_id: str,
    verb: str,
    stamp: Any,
    deleted_id: Any,
) -> WebhookEvent | RejectedEvent:
    occurred_at = None
    if isinstance(stamp, str) and len(stamp) <= 64:
        try:
            occurred_at = parse_instant(stamp).astimezone(UTC)
        except (ValueError, OverflowError):
            return RejectedEvent(event_id, f"time {_shown(stamp)} is not a timestamp", realm_id)
        if occurred_at.year not in _YEARS:
            return RejectedEvent(event_id, f"time {_shown(stamp)} is out of range", realm_id)
    if deleted_id is not None and not (
        isinstance(deleted_id, str) and _ENTITY_ID.fullmatch(deleted_id)
    ):
        return RejectedEvent(event_id, "the merge's deleted id is malformed", realm_id)
    return WebhookEvent(
        event_id=event_id,
        realm_id=realm_id,
        entity=entity.lower(),
        entity_id=entity_id,
        operation=_VERBS.get(verb.lower(), verb.lower()),
        occurred_at=occurred_at,
        deleted_id=deleted_id,
    )


def _rejected(
    digest: str, where: int | str, reason: str, realm_id: str | None = None
) -> RejectedEvent:
    """A reject with no id of its own is named after the body and its place in it, so the
    same delivery sent again is stored once."""
    return RejectedEvent(f"rejected:{digest}:{where}", reason, realm_id)


def _shown(value: Any) -> str:
    """A field as a reason may quote it: short, escaped, never a huge value's repr."""
    if isinstance(value, str):
        return repr(value[:60])
    return f"a {type(value).__name__}"
