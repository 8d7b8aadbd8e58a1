"""The kprobe events that trace FOLL_PIN pins, and the tracefs commands that
place and remove them (pure: text in, text out).

Five events in the group `labpin`, for the 6.1 family of mm/gup.c (from the
folio conversion, 5.18, until 6.9):

    grab_folio  try_grab_folio(page, refs, flags)   entry: which page, whose stack
    grab_page   try_grab_page(page, flags)          entry: which page, whose stack
    put_folio   gup_put_folio(folio, refs, flags)   entry: which folio, whose stack
    acquired    mod_node_page_state(pgdat, NR_FOLL_PIN_ACQUIRED, refs)
    released    mod_node_page_state(pgdat, NR_FOLL_PIN_RELEASED, refs)

The three entry events are filtered on FOLL_PIN. An entry probe fires
before the function decides anything: try_grab_folio() may still fail
(FOLL_LONGTERM on an unpinnable page, a refcount that went to zero) or
take no pin at all (the zero page). The counter events fire only where
/proc/vmstat's nr_foll_pin_acquired / nr_foll_pin_released really move, so
an entry counts as a pin only when its task's next counter event of that
kind follows it (lab/pintrace/trace.py pairs them); an entry with none is
a grab that failed. The counter events also catch a release whose
gup_put_folio() was inlined, which an entry probe alone would miss (in
6.1: the device-coherent path of migrate_longterm_unpinnable_pages()).

Each page is identified by its head page: `head` fetches the second word
of struct page (compound_head, bit 0 set on a tail page), so a pin taken
on a tail page matches its release on the folio.
"""

from __future__ import annotations

import enum
import re
import shlex
from dataclasses import dataclass

GROUP = "labpin"

# FOLL_PIN in include/linux/mm.h from 5.6 (its introduction) to 6.1; later
# kernels moved it to mm/internal.h with another value.
FOLL_PIN_BY_RELEASE = (((5, 6), (6, 1), 0x40000),)


class Role(enum.StrEnum):
    ACQUIRE = "acquire"      # entry of a function that takes pins
    RELEASE = "release"      # entry of the function that drops them
    ACQUIRED = "acquired"    # nr_foll_pin_acquired moved (by `delta`)
    RELEASED = "released"    # nr_foll_pin_released moved (by `delta`)


@dataclass(frozen=True)
class Probe:
    event: str
    symbol: str
    fetch: str
    role: Role
    filter: str = ""

    @property
    def definition(self) -> str:
        return f"p:{GROUP}/{self.event} {self.symbol} {self.fetch}"


# (event, symbol, fetch args, role); the counter probes get their filters
# from /proc/vmstat, the entry probes from FOLL_PIN's value.
_ENTRY = (
    ("grab_folio", "try_grab_folio",
     "page=$arg1:x64 head=+8($arg1):x64 refs=$arg2:s32 flags=$arg3:x32", Role.ACQUIRE),
    ("grab_page", "try_grab_page",
     "page=$arg1:x64 head=+8($arg1):x64 flags=$arg2:x32", Role.ACQUIRE),
    ("put_folio", "gup_put_folio",
     "folio=$arg1:x64 refs=$arg2:s32 flags=$arg3:x32", Role.RELEASE),
)
COUNTER_SYMBOL = "mod_node_page_state"
_COUNTER_FETCH = "item=$arg2:s32 delta=$arg3:s64"
ROLES = {e: r for e, _, _, r in _ENTRY} | {"acquired": Role.ACQUIRED,
                                           "released": Role.RELEASED}
SYMBOLS = tuple(s for _, s, _, _ in _ENTRY) + (COUNTER_SYMBOL,)
EVENTS = tuple(ROLES)


@dataclass(frozen=True)
class ProbeSet:
    """The probes for one kernel, and what was left out and why."""

    probes: tuple[Probe, ...]
    notes: tuple[str, ...] = ()

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(p.event for p in self.probes)


class CannotTrace(Exception):
    """The kernel under test cannot be traced; the message says why
    ("cannot trace: ..." is put in front where it is reported)."""


def foll_pin_flag(release: str) -> int | None:
    """FOLL_PIN's value in a kernel of this release, None when lab does not
    know it (then the entry probes go unfiltered: FOLL_GET grabs are traced
    too, and dropped because no pin counter follows them)."""
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        return None
    v = (int(m[1]), int(m[2]))
    return next((flag for lo, hi, flag in FOLL_PIN_BY_RELEASE if lo <= v <= hi), None)


def node_stat_items(vmstat: str) -> tuple[int, int]:
    """The enum node_stat_item values of NR_FOLL_PIN_ACQUIRED and _RELEASED,
    from /proc/vmstat's order: node items start at nr_inactive_anon (0) and
    follow the enum (zone and NUMA items come before them)."""
    names = [line.split()[0] for line in vmstat.splitlines() if line.strip()]
    missing = [n for n in ("nr_inactive_anon", "nr_foll_pin_acquired", "nr_foll_pin_released")
               if n not in names]
    if missing:
        raise CannotTrace(f"/proc/vmstat lacks {', '.join(missing)} (no FOLL_PIN counters "
                          "in this kernel?)")
    base = names.index("nr_inactive_anon")
    acq = names.index("nr_foll_pin_acquired") - base
    rel = names.index("nr_foll_pin_released") - base
    if acq <= 0 or rel != acq + 1:
        raise CannotTrace(f"/proc/vmstat's order does not give the node_stat_item of the "
                          f"pin counters (acquired at {acq}, released at {rel})")
    return acq, rel


def probe_set(symbols: set[str], items: tuple[int, int], foll_pin: int | None) -> ProbeSet:
    """The probes to place, given the kernel's symbols (from /proc/kallsyms),
    its pin counters' items and FOLL_PIN. Raises CannotTrace when the pins
    could not be told apart: no counter function, no release probe, or no
    acquire probe at all."""
    if COUNTER_SYMBOL not in symbols:
        raise CannotTrace(f"{COUNTER_SYMBOL} is not a symbol of this kernel (inlined: "
                          "a !CONFIG_SMP kernel?), so pins cannot be counted as they happen")
    flt = f"flags & {foll_pin:#x}" if foll_pin is not None else ""
    notes = [] if foll_pin is not None else [
        "FOLL_PIN's value is not known for this kernel: entry probes are unfiltered"]
    probes = []
    for event, symbol, fetch, role in _ENTRY:
        if symbol in symbols:
            probes.append(Probe(event, symbol, fetch, role, flt))
        else:
            notes.append(f"{symbol} is not a symbol of this kernel (inlined or renamed): "
                         f"pins through it are attributed by the counter's stack only")
    if not any(p.role is Role.RELEASE for p in probes):
        raise CannotTrace("gup_put_folio is not a symbol of this kernel (inlined or "
                          "renamed): releases cannot be matched to pages")
    if not any(p.role is Role.ACQUIRE for p in probes):
        raise CannotTrace("neither try_grab_folio nor try_grab_page is a symbol of this "
                          "kernel: acquisitions cannot be matched to pages")
    acq, rel = items
    probes += [Probe("acquired", COUNTER_SYMBOL, _COUNTER_FETCH, Role.ACQUIRED, f"item == {acq}"),
               Probe("released", COUNTER_SYMBOL, _COUNTER_FETCH, Role.RELEASED, f"item == {rel}")]
    return ProbeSet(tuple(probes), tuple(notes))


# --- tracefs ----------------------------------------------------------------

# One guest command: find (or mount) tracefs, then say what it offers. Its
# output is `key=value` lines, then /proc/vmstat after a `--- vmstat` line.
_DISCOVER = r"""T=/sys/kernel/tracing
[ -e $T/kprobe_events ] || mount -t tracefs nodev $T 2>/dev/null
if [ ! -e $T/kprobe_events ]; then
  mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null
  [ -e /sys/kernel/debug/tracing/kprobe_events ] && T=/sys/kernel/debug/tracing
fi
echo "tracefs=$T"
[ -e $T/kprobe_events ] && echo kprobe_events=yes
[ -e $T/options/stacktrace ] && echo stacktrace=yes
echo "trace_clock=$(cat $T/trace_clock 2>/dev/null)"
echo "buffer_size_kb=$(cat $T/buffer_size_kb 2>/dev/null)"
echo "tracing_on=$(cat $T/tracing_on 2>/dev/null)"
echo "stacktrace_option=$(cat $T/options/stacktrace 2>/dev/null)"
echo "cpus=$(nproc)"
echo "mem_available_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
"""
# /proc/kallsyms takes seconds to read under TCG: only when the host has no
# System.map of the kernel
_KALLSYMS = ("awk '{print \"symbol=\" $3}' /proc/kallsyms | grep -xE 'symbol=(%s)'\n"
             % "|".join(SYMBOLS))


def discover_script(read_kallsyms: bool) -> str:
    """The discovery command; it lists the probed symbols /proc/kallsyms has
    when asked to."""
    return (_DISCOVER + (_KALLSYMS if read_kallsyms else "")
            + "echo '--- vmstat'\ncat /proc/vmstat\n")


def system_map_symbols(system_map: str, at_least: int = 1000) -> frozenset[str] | None:
    """The probed symbols a System.map has (text symbols, exact names);
    None when it is no real map (Debian ships a one-line stub in /boot:
    "The real System.map is in the linux-image-<version>-dbg package")."""
    wanted = set(SYMBOLS)
    text = 0
    out = set()
    for line in system_map.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("t", "T", "w", "W"):
            text += 1
            if parts[2] in wanted:
                out.add(parts[2])
    return frozenset(out) if text >= at_least else None


@dataclass(frozen=True)
class Tracefs:
    """What the guest's tracefs offers, and its settings before lab touched them."""

    path: str
    symbols: frozenset[str]
    vmstat: str
    cpus: int = 1
    mem_available_kb: int = 0
    trace_clock: str = "local"
    buffer_size_kb: int = 1408
    tracing_on: str = "1"
    stacktrace_option: str = "0"


def parse_discovery(text: str, symbols: frozenset[str] | None = None) -> Tracefs:
    """discover_script's output -> Tracefs (with `symbols` when the script
    did not read /proc/kallsyms); CannotTrace when the kernel has no kprobe
    events or no stack traces in events."""
    head, _, vmstat = text.partition("--- vmstat\n")
    kv: dict[str, str] = {}
    found = set()
    for line in head.splitlines():
        k, sep, v = line.partition("=")
        if not sep:
            continue
        if k == "symbol":
            found.add(v.strip())
        else:
            kv[k.strip()] = v.strip()
    path = kv.get("tracefs", "")
    if kv.get("kprobe_events") != "yes":
        raise CannotTrace(f"no kprobe events in {path or 'tracefs'} (the kernel needs "
                          "CONFIG_KPROBES, CONFIG_KPROBE_EVENTS and CONFIG_FTRACE)")
    if kv.get("stacktrace") != "yes":
        raise CannotTrace(f"no options/stacktrace in {path} (the kernel needs "
                          "CONFIG_STACKTRACE)")
    clock = re.search(r"\[(\w[\w-]*)\]", kv.get("trace_clock", ""))
    size = re.match(r"\d+", kv.get("buffer_size_kb", ""))

    def num(key: str, default: int) -> int:
        v = kv.get(key, "")
        return int(v) if v.isdigit() else default
    return Tracefs(path, frozenset(found) if symbols is None else symbols, vmstat,
                   cpus=max(1, num("cpus", 1)),
                   mem_available_kb=num("mem_available_kb", 0),
                   trace_clock=clock[1] if clock else "local",
                   buffer_size_kb=int(size[0]) if size else 1408,
                   tracing_on=kv.get("tracing_on") or "1",
                   stacktrace_option=kv.get("stacktrace_option") or "0")


def buffer_kb(tfs: Tracefs, *, cap_kb: int = 16384, floor_kb: int = 2048) -> int:
    """The ring buffer per CPU: a sixteenth of the guest's available memory
    shared by its CPUs, within floor..cap (reading a full 16 MiB buffer back
    takes tens of seconds under TCG)."""
    share = tfs.mem_available_kb // 16 // tfs.cpus if tfs.mem_available_kb else floor_kb
    return max(floor_kb, min(cap_kb, share))


def _removals(events) -> list[str]:
    return [f"echo {shlex.quote('-:' + GROUP + '/' + e)} >> kprobe_events 2>/dev/null"
            for e in events]


def setup_script(tfs: Tracefs, ps: ProbeSet, buffer_size_kb: int) -> str:
    """Remove any probes of the group left behind, place `ps`, set filters,
    stack traces, a global clock (events of one task on two CPUs stay in
    order) and the buffer size, clear the trace and start tracing. On a
    probe the kernel refuses it exits 3 after printing the kernel's
    error_log (which names the problem)."""
    q = shlex.quote
    lines = [f"cd {q(tfs.path)} || exit 2", "echo 0 > tracing_on",
             f"[ -d events/{GROUP} ] && echo 0 > events/{GROUP}/enable",
             *_removals(EVENTS), ": > error_log 2>/dev/null"]
    for p in ps.probes:
        lines.append(f"echo {q(p.definition)} >> kprobe_events || "
                     f"{{ echo {q('probe ' + p.event + ' (' + p.symbol + ') refused:')}; "
                     f"tail -n 3 error_log 2>/dev/null; exit 3; }}")
    for p in ps.probes:
        if p.filter:
            lines.append(f"echo {q(p.filter)} > events/{GROUP}/{p.event}/filter || "
                         f"{{ echo {q('filter of ' + p.event + ' refused: ' + p.filter)}; "
                         f"exit 3; }}")
    lines += ["echo global > trace_clock", "echo 1 > options/stacktrace",
              f"echo {int(buffer_size_kb)} > buffer_size_kb", ": > trace",
              f"echo 1 > events/{GROUP}/enable", "echo 1 > tracing_on"]
    return "\n".join(lines) + "\n"


def stop_script(tfs: Tracefs, remote: str) -> str:
    """Stop tracing and write the trace to `remote`, then say how big it is."""
    q = shlex.quote
    return (f"cd {q(tfs.path)} && echo 0 > tracing_on && cat trace > {q(remote)} && "
            f"wc -c < {q(remote)}\n")


def teardown_script(tfs: Tracefs) -> str:
    """Disable and remove the group's probes and put back the settings that
    setup_script changed (run even after a failed setup)."""
    q = shlex.quote
    return "\n".join([
        f"cd {q(tfs.path)} || exit 0", "echo 0 > tracing_on",
        f"[ -d events/{GROUP} ] && echo 0 > events/{GROUP}/enable",
        *_removals(EVENTS),
        f"echo {q(tfs.stacktrace_option)} > options/stacktrace",
        f"echo {q(tfs.trace_clock)} > trace_clock",
        f"echo {int(tfs.buffer_size_kb)} > buffer_size_kb", ": > trace",
        f"echo {q(tfs.tracing_on)} > tracing_on", "true"]) + "\n"

