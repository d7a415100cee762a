"""Running the emulator: in a background thread for tests, or blocking for the CLI."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType

import httpx
import uvicorn

from qbo_pipeline.emulator.app import create_app
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.store import EmulatorState
from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE

log = logging.getLogger(__name__)
START_TIMEOUT = 30.0


def _bind(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts so port 0 resolves to a known free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class EmulatorServer:
    """The emulator on a loopback port in a daemon thread, as a context manager."""

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ):
        self.config = config or EmulatorConfig()
        self.host = host
        self.app = create_app(self.config)
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        self.base_url = _url(host, self.port)
        self.discovery_url = f"{self.base_url}/.well-known/openid_configuration"
        self.api_base_url = self.base_url
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False)
        )
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> EmulatorState:
        return self.app.state.emulator

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"QBO emulator did not start on {self.base_url}")
            time.sleep(0.01)
        httpx.get(f"{self.base_url}/_emulator/companies", timeout=5).raise_for_status()
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

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
    """One phrase for the log line: limits, latency, faults and churn as configured."""
    limits = (
        f"limits {config.requests_per_minute}/min, {config.max_in_flight} in flight"
        if config.limits
        else "no limits"
    )
    parts = [limits, f"latency {config.latency_ms:g} ms per 1000 rows"]
    if config.faults:
        parts.append("faults " + ",".join(f"{k}={v:g}" for k, v in config.faults.items()))
    if config.churn:
        parts.append(f"churn {config.churn:g}/s")
    return "; ".join(parts)


def serve(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted; the CLI's `emulator` command."""
    config = config or EmulatorConfig()
    app = create_app(config)
    sock = _bind(host, port)
    company = app.state.emulator.company
    counts = company.counts()
    log.info(
        "QBO emulator listening on %s (realm %s, %d customers, %d invoices; %s)",
        _url(host, sock.getsockname()[1]),
        company.realm_id,
        counts[CUSTOMER.name],
        counts[INVOICE.name],
        _behaviour(config),
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
