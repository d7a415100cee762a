"""Another process's run holding a realm: `python -m qbo_pipeline_tests.vault.turn_holder
REALM SECONDS` takes the realm's turn from the environment's token store, prints `held`,
holds it SECONDS or until a line arrives on stdin (or until killed), prints `released`
with the time, and exits."""

from __future__ import annotations

import select
import sys
import time

from qbo_pipeline.runtime import Runtime


def main(realm_id: str, seconds: float) -> None:
    runtime = Runtime.from_env()
    with runtime.realm_turn(realm_id, "the test's other run"):
        print("held", flush=True)
        select.select([sys.stdin], [], [], seconds)
    print(f"released {time.time()!r}", flush=True)
    runtime.close()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
