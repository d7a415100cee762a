"""`qbo-pipeline serve`: the HTTP service with the `/quickbooks/auth/` endpoints."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    from qbo_pipeline.service.server import serve

    serve(args.host, args.port)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve", help="serve the OAuth connect flow and the auth endpoints (needs QBO_ADMIN_TOKEN)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=_serve)
