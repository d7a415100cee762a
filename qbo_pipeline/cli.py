"""The `qbo-pipeline` command: demo, dev, emulator, sync, analytics, auth, keys, realms and
serve.

Every failure the user can fix ends as one line on stderr and exit status 2 (1 for a
failed sync run), never a traceback: bad settings, a wrong key, an unknown realm. Those
are the project's own errors (`PipelineError`); anything else is a bug, and its
traceback is what a bug report needs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from qbo_pipeline.commands import (
    analytics,
    auth,
    demo,
    dev,
    emulator,
    keys,
    realms,
    serve,
    sync,
)
from qbo_pipeline.errors import PipelineError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbo-pipeline", description="QuickBooks Online to warehouse sync."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    for group in (demo, dev, emulator, sync, analytics, auth, keys, realms, serve):
        group.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except PipelineError as error:
        print(f"qbo-pipeline: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
