"""The processes of one workload, known rather than guessed: each workload
runs in a cgroup v2 group of its own in the guest (/sys/fs/cgroup/lab/<name>),
joined by every command the workload runs, so everything it started, however
detached (setsid, daemons, io_uring workers), is listed in cgroup.procs.

The runner uses it to end a workload's processes (lab/resolve.py) and to
judge the pin balance only once they are gone (checked, not assumed). The
commands that look at a scope run outside it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..proc import Result
from .base import Guest

CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Task:
    """One task of the guest as /proc shows it."""

    pid: int
    comm: str
    state: str            # R, S, D, T, Z, ...: the first letter of /proc/PID/status State
    switches: int         # voluntary + nonvoluntary context switches
    start: int = 0        # start time in clock ticks after boot (/proc/PID/stat field 22)
    tgid: int = 0         # the process a thread belongs to (its own pid for a process)

    @property
    def label(self) -> str:
        return f"{self.comm}:{self.pid}"

    def show(self) -> str:
        return f"{self.pid} {self.comm} ({self.state})"


# One command reading every given task's status (never cmdline or environ:
# those take the task's mmap lock, which a stuck task may hold) and the uptime.
def states_cmd(pids: list[int]) -> str:
    ps = " ".join(str(int(p)) for p in pids)
    return ("cat /proc/uptime; for p in " + (ps or "0") + "; do "
            "s=$(cut -d' ' -f22 /proc/$p/stat 2>/dev/null) || continue; "
            "grep -H -E '^(Name|State|Tgid|voluntary_ctxt_switches|nonvoluntary_ctxt_switches):' "
            "/proc/$p/status 2>/dev/null && echo \"/proc/$p/status:Start: $s\"; done; true")


def parse_states(text: str) -> tuple[float | None, dict[int, Task]]:
    """states_cmd's output -> (guest uptime, {pid: Task}) (pure)."""
    uptime = None
    first = text.split("\n", 1)[0].split()
    if first:
        try:
            uptime = float(first[0])
        except ValueError:
            pass
    raw: dict[int, dict] = {}
    for line in text.splitlines():
        m = re.match(r"/proc/(\d+)/status:(\w+):\s*(.*)$", line)
        if not m:
            continue
        e = raw.setdefault(int(m.group(1)), {"sw": 0})
        key, val = m.group(2), m.group(3).strip()
        if key == "Name":
            e["comm"] = val
        elif key == "State":
            e["state"] = val[:1]
        elif key.endswith("ctxt_switches") and val.isdigit():
            e["sw"] += int(val)
        elif key == "Tgid" and val.isdigit():
            e["tgid"] = int(val)
        elif key == "Start" and val.isdigit():
            e["start"] = int(val)
    tasks = {pid: Task(pid, e.get("comm", "?"), e.get("state", "?"), e["sw"], e.get("start", 0),
                       e.get("tgid", pid))
             for pid, e in raw.items() if "state" in e}
    return uptime, tasks


def task_states(guest: Guest, pids: list[int]) -> tuple[float | None, dict[int, Task]]:
    """The tasks among `pids` that still exist, and the guest's uptime."""
    return parse_states(guest.run(states_cmd(sorted(set(pids))), timeout=30).stdout)


class Scope:
    """A workload's cgroup in the guest. `guest` is the plain connection:
    what a scope runs never joins it."""

    def __init__(self, guest: Guest, name: str):
        self.guest = guest
        self.name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        self.path = f"{CGROUP_ROOT}/lab/{self.name}"
        self.available = False
        self.why = ""

    def create(self) -> bool:
        """Mount cgroup2 if the guest has not, and make the group. False (and
        `why`) when the kernel has no cgroup v2."""
        q = shlex.quote(self.path)
        r = self.guest.run(f"grep -q ' {CGROUP_ROOT} cgroup2 ' /proc/mounts || mount -t cgroup2 "
                           f"none {CGROUP_ROOT} 2>&1; mkdir -p {q} && test -w {q}/cgroup.procs",
                           timeout=30)
        self.available = r.ok
        self.why = "" if r.ok else ("no cgroup v2 in the guest (CONFIG_CGROUPS): "
                                    + (r.stdout + r.stderr).strip()[-200:])
        return self.available

    def join_prefix(self) -> str:
        """What a command line starts with to run inside the scope."""
        if not self.available:
            return ""
        return f"echo $$ > {shlex.quote(self.path)}/cgroup.procs 2>/dev/null; "

    def pids(self) -> list[int]:
        """The processes (thread group leaders) in the scope now."""
        if not self.available:
            return []
        r = self.guest.run(f"cat {shlex.quote(self.path)}/cgroup.procs 2>/dev/null", timeout=30)
        return sorted(int(x) for x in r.stdout.split() if x.isdigit())

    def tasks(self) -> dict[int, Task]:
        pids = self.pids()
        return task_states(self.guest, pids)[1] if pids else {}

    def kill_all(self) -> None:
        """SIGKILL whatever is left (cgroup.kill, Linux 5.14+; else kill each)."""
        if not self.available:
            return
        q = shlex.quote(self.path)
        self.guest.run(f"echo 1 > {q}/cgroup.kill 2>/dev/null || for p in $(cat {q}/cgroup.procs);"
                       f" do kill -KILL $p 2>/dev/null; done; true", timeout=30)

    def remove(self) -> None:
        """Remove the group once it is empty (a group with a stuck task stays)."""
        if self.available:
            self.guest.run(f"rmdir {shlex.quote(self.path)} 2>/dev/null; true", timeout=30)


class ScopedGuest(Guest):
    """A guest whose commands run inside a workload's scope; everything else
    (files, kernel messages, liveness) goes to the plain connection."""

    def __init__(self, inner: Guest, scope: Scope):
        self.inner = inner
        self.scope = scope

    def run(self, cmd, *, timeout, check=False, log=None) -> Result:
        return self.inner.run(self.scope.join_prefix() + cmd, timeout=timeout, check=check,
                              log=log)

    def put(self, local: Path, remote: str, mode: int | None = None) -> None:
        self.inner.put(local, remote, mode)

    def get(self, remote: str, local: Path) -> None:
        self.inner.get(remote, local)

    def alive(self, timeout: float = 10.0) -> bool:
        return self.inner.alive(timeout)

    def kmsg_cursor(self) -> int:
        return self.inner.kmsg_cursor()

    def kmsg_since(self, cursor: int, timeout: float = 60) -> tuple[str, int]:
        return self.inner.kmsg_since(cursor, timeout)


def unscoped(guest: Guest) -> Guest:
    """The plain connection under any wrappers (LoggedGuest, ScopedGuest)."""
    seen = 0
    while seen < 8 and hasattr(guest, "inner"):
        if isinstance(guest, ScopedGuest):
            return guest.inner
        guest = guest.inner
        seen += 1
    return guest
