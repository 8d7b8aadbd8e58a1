"""Running many boots at once on one host without oversubscribing it.

`Resources` hands out cores and memory: a guest holds its vCPUs and its
memory (plus qemu's own overhead) for as long as it runs; a kernel build
holds every core. Waiters are served in the order they asked, except that a
later one that fits now goes ahead of an earlier one that does not
(backfill): a cell whose kernel is ready boots while a build waits for cores.
`MadeOnce` builds each kernel (and the image) once however many cells need it; the other
cells wait for that build's outcome.
"""

from __future__ import annotations

import itertools
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Hashable

from .errors import InfraError

QEMU_OVERHEAD_MB = 256        # qemu's own memory beside the guest's RAM
BUILD_MEMORY_MB = 2048        # a kernel build with -j$(nproc)
HOST_RESERVE_MB = 1024        # left to the host and lab itself


class Cancelled(InfraError):
    """The run was interrupted while this waited for resources."""


def host_memory_mb() -> int:
    """MemAvailable of this host, in MiB (MemTotal when it cannot say)."""
    try:
        info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
        kb = int((info.get("MemAvailable") or info["MemTotal"]).split()[0])
        return kb // 1024
    except (OSError, KeyError, ValueError):
        return 4096


def host_cores() -> int:
    """The cores this process may run on (a taskset or cpuset limits them),
    not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class Usage:
    cores: int = 0
    memory_mb: int = 0
    peak_cores: int = 0
    peak_memory_mb: int = 0
    holders: dict[int, str] = field(default_factory=dict)


class Resources:
    def __init__(self, cores: int | None = None, memory_mb: int | None = None):
        self.cores = max(1, cores or host_cores())
        self.memory_mb = max(512, memory_mb or host_memory_mb() - HOST_RESERVE_MB)
        self.usage = Usage()
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._waiting: list[tuple[int, int, int]] = []   # (ticket, cores, memory)
        self.cancelled = threading.Event()

    def clamp(self, cores: int, memory_mb: int) -> tuple[int, int]:
        """A demand larger than the host is served as the whole host."""
        return min(cores, self.cores), min(memory_mb, self.memory_mb)

    def _fits(self, cores: int, memory_mb: int) -> bool:
        return (self.usage.cores + cores <= self.cores
                and self.usage.memory_mb + memory_mb <= self.memory_mb)

    def _may_go(self, ticket: int) -> bool:
        for t, c, m in self._waiting:
            if t == ticket:
                return self._fits(c, m)
            if self._fits(c, m):
                return False      # an earlier waiter that fits goes first
        return False

    @contextmanager
    def hold(self, cores: int, memory_mb: int, label: str = ""):
        cores, memory_mb = self.clamp(cores, memory_mb)
        with self._cond:
            ticket = next(self._tickets)
            self._waiting.append((ticket, cores, memory_mb))
            try:
                # cancelled is checked before each look, a free slot or not:
                # the guests Ctrl-C kills free slots their waiters must not take
                while not self.cancelled.is_set():
                    if self._may_go(ticket):
                        break
                    self._cond.wait(0.5)
                else:
                    raise Cancelled(f"interrupted while {label or 'a cell'} waited to run")
            finally:
                self._waiting = [w for w in self._waiting if w[0] != ticket]
            u = self.usage
            u.cores += cores
            u.memory_mb += memory_mb
            u.peak_cores = max(u.peak_cores, u.cores)
            u.peak_memory_mb = max(u.peak_memory_mb, u.memory_mb)
            u.holders[ticket] = label
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self.usage.cores -= cores
                self.usage.memory_mb -= memory_mb
                self.usage.holders.pop(ticket, None)
                self._cond.notify_all()

    def guest(self, cpus: int, memory_mb: int, label: str = ""):
        return self.hold(cpus, memory_mb + QEMU_OVERHEAD_MB, label)

    def build(self, label: str = ""):
        return self.hold(self.cores, BUILD_MEMORY_MB, label)

    def cancel(self) -> None:
        self.cancelled.set()
        with self._cond:
            self._cond.notify_all()


class MadeOnce:
    """key -> the outcome of making that thing (a kernel, the image), made
    once per run: the first caller runs `make`, every other caller with the
    same key waits for its result (or its exception)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self.made: list[Hashable] = []          # keys actually made, in order

    def get(self, key: Hashable, make: Callable[[], object]):
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
            if owner:
                entry = self._entries[key] = _Entry()
        if owner:
            try:
                entry.value = make()
                with self._lock:
                    self.made.append(key)
            except BaseException as e:   # noqa: BLE001 - handed to every waiter
                entry.error = e
                raise
            finally:
                entry.done.set()
            return entry.value
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.value


@dataclass
class _Entry:
    done: threading.Event = field(default_factory=threading.Event)
    value: object = None
    error: BaseException | None = None
