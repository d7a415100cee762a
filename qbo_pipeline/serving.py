"""Serving an ASGI app with uvicorn on a socket bound up front, in a thread or not.

Binding before uvicorn starts makes port 0 resolve to a known free port, so a caller can
put the real URL (an OAuth callback, a discovery document) into its settings before the
first request. The emulator and the auth service both run this way.

uvicorn closes idle keep-alive connections but gives a request no deadline for its
headers, so a client trickling them a byte at a time (slowloris) holds a connection for
as long as it likes; `HeaderDeadline` closes such a connection after `header_timeout`.

With `Tls` files the server speaks HTTPS itself, for deployments without a proxy in
front, and refuses anything older than TLS 1.2 (Intuit's checklist for apps).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from qbo_pipeline.errors import ConfigurationError

START_TIMEOUT = 30.0
HEADER_TIMEOUT = 10.0  # seconds a request's line and headers may take to arrive


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's line and headers."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request on a kept-alive connection begins
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.header_timeout, self._overdue)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _overdue(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


@dataclass(frozen=True)
class Tls:
    """A PEM certificate (its chain after it) and its unencrypted private key."""

    cert: Path
    key: Path

    def check(self) -> None:
        """Load the pair once now, so a wrong path or a key of another certificate stops the
        start-up with one line rather than every handshake."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert, self.key)
        except FileNotFoundError as error:
            raise ConfigurationError(
                f"--tls-cert/--tls-key: {error.filename} does not exist; give the paths of a "
                "PEM certificate and its private key"
            ) from None
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(
                f"--tls-cert {self.cert} and --tls-key {self.key} are not a PEM certificate "
                f"and its unencrypted private key ({error.strerror or error}); check that "
                "the key is the certificate's own"
            ) from None


class _Config(uvicorn.Config):
    """uvicorn's settings, with TLS 1.2 the oldest protocol its context accepts."""

    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2


def with_header_timeout(seconds: float) -> type[HeaderDeadline]:
    return type("HeaderDeadline", (HeaderDeadline,), {"header_timeout": seconds})


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {error.strerror}; choose another --port or stop "
            "what holds it"
        ) from None
    sock.listen(128)  # connections queue from now on, even before uvicorn accepts them
    return sock


def url_of(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class ThreadedServer:
    """A bound socket and, once started, uvicorn serving an app on it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "server",
        lifespan: str = "off",
        header_timeout: float = HEADER_TIMEOUT,
        tls: Tls | None = None,
    ) -> None:
        if tls is not None:
            tls.check()
        self.host = host
        self._tls = tls
        self.name = name
        self._lifespan = lifespan
        self._protocol = with_header_timeout(header_timeout)
        self._socket = bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        self.base_url = url_of(host, self.port, "https" if tls else "http")
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def _uvicorn(self, app: ASGIApp) -> uvicorn.Server:
        config = _Config(
            app,
            log_level="warning",
            lifespan=self._lifespan,
            access_log=False,
            http=self._protocol,
            server_header=False,
            ssl_certfile=self._tls.cert if self._tls else None,
            ssl_keyfile=self._tls.key if self._tls else None,
        )
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
