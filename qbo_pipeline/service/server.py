"""Running the service: `qbo-pipeline serve` in the foreground, or a thread for tests.

The socket is bound before uvicorn starts, so port 0 resolves to a known free port and a
test can put the real callback URL into the settings before the first request.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

import uvicorn
from starlette.applications import Starlette

from qbo_pipeline.service.app import create_app
from qbo_pipeline.service.security import require_admin_token
from qbo_pipeline.settings import Settings
from qbo_pipeline.sync.runtime import Runtime

START_TIMEOUT = 30.0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)  # connections queue from now on, even before uvicorn accepts them
    return sock


class ServiceServer:
    """A bound socket and, once started, uvicorn serving an app on it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ServiceServer({self.base_url!r})"

    def _uvicorn(self, app: Starlette) -> uvicorn.Server:
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        return self._server

    def run(self, app: Starlette) -> None:
        """Serve in the foreground until interrupted."""
        try:
            self._uvicorn(app).run(sockets=[self._socket])
        finally:
            self._socket.close()

    def start(self, app: Starlette) -> ServiceServer:
        """Serve from a daemon thread; returns once the server accepts connections."""
        server = self._uvicorn(app)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the qbo-pipeline service did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """`qbo-pipeline serve`: check the configuration up front, then serve until stopped.

    Refuses to start without QBO_ADMIN_TOKEN, and opens the token store (and its key)
    before listening, so a bad deployment fails with one line instead of on a request.
    """
    settings = settings or Settings.from_env()
    require_admin_token(settings.admin_token)
    runtime = Runtime(settings)
    runtime.store  # noqa: B018 - opens the database and reads the key now
    app = create_app(runtime)
    server = ServiceServer(host, port)
    print(
        f"qbo-pipeline service on {server.base_url}/quickbooks/auth/ "
        f"(OAuth callback registered as {settings.redirect_uri})",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run(app)
    finally:
        runtime.close()
