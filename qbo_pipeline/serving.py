"""Serving an ASGI app with uvicorn on a socket bound up front, in a thread or not.

Binding before uvicorn starts makes port 0 resolve to a known free port, so a caller can
put the real URL (an OAuth callback, a discovery document) into its settings before the
first request. The emulator and the auth service both run this way.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT = 30.0


def bind(host: str, port: int) -> socket.socket:
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


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ThreadedServer:
    """A bound socket and, once started, uvicorn serving an app on it."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, name: str = "server", lifespan="off"
    ) -> None:
        self.host = host
        self.name = name
        self._lifespan = lifespan
        self._socket = bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        self.base_url = url_of(host, self.port)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def _uvicorn(self, app: ASGIApp) -> uvicorn.Server:
        config = uvicorn.Config(app, log_level="warning", lifespan=self._lifespan, access_log=False)
        self._server = uvicorn.Server(config)
        return self._server

    def run(self, app: ASGIApp) -> None:
        """Serve in the foreground until interrupted."""
        try:
            self._uvicorn(app).run(sockets=[self._socket])
        finally:
            self._socket.close()

    def start(self, app: ASGIApp) -> ThreadedServer:
        """Serve from a daemon thread; returns once the server accepts connections."""
        server = self._uvicorn(app)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
