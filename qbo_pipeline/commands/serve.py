"""`qbo-pipeline serve`: the HTTP service with the `/quickbooks/auth/` endpoints."""

from __future__ import annotations

import argparse
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from qbo_pipeline.service.server import serve
    from qbo_pipeline.serving import Tls

    if (args.tls_cert is None) != (args.tls_key is None):
        args.parser.error("--tls-cert and --tls-key go together: give both, or neither")
    tls = Tls(args.tls_cert, args.tls_key) if args.tls_cert else None
    serve(args.host, args.port, tls=tls)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve", help="serve the OAuth connect flow and the auth endpoints (needs QBO_ADMIN_TOKEN)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="serve HTTPS (TLS 1.2 or later) with this PEM certificate, for deployments "
        "without a TLS proxy in front; needs --tls-key",
    )
    serve.add_argument(
        "--tls-key", type=Path, metavar="FILE", help="the certificate's unencrypted private key"
    )
    serve.set_defaults(handler=_serve, parser=serve)
