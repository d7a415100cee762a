"""Memory and CPU of whole process trees, sampled from /proc while they run.

A stack started by a benchmark (`dagster dev`, `deploy/local/run.sh`) is many processes
that come and go: a webserver, a daemon, a code server and one process per run, and a
PostgreSQL server with a backend per connection. os.wait4 sees only the one child it
reaps, so this thread walks /proc every half second and adds up every descendant of the
roots it is given:

- memory: resident bytes (VmRSS), and the anonymous part of them (resident less shared
  pages: a process's own heap, without the shared libraries or PostgreSQL's shared
  buffers that every process maps and that a plain sum counts again for each one);
- CPU: each live process's user + system time plus what its reaped children used
  (cutime, cstime), so that a run's CPU stays counted once its process has ended;
- the machine's busy time from /proc/stat, to compare with 2 cores x wall time.

Every process seen is remembered with its start time, so a benchmark can end what is left
of a tree it started, and nothing that reused a pid.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Proc:
    """One process as /proc/<pid>/stat shows it (times in clock ticks)."""

    pid: int
    state: str  # R, S, D, Z...
    ppid: int
    own_cpu: int  # utime + stime
    reaped_cpu: int  # cutime + cstime: its children that it waited for
    start: int  # clock ticks after boot: with the pid, names the process for good


def read_proc(pid: int) -> Proc | None:
    """None for a process that ended while /proc was read."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return Proc(pid, fields[0], int(fields[1]), utime + stime, cutime + cstime, int(fields[19]))


def all_processes() -> dict[int, Proc]:
    processes = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            proc = read_proc(int(entry.name))
            if proc is not None:
                processes[proc.pid] = proc
    return processes


def descendants(roots: Iterable[int], processes: dict[int, Proc]) -> list[Proc]:
    """The roots and every process below them."""
    children: dict[int, list[int]] = {}
    for proc in processes.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found, todo = [], [pid for pid in roots if pid in processes]
    while todo:
        pid = todo.pop()
        found.append(processes[pid])
        todo.extend(children.get(pid, []))
    return found


def resident_bytes(pid: int) -> tuple[int, int]:
    """Resident and anonymous (resident less shared) bytes, from statm: a tenth of the cost
    of /proc/<pid>/status."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0, 0
    resident, shared = int(fields[1]), int(fields[2])
    return resident * PAGE_BYTES, (resident - shared) * PAGE_BYTES


def label(pid: int) -> str:
    """A short name for a stack's process, from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [Path(arg.decode(errors="replace")).name for arg in argv if arg]
    text = " ".join(words)
    # The most specific first: a Dagster process's command line carries its instance's
    # configuration, where words such as "postgres" appear.
    for needle, name in (
        ("spawn_main", "a run"),  # the code server starts each run by multiprocessing
        ("resource_tracker", "resource tracker"),
        ("api grpc", "code server"),
        ("code-server start", "code server proxy"),
        ("dagster_webserver", "webserver"),
        ("dagster-webserver", "webserver"),
        ("_daemon run", "daemon"),
        ("dagster-daemon", "daemon"),
        ("dagster dev", "dagster dev"),
        ("local_stack", "run.sh supervisor"),
        ("qbo-pipeline serve", "qbo-pipeline serve"),
        ("dbt", "dbt"),
        ("postgres", "postgres"),
    ):
        if needle in text:
            return name
    return words[0] if words else "?"


def machine_cpu() -> tuple[int, int]:
    """Busy and total clock ticks of every CPU since boot (idle and iowait are not busy)."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    total = sum(values[:8])  # guest time is already in user
    return total - values[3] - values[4], total


@dataclass(frozen=True)
class Sample:
    at: float  # time.time(), comparable with Dagster's timestamps
    rss: int  # bytes, every process of every tree
    anon: int
    largest: int  # the largest single process's resident bytes
    largest_name: str
    runs: int  # processes running a Dagster run
    cpu: dict[str, int]  # clock ticks: "machine_busy", "machine_total" and each tree's


@dataclass(frozen=True)
class Window:
    """What the sampler saw between two instants."""

    seconds: float
    peak_rss_mib: float
    peak_anon_mib: float
    largest_mib: float
    largest_name: str
    peak_runs: int
    cpu_seconds: dict[str, float]  # per tree, and "machine_busy" (all cores)
    machine_share: float  # busy time / (cores x wall time)

    def share(self, tree: str) -> float:
        """A tree's CPU as a share of every core over the window."""
        cores = os.cpu_count() or 1
        return self.cpu_seconds.get(tree, 0.0) / (cores * self.seconds) if self.seconds else 0.0


@dataclass(eq=False)  # a thread: hashed by identity
class TreeSampler(threading.Thread):
    """Samples the named trees every `interval` seconds until `stop()`.

    `trees` maps a name to its root pids; memory counts every tree (apart from those in
    `cpu_only`, such as the emulator standing in for Intuit), CPU is kept per tree; only
    the `owned` trees' processes are remembered for `survivors` (not a server that
    outlives the sampling)."""

    trees: dict[str, list[int]]
    cpu_only: frozenset[str] = frozenset()
    owned: frozenset[str] = frozenset()  # trees whose processes `survivors` may name
    interval: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)  # pid -> start, every process seen
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(name="proc-tree-sampler", daemon=True)
        self._done = threading.Event()
        self._lock = threading.Lock()

    def add_tree(self, name: str, roots: list[int], *, cpu_only: bool = False) -> None:
        with self._lock:
            self.trees[name] = roots
            if cpu_only:
                self.cpu_only = self.cpu_only | {name}

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.samples.append(self._take())
            except Exception as error:  # a sample's failure must not end the sampling
                self.errors.append(repr(error))
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _take(self) -> Sample:
        processes = all_processes()
        busy, total = machine_cpu()
        cpu = {"machine_busy": busy, "machine_total": total}
        rss = anon = largest = runs = 0
        largest_pid = 0
        with self._lock:
            trees = dict(self.trees)
        for name, roots in trees.items():
            members = descendants(roots, processes)
            cpu[name] = sum(proc.own_cpu + proc.reaped_cpu for proc in members)
            if name in self.cpu_only:
                continue
            for proc in members:
                if name in self.owned:
                    self.seen[proc.pid] = proc.start
                resident, private = resident_bytes(proc.pid)
                rss, anon = rss + resident, anon + private
                if resident > largest:
                    largest, largest_pid = resident, proc.pid
                if name != "server" and label(proc.pid) == "a run":
                    runs += 1
        name = label(largest_pid) if largest_pid else ""
        return Sample(time.time(), rss, anon, largest, name, runs, cpu)

    def window(self, began: float, ended: float) -> Window:
        """Peaks within [began, ended], and CPU between the samples nearest its ends."""
        inside = [s for s in self.samples if began <= s.at <= ended] or self.samples[-1:]
        first = next((s for s in self.samples if s.at >= began), inside[0])
        last = next((s for s in reversed(self.samples) if s.at <= ended), inside[-1])
        ticks = {name: last.cpu.get(name, 0) - first.cpu.get(name, 0) for name in last.cpu}
        top = max(inside, key=lambda s: s.largest)
        return Window(
            seconds=last.at - first.at,
            peak_rss_mib=max(s.rss for s in inside) / MIB,
            peak_anon_mib=max(s.anon for s in inside) / MIB,
            largest_mib=top.largest / MIB,
            largest_name=top.largest_name,
            peak_runs=max(s.runs for s in inside),
            cpu_seconds={name: value / TICKS for name, value in ticks.items()},
            machine_share=ticks["machine_busy"] / max(1, ticks["machine_total"]),
        )

    def survivors(self) -> list[int]:
        """Processes seen in an owned tree that are still running (same pid, same start; a
        zombie has ended, and waits only for its parent to read its status)."""
        alive = []
        for pid, start in self.seen.items():
            proc = read_proc(pid)
            if proc is not None and proc.start == start and proc.state != "Z":
                alive.append(pid)
        return alive
