"""Running the emulator: in a background thread for tests, or blocking for the CLI."""

from __future__ import annotations

import contextlib
import gc
import logging
from types import TracebackType

import httpx

from qbo_pipeline.emulator.app import create_app
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.store import EmulatorState
from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.serving import ThreadedServer

log = logging.getLogger(__name__)


class EmulatorServer:
    """The emulator on a loopback port in a daemon thread, as a context manager."""

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ):
        self.config = config or EmulatorConfig()
        self.host = host
        self.app = create_app(self.config)
        # The lifespan starts the churn task when the config asks for one.
        self._server = ThreadedServer(host, port, name="QBO emulator", lifespan="on")
        self.port = self._server.port
        self.base_url = self._server.base_url
        self.discovery_url = f"{self.base_url}/.well-known/openid_configuration"
        self.api_base_url = self.base_url

    @property
    def state(self) -> EmulatorState:
        return self.app.state.emulator

    def start(self) -> EmulatorServer:
        self._server.start(self.app)
        httpx.get(f"{self.base_url}/_emulator/companies", timeout=5).raise_for_status()
        return self

    def stop(self) -> None:
        """Release stalled token requests first: uvicorn waits for every open request."""
        if self.state.token_stall.held:
            with contextlib.suppress(httpx.HTTPError):
                httpx.delete(f"{self.base_url}/_emulator/oauth/stall", timeout=5)
        self._server.stop()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _behaviour(config: EmulatorConfig) -> str:
    """One phrase for the log line: limits, latency, faults, churn and webhooks as configured."""
    limits = (
        f"limits {config.requests_per_minute}/min, {config.requests_per_second}/s, "
        f"{config.max_in_flight} in flight"
        if config.limits
        else "no limits"
    )
    parts = [limits, f"latency {config.latency_ms:g} ms per 1000 rows"]
    if config.faults:
        parts.append("faults " + ",".join(f"{k}={v:g}" for k, v in config.faults.items()))
    if config.churn:
        parts.append(f"churn {config.churn:g}/s")
    if config.webhook_url:
        target = httpx.URL(config.webhook_url).copy_with(query=None, fragment=None, userinfo=b"")
        parts.append(f"webhooks ({config.webhook_format}) to {target}")
    return "; ".join(parts)


def serve(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted; the CLI's `emulator` command."""
    config = config or EmulatorConfig()
    app = create_app(config)
    # The generated company lives as long as the process: a full collection over it holds
    # the event loop for some 70 ms (100k customers and 200k invoices), and every request
    # arriving meanwhile is counted late against the limits.
    gc.freeze()
    server = ThreadedServer(host, port, name="QBO emulator", lifespan="on")
    company = app.state.emulator.company
    counts = company.counts()
    log.info(
        "QBO emulator listening on %s (realm %s, %s, %d customers, %d invoices; %s)",
        server.base_url,
        company.realm_id,
        company.name,
        counts[CUSTOMER.name],
        counts[INVOICE.name],
        _behaviour(config),
    )
    server.run(app)
