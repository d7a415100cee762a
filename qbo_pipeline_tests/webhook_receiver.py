"""A chat webhook on loopback that records what it is sent, for alert tests."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    path: str
    status: int
    body: dict


@dataclass
class WebhookReceiver:
    """A chat webhook on 127.0.0.1: answers the scripted `statuses` in turn, then 200,
    and records every POST. Its URL carries a secret path, as Slack's do."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    secret_path: str = field(default_factory=lambda: f"/services/{secrets.token_urlsafe(12)}")
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + self.secret_path

    @property
    def delivered(self) -> list[dict]:
        return [r.body for r in self.requests if r.status == 200]

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.requests.append(Request(self.path, status, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
