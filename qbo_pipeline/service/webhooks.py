"""`POST /quickbooks/webhooks`: Intuit's change notifications, stored before they are answered.

Authenticated by the delivery's `intuit-signature` (HMAC-SHA256 of the raw body with the
app's verifier token), not by the admin token: Intuit cannot send one. A missing or wrong
signature is a 401 and stores nothing. A signed delivery is stored whole in the webhook
inbox, then answered 200 with what was stored; a body that is signed but not understood
is stored as rejected and answered 200 too, since Intuit retries a whole delivery on any
other answer and a retry can never fix it. Syncing happens later, in Dagster
(`qbo_webhook_sensor`), so the answer never waits for QuickBooks and comes well inside
the 3 seconds Intuit allows.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.inbox import Receipt, WebhookInbox
from qbo_pipeline.quickbooks.webhooks import (
    SIGNATURE_HEADER,
    RejectedEvent,
    UndeliverableBody,
    body_digest,
    parse_delivery,
    signature_matches,
)
from qbo_pipeline.service.bodies import read_body
from qbo_pipeline.service.errors import NO_STORE, answers_errors

log = logging.getLogger(__name__)

WEBHOOKS_PATH = "/quickbooks/webhooks"
# Intuit batches changes; a thousand CloudEvents are about 400 KB.
MAX_DELIVERY = 2 * 1024 * 1024


@answers_errors()
async def receive(request: Request) -> Response:
    verifier: str | None = request.app.state.webhook_verifier
    if not verifier:
        raise ConfigurationError(
            "webhooks are off: set QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN to your Intuit app's "
            "verifier token (developer.intuit.com > your app > Webhooks) and restart"
        )
    body = await read_body(request, MAX_DELIVERY)
    if not signature_matches(body, request.headers.get(SIGNATURE_HEADER), verifier):
        log.warning("webhook delivery refused: missing or wrong %s", SIGNATURE_HEADER)
        return JSONResponse(
            {"error": f"missing or wrong {SIGNATURE_HEADER}; nothing was stored"},
            status_code=401,
            headers=NO_STORE,
        )
    inbox: WebhookInbox = request.app.state.runtime.inbox
    receipt = await run_in_threadpool(_store, inbox, body)
    log.info(
        "webhook delivery: %d events stored, %d already known, %d rejected",
        receipt.stored,
        receipt.duplicates,
        receipt.rejected,
    )
    return JSONResponse(
        {"stored": receipt.stored, "duplicates": receipt.duplicates, "rejected": receipt.rejected},
        headers=NO_STORE,
    )


def _store(inbox: WebhookInbox, body: bytes) -> Receipt:
    try:
        events = parse_delivery(body)
    except UndeliverableBody as error:
        events = [RejectedEvent(f"rejected:{body_digest(body)}", str(error))]
    return inbox.store(events)


routes = [Route(WEBHOOKS_PATH, receive, methods=["POST"])]
