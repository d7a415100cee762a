"""`qbo-pipeline keys ...`: make a token key, and re-encrypt every connection under the new one.

Rotation: put the new key first in QBO_TOKEN_KEYS (`k2:<new>,k1:<old>`), run
`keys rotate`, then drop the old key once it reports the connections re-encrypted.
"""

from __future__ import annotations

import argparse
import sys

from qbo_pipeline.vault.crypto import generate_key


def _generate(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def _rotate(args: argparse.Namespace) -> int:
    """Exit 1 when some realm could not be read: the rest are done, those need a person."""
    from qbo_pipeline.runtime import Runtime

    report = Runtime.from_env().store.rotate_keys()
    already = f" ({len(report.current)} already were)" if report.current else ""
    print(
        f"re-encrypted {len(report.reencrypted)} of {report.total} connections under key id "
        f"{report.primary_kid}{already}"
    )
    if not report.unreadable:
        return 0
    for realm_id, reason in sorted(report.unreadable.items()):
        print(f"realm {realm_id}: not re-encrypted: {reason}", file=sys.stderr)
    print(
        f"{len(report.unreadable)} connection(s) could not be read with any key of "
        "QBO_TOKEN_KEYS: add the key they were encrypted with as a later entry and run "
        "`qbo-pipeline keys rotate` again, or reconnect those companies "
        "(`qbo-pipeline auth authorize --realm R`)",
        file=sys.stderr,
    )
    return 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="manage token encryption keys")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    generate = sub.add_parser("generate", help="print a new QBO_TOKEN_KEY")
    generate.set_defaults(handler=_generate)
    rotate = sub.add_parser(
        "rotate", help="re-encrypt every connection under the first key of QBO_TOKEN_KEYS"
    )
    rotate.set_defaults(handler=_rotate)
