"""Stopping a process and everything it started, politely first.

The stacks (`make dev`, `deploy/local/run.sh`) start each long-running process in a
process group of its own, so that stopping it also ends what it started: a code server's
gRPC child, a run's process and its log tails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

# What is left of a group after its leader stopped gets this long to end on SIGTERM.
STRAGGLER_SECONDS = 10


def stop_process_group(leader: subprocess.Popen, shutdown_seconds: float) -> None:
    """End `leader` (started with `process_group=0`) and everything in its group.

    On SIGTERM `dagster dev` stops its webserver and daemon, but not what outlives them:
    its code server and that server's gRPC child keep running until their heartbeat
    times out (up to 45 s), and a run under way runs on. So the leader goes first (its
    own orderly shutdown, `shutdown_seconds` at most), then the rest of the group gets
    SIGTERM (a run interrupted so records its failure, where SIGKILL would leave it
    STARTED and its realm busy for qbo_webhook_sensor), and whatever is left after
    STRAGGLER_SECONDS gets SIGKILL.
    """
    group = leader.pid  # process_group=0: the group is named after its leader
    if leader.poll() is None:
        leader.terminate()
        try:
            leader.wait(timeout=shutdown_seconds)
        except subprocess.TimeoutExpired:
            leader.kill()
            leader.wait()
    if not signal_group(group, signal.SIGTERM):
        return
    deadline = time.monotonic() + STRAGGLER_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if not signal_group(group, 0):
            return
    signal_group(group, signal.SIGKILL)


def signal_group(group: int, signum: int) -> bool:
    """Send `signum` (0: only look) to the process group; False once it has no process."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True
