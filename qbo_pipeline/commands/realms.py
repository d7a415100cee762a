"""`qbo-pipeline realms purge --realm R`: delete a disconnected company's data for good.

Revoking a company stops its syncs and retires its Dagster partition, but keeps its rows:
an operator may want them, and QBO would need a full resync to bring them back. Purging
is the deliberate second step, so it asks for the realm id to be typed again.
"""

from __future__ import annotations

import argparse
import sys


def _purge(args: argparse.Namespace) -> int:
    from qbo_pipeline.errors import ConfigurationError
    from qbo_pipeline.quickbooks.realms import check_realm_id
    from qbo_pipeline.runtime import Runtime
    from qbo_pipeline.vault.store import ConnectionStatus

    realm = check_realm_id(args.realm, name="--realm")
    runtime = Runtime.from_env()
    connection = runtime.store.find(realm)
    if connection is not None and connection.status is not ConnectionStatus.REVOKED:
        raise ConfigurationError(
            f"realm {realm} is still connected ({connection.status}); revoke it first: "
            f"`qbo-pipeline auth revoke --realm {realm}`"
        )
    with runtime.warehouse() as warehouse:
        rows = warehouse.realm_rows(realm)
        events = runtime.inbox.count_for(realm)
        if not rows and not events and connection is None:
            print(f"nothing is stored for realm {realm}", file=sys.stderr)
            return 0
        what = _describe(rows, events, connection is not None, warehouse.url_for_display)
        if not args.yes and not _confirmed(realm, what):
            print("nothing deleted", file=sys.stderr)
            return 1
        deleted = warehouse.purge_realm(realm)
    forgotten = runtime.inbox.forget(realm)
    runtime.store.forget(realm)
    print(f"purged realm {realm}: " + _describe(deleted, forgotten, connection is not None, ""))
    return 0


def _describe(rows: dict[str, int], events: int, record: bool, where: str) -> str:
    place = f" of {where}" if where else ""
    parts = [f"{sum(rows.values()):,} rows in {len(rows)} tables{place}"]
    parts.append(f"{events:,} webhook events")
    if record:
        parts.append("the revoked connection's record (its token event log stays)")
    return ", ".join(parts)


def _confirmed(realm: str, what: str) -> bool:
    print(f"realm {realm}: {what} will be deleted for good.", file=sys.stderr)
    print(f"Type the realm id ({realm}) to confirm: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip()
    return answer == realm


def add_parser(commands: argparse._SubParsersAction) -> None:
    realms = commands.add_parser("realms", help="manage connected companies' data")
    actions = realms.add_subparsers(dest="action", required=True)
    purge = actions.add_parser(
        "purge",
        help="delete a revoked company's rows from the warehouse, its webhook events and "
        "its connection record (asks to confirm)",
    )
    purge.add_argument("--realm", required=True, help="the company (realm id)")
    purge.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (for scripts)"
    )
    purge.set_defaults(handler=_purge)
