"""Webhook deliveries as Intuit sends them, for tests: CloudEvents and legacy bodies, signed.

The shapes follow Intuit's documented examples (QBO_API.md section 7: the webhooks
developer guide and the 2025-11-12 "upcoming change to webhooks payload structure" post).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from qbo_pipeline.quickbooks.webhooks import SIGNATURE_HEADER, sign

VERIFIER = "verifier-token-for-tests-0123456789"


@dataclass(frozen=True)
class Change:
    entity: str  # "Customer"
    entity_id: str
    verb: str  # created, updated, deleted, merged, voided
    deleted_id: str | None = None
    event_id: str = ""

    def with_id(self) -> Change:
        return Change(self.entity, self.entity_id, self.verb, self.deleted_id, str(uuid.uuid4()))


def cloudevents(realm_id: str, changes: list[Change]) -> bytes:
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    events = []
    for change in changes:
        event = {
            "specversion": "1.0",
            "id": change.event_id or str(uuid.uuid4()),
            "source": "intuit.test",
            "type": f"qbo.{change.entity.lower()}.{change.verb}.v1",
            "datacontenttype": "application/json",
            "time": now,
            "intuitentityid": change.entity_id,
            "intuitaccountid": realm_id,
            "data": {"deletedid": change.deleted_id} if change.deleted_id else {},
        }
        events.append(event)
    return json.dumps(events).encode()


_LEGACY_VERBS = {"created": "Create", "updated": "Update", "deleted": "Delete", "merged": "Merge",
                 "voided": "Void"}  # fmt: skip


def legacy(realm_id: str, changes: list[Change]) -> bytes:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    entities = []
    for change in changes:
        entity = {
            "name": change.entity,
            "id": change.entity_id,
            "operation": _LEGACY_VERBS[change.verb],
            "lastUpdated": stamp,
        }
        if change.deleted_id:
            entity["deletedId"] = change.deleted_id
        entities.append(entity)
    notifications = [{"realmId": realm_id, "dataChangeEvent": {"entities": entities}}]
    return json.dumps({"eventNotifications": notifications}).encode()


def deliver(
    url: str,
    body: bytes,
    *,
    verifier: str = VERIFIER,
    signature: str | None = None,
    content_type: str = "application/cloudevents+json",
) -> httpx.Response:
    """POST a delivery as Intuit does: the raw body, signed with the verifier token."""
    headers = {
        "content-type": content_type,
        SIGNATURE_HEADER: sign(body, verifier) if signature is None else signature,
    }
    return httpx.post(url, content=body, headers=headers, timeout=10)
