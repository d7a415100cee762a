"""`qbo-pipeline auth ...`: connect, inspect, refresh and revoke companies from a shell.

The same operations as the service's `/quickbooks/auth/` endpoints, through the same
`Companies` object, so a connection made here is the one the service and the pipeline
see. Output shows expiries and fingerprints, never a token.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qbo_pipeline.companies import Companies

STATUS_FIELDS = (
    "realmId",
    "status",
    "needsReauth",
    "isExpired",
    "accessTokenExpiresAt",
    "refreshTokenExpiresAt",
    "refreshTokenHardExpiresAt",
    "lastRefreshAt",
    "lastError",
    "accessTokenFingerprint",
    "refreshTokenFingerprint",
    "keyId",
    "connectedAt",
    "updatedAt",
)


def _companies() -> Companies:
    from qbo_pipeline.companies import Companies
    from qbo_pipeline.runtime import Runtime

    return Companies(Runtime.from_env())


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_status(status: dict[str, Any]) -> str:
    names = [name for name in STATUS_FIELDS if name in status]
    width = max(len(name) for name in names)
    return "\n".join(f"{name:<{width}}  {_shown(status[name])}" for name in names)


def _authorize(args: argparse.Namespace) -> int:
    from qbo_pipeline.companies import instant

    authorization = _companies().begin_authorization(args.realm)
    whom = (
        f"company {args.realm} (the link completes for it alone)"
        if args.realm
        else ("the company to connect")
    )
    print(
        f"Open this link in a browser, sign in to QuickBooks and choose {whom}. It works once, "
        f"until {instant(authorization.expires_at)}; Intuit then "
        "redirects to the callback of `qbo-pipeline serve` (or paste the code and realmId "
        "into `qbo-pipeline auth exchange-code`):"
    )
    print(authorization.url)
    return 0


def _exchange_code(args: argparse.Namespace) -> int:
    status = _companies().exchange_code(args.code, args.realm)
    until = status["accessTokenExpiresAt"]
    name = f" ({status['companyName']})" if status.get("companyName") else ""
    print(f"connected realm {args.realm}{name}; access token valid until {until}")
    return 0


def _set_tokens(args: argparse.Namespace) -> int:
    _companies().set_tokens(
        args.realm, args.access_token, args.refresh_token, expires_in=args.expires_in
    )
    print(f"stored encrypted tokens for realm {args.realm}")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    status = _companies().refresh(args.realm, args.refresh_token)
    print(
        f"refreshed realm {args.realm}; access token valid until "
        f"{status['accessTokenExpiresAt']} (refresh token {status['refreshTokenFingerprint']})"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _companies().status(args.realm)
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    _companies().revoke(args.realm)
    print(f"revoked realm {args.realm} at Intuit; the connection is marked revoked")
    return 0


def _list(args: argparse.Namespace) -> int:
    listing = _companies().list()
    if args.json:
        print(json.dumps(listing, indent=2))
    elif not listing:
        print("no connected QuickBooks companies")
    else:
        print(f"{'realm':<20} {'status':<13} {'access token until':<21} {'last refresh':<21}")
        for item in listing:
            print(
                f"{item['realmId']:<20} {item['status']:<13} "
                f"{item['accessTokenExpiresAt']:<21} {_shown(item['lastRefreshAt']):<21}"
            )
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    auth = commands.add_parser("auth", help="connect and manage QuickBooks companies")
    sub = auth.add_subparsers(dest="auth_command", required=True)

    authorize = sub.add_parser("authorize", help="print a link that connects a company")
    authorize.add_argument(
        "--realm", help="reconnect this company: the link then completes for it alone"
    )
    authorize.set_defaults(handler=_authorize)

    exchange = sub.add_parser("exchange-code", help="trade an authorization code for tokens")
    exchange.add_argument("--code", required=True)
    exchange.add_argument("--realm", required=True)
    exchange.set_defaults(handler=_exchange_code)

    set_tokens = sub.add_parser("set-tokens", help="store existing tokens, encrypted")
    set_tokens.add_argument("--realm", required=True)
    set_tokens.add_argument("--access-token", required=True)
    set_tokens.add_argument("--refresh-token", required=True)
    set_tokens.add_argument(
        "--expires-in", type=int, default=0, help="seconds the access token has left (0: refresh)"
    )
    set_tokens.set_defaults(handler=_set_tokens)

    refresh = sub.add_parser("refresh", help="refresh a company's tokens now")
    refresh.add_argument("--realm", required=True)
    refresh.add_argument("--refresh-token", help="use this refresh token instead of the stored one")
    refresh.set_defaults(handler=_refresh)

    status = sub.add_parser("status", help="a company's token expiries, status and last error")
    status.add_argument("--realm", required=True)
    status.add_argument("--json", action="store_true", help="the service's JSON")
    status.set_defaults(handler=_status)

    revoke = sub.add_parser("revoke", help="disconnect a company (revokes at Intuit)")
    revoke.add_argument("--realm", required=True)
    revoke.set_defaults(handler=_revoke)

    listing = sub.add_parser("connections", help="list connected companies")
    listing.add_argument("--json", action="store_true", help="the service's JSON")
    listing.set_defaults(handler=_list)
