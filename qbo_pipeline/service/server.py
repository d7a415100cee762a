"""Running the service: `qbo-pipeline serve` in the foreground, or a thread for tests.

The socket is bound before the app exists (`qbo_pipeline.serving`), so port 0 resolves
to a known free port and the real callback URL can go into the settings first.
"""

from __future__ import annotations

import sys

from qbo_pipeline.runtime import Runtime
from qbo_pipeline.service.app import create_app
from qbo_pipeline.service.security import require_admin_token
from qbo_pipeline.service.webhooks import WEBHOOKS_PATH
from qbo_pipeline.serving import HEADER_TIMEOUT, ThreadedServer, Tls
from qbo_pipeline.settings import Settings


class ServiceServer(ThreadedServer):
    """The auth service's socket, bound now; `start(app)` or `run(app)` serve it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        tls: Tls | None = None,
    ) -> None:
        super().__init__(
            host, port, name="qbo-pipeline service", header_timeout=header_timeout, tls=tls
        )


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: Settings | None = None,
    tls: Tls | None = None,
) -> None:
    """`qbo-pipeline serve`: check the configuration up front, then serve until stopped.

    Refuses to start without QBO_ADMIN_TOKEN, and opens the token store (and its key) and
    the TLS files (ServiceServer loads them) before listening, so a bad deployment fails
    with one line instead of on a request.
    """
    settings = settings or Settings.from_env()
    require_admin_token(settings.admin_token)
    runtime = Runtime(settings)
    runtime.store  # noqa: B018 - opens the database and reads the key now
    app = create_app(runtime)
    server = ServiceServer(host, port, tls=tls)
    webhooks = (
        f"QuickBooks webhooks at {server.base_url}{WEBHOOKS_PATH}"
        if settings.webhook_verifier_token
        else "webhooks off (QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN is not set)"
    )
    print(
        f"qbo-pipeline service on {server.base_url}/quickbooks/auth/ "
        f"(OAuth callback registered as {settings.redirect_uri}); {webhooks}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run(app)
    finally:
        runtime.close()
