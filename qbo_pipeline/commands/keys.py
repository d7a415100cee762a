"""`qbo-pipeline keys ...`: make a token key, and re-encrypt every connection under the new one.

Rotation: put the new key first in QBO_TOKEN_KEYS (`k2:<new>,k1:<old>`), run
`keys rotate`, then drop the old key once it reports the connections re-encrypted.
"""

from __future__ import annotations

import argparse

from qbo_pipeline.vault.crypto import generate_key


def _generate(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from qbo_pipeline.runtime import Runtime

    store = Runtime.from_env().store
    changed = store.rotate_keys()
    total = len(store.list())
    print(f"re-encrypted {changed} of {total} connections under key id {store.keyring.primary_kid}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="manage token encryption keys")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    generate = sub.add_parser("generate", help="print a new QBO_TOKEN_KEY")
    generate.set_defaults(handler=_generate)
    rotate = sub.add_parser(
        "rotate", help="re-encrypt every connection under the first key of QBO_TOKEN_KEYS"
    )
    rotate.set_defaults(handler=_rotate)
