"""FOLL_PIN trace text -> pins per page -> the call sites of the pins that
were never released (pure).

    Trace.parse(text)    tracefs `trace` output (options/stacktrace on):
                         events with their kernel stacks, events lost
    pins(trace)          entry events paired with the counter events that
                         follow them in the same task -> acquires and
                         releases of a head page, with refs and stack
    balance(pins)        releases matched to acquires of the same page,
                         oldest first -> what stays held
    attribute(balance)   held pins grouped by stack, each named by its call
                         site: the first two frames outside mm/gup.c
                         ("ib_umem_get <- rxe_mr_init_user")
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass, field, replace
from itertools import dropwhile
from typing import Callable

from .probes import ROLES, Role

_LINE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                   r"(?:\S+\s+)?(?P<ts>\d+\.\d+):\s(?P<body>.*)$")
_EVENT = re.compile(r"^(?P<name>\w+):\s+\((?P<at>[^)]*)\)\s*(?P<args>.*)$")
_ARG = re.compile(r"(\w+)=(\S+)")
_FRAME = re.compile(r"^ => (?P<frame>\S.*)$")
_ENTRIES = re.compile(r"^# entries-in-buffer/entries-written: (\d+)/(\d+)")
_LOST = re.compile(r"^CPU:\d+ \[LOST (\d+) EVENTS\]")
STACK_HEADER = "<stack trace>"


@dataclass(frozen=True)
class Event:
    comm: str
    pid: int
    cpu: int
    ts: float
    name: str
    args: tuple[tuple[str, str], ...] = ()
    stack: tuple[str, ...] = ()

    def arg(self, key: str) -> int | None:
        for k, v in self.args:
            if k == key:
                try:
                    return int(v, 0)
                except ValueError:
                    return None
        return None


@dataclass(frozen=True)
class Trace:
    events: tuple[Event, ...]
    lost: int = 0          # events the ring buffer overwrote (the oldest) or dropped

    @classmethod
    def parse(cls, text: str) -> "Trace":
        """Each `<stack trace>` belongs to the event just before it on the
        same CPU and task (stacks are written right after their event)."""
        events: list[Event] = []
        stacks: dict[int, list[str]] = {}        # event index -> frames
        last_on_cpu: dict[int, int] = {}
        collecting: list[str] | None = None
        header_lost = lines_lost = 0
        for line in text.splitlines():
            f = _FRAME.match(line)
            if f:
                if collecting is not None:
                    collecting.append(f["frame"].strip())
                continue
            collecting = None
            m = _LINE.match(line)
            if not m:
                h = _ENTRIES.match(line)
                if h:
                    header_lost = max(0, int(h[2]) - int(h[1]))
                lost = _LOST.match(line)
                if lost:
                    lines_lost += int(lost[1])
                continue
            cpu, pid, body = int(m["cpu"]), int(m["pid"]), m["body"].strip()
            if body == STACK_HEADER:
                i = last_on_cpu.get(cpu)
                if i is not None and events[i].pid == pid and i not in stacks:
                    collecting = stacks[i] = []
                continue
            e = _EVENT.match(body)
            if not e:
                continue
            last_on_cpu[cpu] = len(events)
            events.append(Event(m["comm"].strip(), pid, cpu, float(m["ts"]), e["name"],
                                tuple(_ARG.findall(e["args"]))))
        for i, frames in stacks.items():
            events[i] = replace(events[i], stack=tuple(frames))
        return cls(tuple(events), max(header_lost, lines_lost))


class Op(enum.StrEnum):
    ACQUIRE = "acquire"
    RELEASE = "release"


@dataclass(frozen=True)
class PinEvent:
    """Pins taken on or dropped from one head page by one call."""

    op: Op
    page: int | None       # head struct page address; None: no entry probe came first
    refs: int
    comm: str
    pid: int
    ts: float
    stack: tuple[str, ...]


@dataclass(frozen=True)
class Pins:
    events: tuple[PinEvent, ...]
    grabs_not_counted: int = 0     # entries no counter followed: failed, or the zero page
    puts_not_counted: int = 0      # releases of the zero page
    lost: int = 0


def head_page(page: int, compound_head: int | None) -> int:
    """The head page of `page`: struct page's second word has bit 0 set on
    a tail page, the rest of it pointing at the head."""
    if compound_head is not None and compound_head & 1:
        return compound_head - 1
    return page


_ENTRY_OP = {Role.ACQUIRE: Op.ACQUIRE, Role.RELEASE: Op.RELEASE}
_COUNTER_OP = {Role.ACQUIRED: Op.ACQUIRE, Role.RELEASED: Op.RELEASE}


def pins(trace: Trace, roles: dict[str, Role] = ROLES) -> Pins:
    """Pair each counter event with the entry event before it in the same
    task: the entry says which page and whose stack, the counter says the
    pin happened and how many refs. A task runs one grab (or one put) at a
    time, so the pending entry of its kind is the one; an entry replaced by
    the next before a counter came took no pin. A counter with no entry
    (an unprobed, inlined path) keeps its own stack and no page."""
    pending: dict[tuple[int, Op], Event] = {}
    out: list[PinEvent] = []
    not_counted = {Op.ACQUIRE: 0, Op.RELEASE: 0}
    for ev in trace.events:
        role = roles.get(ev.name)
        if role in _ENTRY_OP:
            op = _ENTRY_OP[role]
            if (ev.pid, op) in pending:
                not_counted[op] += 1
            pending[(ev.pid, op)] = ev
            continue
        if role not in _COUNTER_OP:
            continue
        op = _COUNTER_OP[role]
        refs = ev.arg("delta") or 0
        if refs <= 0:
            continue
        entry = pending.pop((ev.pid, op), None)
        if entry is None:
            out.append(PinEvent(op, None, refs, ev.comm, ev.pid, ev.ts, ev.stack))
            continue
        if op is Op.ACQUIRE:
            page = entry.arg("page")
            page = head_page(page, entry.arg("head")) if page is not None else None
        else:
            page = entry.arg("folio")
        out.append(PinEvent(op, page, refs, entry.comm, entry.pid, entry.ts,
                            entry.stack or ev.stack))
    for (_, op) in pending:
        not_counted[op] += 1
    return Pins(tuple(out), not_counted[Op.ACQUIRE], not_counted[Op.RELEASE], trace.lost)


@dataclass(frozen=True)
class Held:
    acquire: PinEvent
    refs: int              # of its refs, those never released


@dataclass(frozen=True)
class Balance:
    acquired: int
    released: int
    held: tuple[Held, ...]
    released_untraced: int = 0     # refs released whose acquire the trace lacks
    unmatched_released: int = 0    # refs released with no page (inlined release path)
    grabs_not_counted: int = 0
    lost: int = 0

    @property
    def unreleased(self) -> int:
        return sum(h.refs for h in self.held)


def balance(p: Pins) -> Balance:
    """Match releases to acquires of the same head page, oldest acquire
    first (refs by refs: a large folio is pinned and unpinned in batches).
    A release finding nothing to match released a pin taken before the
    trace began (or whose acquire the buffer lost)."""
    held: dict[int | None, deque[list]] = {}
    acquired = released = untraced = unmatched = 0
    order: list[list] = []
    for ev in p.events:
        if ev.op is Op.ACQUIRE:
            acquired += ev.refs
            item = [ev, ev.refs]
            held.setdefault(ev.page, deque()).append(item)
            order.append(item)
            continue
        released += ev.refs
        need = ev.refs
        q = held.get(ev.page)
        while need and q:
            take = min(need, q[0][1])
            q[0][1] -= take
            need -= take
            if not q[0][1]:
                q.popleft()
        if need:
            if ev.page is None:
                unmatched += need
            else:
                untraced += need
    return Balance(acquired, released, tuple(Held(e, n) for e, n in order if n),
                   untraced, unmatched, p.grabs_not_counted, p.lost)


# --- naming the call site ----------------------------------------------------

# Functions of mm/gup.c (and the counter) in 6.1 and the kernels around it;
# gup_functions() adds whatever else the kernel under test has in mm/gup.c.
GUP_FRAME = re.compile(
    r"^(try_grab_\w+|try_get_folio|gup_\w+|__gup_\w+|(__)?(get|pin|unpin)_user_pages?\w*"
    r"|internal_get_user_pages_fast|lockless_pages_from_mm|follow_page|follow_(page|pmd|pud|"
    r"p4d)_\w+|check_and_migrate_movable_pages|migrate_longterm_unpinnable_pages"
    r"|collect_longterm_unpinnable_pages|faultin_page|undo_dev_pagemap|record_subpages"
    r"|(__)?mod_node_page_state|node_stat_mod_folio|is_valid_gup_args)$")
# Symbols known to be defined in mm/gup.c in every kernel with FOLL_PIN.
GUP_ANCHORS = ("gup_put_folio", "try_grab_folio", "try_grab_page", "pin_user_pages_fast",
               "unpin_user_pages", "__get_user_pages", "get_user_pages_fast")
_SUFFIX = re.compile(r"(\.(isra|constprop|part|cold|llvm|lto_priv)(\.\w+)?)+$")


def frame_name(frame: str) -> str:
    """A stack frame as a function name: no offset, module or compiler
    suffix ("ib_umem_fixture_leak_pin.isra.0" -> "ib_umem_fixture_leak_pin")."""
    name = frame.split()[0] if frame.split() else frame
    return _SUFFIX.sub("", name.split("+")[0])


def gup_functions(system_map: str, max_span: int = 0x20000) -> frozenset[str]:
    """The text symbols of the kernel's mm/gup.c, from its System.map: every
    function between the lowest and the highest anchor (an object file's
    text is contiguous). Empty when the anchors are missing or span more
    than one object file could."""
    syms = []
    for line in system_map.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("t", "T", "W", "w"):
            try:
                syms.append((int(parts[0], 16), frame_name(parts[2])))
            except ValueError:
                continue
    anchors = [a for a, n in syms if n in GUP_ANCHORS]
    if len(anchors) < 2 or max(anchors) - min(anchors) > max_span:
        return frozenset()
    lo, hi = min(anchors), max(anchors)
    return frozenset(n for a, n in syms if lo <= a <= hi)


def inside_gup(functions: frozenset[str] = frozenset()) -> Callable[[str], bool]:
    """Whether a frame (a function name) belongs to mm/gup.c."""
    return lambda name: name in functions or bool(GUP_FRAME.match(name))


def call_site(stack: tuple[str, ...], inside: Callable[[str], bool], depth: int = 2) -> str:
    """The first `depth` frames after the mm/gup.c ones, callee first."""
    names = [frame_name(f) for f in stack]
    outside = list(dropwhile(inside, names))
    if not outside:
        return names[0] if names else "(no stack)"
    return " <- ".join(outside[:depth])


@dataclass(frozen=True)
class StackLeak:
    site: str
    stack: tuple[str, ...]
    pins: int
    tasks: tuple[str, ...]         # comm-pid of the tasks that took them


@dataclass(frozen=True)
class Attribution:
    balance: Balance
    stacks: tuple[StackLeak, ...] = field(default_factory=tuple)

    @property
    def unreleased(self) -> int:
        return self.balance.unreleased

    def sites(self) -> list[tuple[str, int]]:
        """(call site, pins never released), most first."""
        per: dict[str, int] = {}
        for s in self.stacks:
            per[s.site] = per.get(s.site, 0) + s.pins
        return sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))

    def headline(self, most: int = 3) -> str:
        """"2 pins acquired via ib_umem_get <- rxe_mr_init_user were never
        released" (several sites: "..., 1 via X and 1 via Y ...")."""
        sites = self.sites()
        if not sites:
            return "every pin acquired during the traced rerun was released"
        parts = [f"{n} pin{'' if n == 1 else 's'} acquired via {s}" if i == 0
                 else f"{n} via {s}" for i, (s, n) in enumerate(sites[:most])]
        if len(sites) > most:
            rest = sum(n for _, n in sites[most:])
            parts.append(f"{rest} via {len(sites) - most} more call sites")
        text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        return f"{text} {'was' if self.unreleased == 1 else 'were'} never released"

    def notes(self) -> list[str]:
        b = self.balance
        out = []
        if b.lost:
            out.append(f"the trace buffer lost {b.lost} events (the oldest): pins acquired "
                       "early in the rerun may be missing from this list")
        if b.unmatched_released:
            out.append(f"{b.unmatched_released} pins were released through a path with no "
                       "entry probe (an inlined gup_put_folio): up to that many of the pins "
                       "listed may have been released")
        if b.released_untraced:
            out.append(f"{b.released_untraced} released pins had been acquired before "
                       "the trace began")
        if b.grabs_not_counted:
            out.append(f"{b.grabs_not_counted} FOLL_PIN grabs took no pin (the grab failed, "
                       "or the page was the zero page): not counted")
        return out

    def report(self) -> str:
        """The details: totals, then each stack with its count and tasks."""
        b = self.balance
        lines = [f"pin trace of the rerun: {b.acquired} pins acquired, {b.released} released, "
                 f"{self.unreleased} never released", self.headline()]
        for s in self.stacks:
            tasks = ", ".join(s.tasks[:8]) + (", ..." if len(s.tasks) > 8 else "")
            lines += ["", f"{s.pins} pin{'' if s.pins == 1 else 's'} never released, "
                          f"acquired via {s.site} by {tasks}:"]
            lines += [f"    {f}" for f in s.stack] or ["    (no stack)"]
        notes = self.notes()
        if notes:
            lines += ["", *notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        b = self.balance
        return {"acquired": b.acquired, "released": b.released,
                "unreleased": self.unreleased, "released_untraced": b.released_untraced,
                "unmatched_released": b.unmatched_released,
                "grabs_not_counted": b.grabs_not_counted, "lost_events": b.lost,
                "headline": self.headline(),
                "sites": [{"site": s, "pins": n} for s, n in self.sites()],
                "stacks": [{"site": s.site, "pins": s.pins, "tasks": list(s.tasks),
                            "stack": list(s.stack)} for s in self.stacks]}


def attribute(b: Balance, inside: Callable[[str], bool] = inside_gup()) -> Attribution:
    """The held pins grouped by their full stack, most pins first."""
    groups: dict[tuple[str, ...], list[Held]] = {}
    for h in b.held:
        groups.setdefault(h.acquire.stack, []).append(h)
    stacks = []
    for stack, hs in groups.items():
        tasks = tuple(dict.fromkeys(f"{h.acquire.comm}-{h.acquire.pid}" for h in hs))
        stacks.append(StackLeak(call_site(stack, inside), stack, sum(h.refs for h in hs), tasks))
    stacks.sort(key=lambda s: (-s.pins, s.site))
    return Attribution(b, tuple(stacks))


def analyse(text: str, inside: Callable[[str], bool] = inside_gup()) -> Attribution:
    """Trace text -> attribution, all steps."""
    return attribute(balance(pins(Trace.parse(text))), inside)
