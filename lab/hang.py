"""Deadlock detection: tell a deadlock (tasks stuck in D state, never
scheduled) from a slow-but-progressing timeout and from a panic, with the
blocked tasks' stacks as the evidence.

Two entry points with effects:
- `run_watched` runs a guest command like `guest.run`, but stops waiting
  early (raising `HungTaskDetected`) once the kernel's hung-task detector has
  reported a task on the console and the command still has not finished, so
  a deadlock is reported within the hung-task timeout plus a grace period
  rather than after the workload's (long) timeout;
- `investigate` is called when a workload ran past its timeout (or
  `run_watched` gave up): it collects evidence before teardown (over SSH if
  the guest still answers, else through the serial console with a break +
  sysrq key, or an NMI) and returns the workload's failed testcase.

The evidence and the verdict are kept apart: `classify` is pure and takes the
kernel text plus two snapshots of the tasks' states and context-switch
counts. A task polling in an msleep() loop is in D state at any instant but
is scheduled all the time (its switch count moves), and the hung-task
detector never reports it; a deadlocked task stays in D state with a frozen
switch count and an unchanged stack.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from .errors import CommandTimeout
from .guest.base import GuestPaused
from .guest.scope import unscoped
from .resolve import Resolution, end_workload
from .results import CaseKind, CaseResult, Status

HUNG_REPORT = re.compile(r"INFO: task (?P<name>.+?):(?P<pid>\d+) blocked for more than "
                         r"(?P<secs>\d+) seconds")
SYSRQ_W = re.compile(r"sysrq: Show Blocked State")
TASK_LINE = re.compile(r"task:(?P<name>.{1,16}?)\s+state:(?P<state>\S)\b.*?\bpid:\s*(?P<pid>\d+)")
PANIC = re.compile(r"Kernel panic - not syncing|---\[ end Kernel panic")
TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
# Frames that say "blocked" but not where: skipped when naming the wait site.
SCHED_FRAMES = re.compile(
    r"^(__schedule|schedule|schedule_timeout|schedule_preempt_disabled|io_schedule|"
    r"io_schedule_timeout|__mutex_lock.*|mutex_lock.*|rwsem_down_\w+|down_\w+|__down\w*|"
    r"percpu_rwsem_wait|__percpu_down_read|wait_for_completion\w*|__wait_for_common|"
    r"do_wait_for_common|bit_wait\w*|__wait_on_bit\w*|out_of_line_wait_on_bit\w*|"
    r"folio_wait_bit_common|wait_on_page_bit_common|__folio_lock|__lock_page|"
    r"rt_mutex\w*|__rt_mutex\w*|__flush_work|flush_work|__cond_resched|msleep)$")
FRAME = re.compile(r"^\s*(?P<q>\? )?(?P<fn>[A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")


# --- pure: parsing the evidence ---------------------------------------------

@dataclass
class BlockedTask:
    name: str
    pid: int
    stack: str = ""                 # the dump's text for this task
    hung_reports: int = 0           # "INFO: task ... blocked for more than" lines
    dumps: int = 0                  # sysrq-w dumps that list it in D state
    switches: tuple[int, int] | None = None   # ctxt switches in snapshot A, B

    @property
    def wait_site(self) -> str:
        """The first frame that is not the scheduler or a lock primitive."""
        frames = [m.group("fn") for m in map(FRAME.match, self.stack.splitlines())
                  if m and not m.group("q")]
        for fn in frames:
            if not SCHED_FRAMES.match(fn):
                return fn
        return frames[0] if frames else "?"

    @property
    def label(self) -> str:
        return f"{self.name}:{self.pid}"


def strip_times(text: str) -> str:
    return "\n".join(TIMESTAMP.sub("", line) for line in text.splitlines())


def hung_pids(text: str) -> set[int]:
    return {int(m.group("pid")) for m in HUNG_REPORT.finditer(text)}


def _task_blocks(text: str) -> list[tuple[str, int, str, str]]:
    """(name, pid, state, stack text) for every `task:` block in the text."""
    lines = strip_times(text).splitlines()
    out = []
    i = 0
    while i < len(lines):
        m = TASK_LINE.search(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not TASK_LINE.search(lines[j]) \
                and not SYSRQ_W.search(lines[j]) and not HUNG_REPORT.search(lines[j]):
            j += 1
            if lines[j - 1].strip() == "</TASK>":
                break
        out.append((m.group("name").strip(), int(m.group("pid")), m.group("state"),
                    "\n".join(lines[i:j])))
        i = j
    return out


def blocked_tasks(text: str) -> dict[int, BlockedTask]:
    """Tasks in D state named by hung-task reports or sysrq-w dumps in `text`."""
    tasks: dict[int, BlockedTask] = {}
    for m in HUNG_REPORT.finditer(text):
        t = tasks.setdefault(int(m.group("pid")), BlockedTask(m.group("name"),
                                                               int(m.group("pid"))))
        t.hung_reports += 1
    # Which task blocks sit inside a sysrq-w dump (vs a hung-task report)?
    plain = strip_times(text)
    dump_starts = [m.start() for m in SYSRQ_W.finditer(plain)]
    for name, pid, state, stack in _task_blocks(text):
        if state != "D":
            continue
        t = tasks.setdefault(pid, BlockedTask(name, pid))
        t.stack = stack   # the latest one wins
    if dump_starts:
        for k, start in enumerate(dump_starts):
            end = dump_starts[k + 1] if k + 1 < len(dump_starts) else len(plain)
            nxt = HUNG_REPORT.search(plain, start, end)
            end = nxt.start() if nxt else end
            for name, pid, state, _ in _task_blocks(plain[start:end]):
                if state == "D" and pid in tasks:
                    tasks[pid].dumps += 1
    return tasks


def parse_proc_states(text: str) -> dict[int, tuple[str, int]]:
    """`grep -H ... /proc/[0-9]*/task/[0-9]*/status` (or /proc/PID/status)
    output -> {pid or tid: (state, switches)}."""
    out: dict[int, list] = {}
    for line in text.splitlines():
        m = re.match(r"/proc/(?:\d+/task/)?(\d+)/status:(\w+):\s+(\S+)", line)
        if not m:
            continue
        pid, key, val = int(m.group(1)), m.group(2), m.group(3)
        e = out.setdefault(pid, ["?", 0])
        if key == "State":
            e[0] = val
        elif key.endswith("ctxt_switches") and val.isdigit():
            e[1] += int(val)
    return {p: (s, n) for p, (s, n) in out.items()}


@dataclass
class Verdict:
    kind: CaseKind                  # DEADLOCK | STALL | TIMEOUT | PANIC
    stuck: list[BlockedTask] = field(default_factory=list)
    progressing: list[BlockedTask] = field(default_factory=list)
    reason: str = ""
    resolution: "Resolution | None" = None     # what ending the workload's processes did
    recovered: list[BlockedTask] = field(default_factory=list)
    blocked_s: dict[int, float] = field(default_factory=dict)   # pid -> seconds blocked

    def details(self, evidence: str = "") -> str:
        parts = []
        if self.stuck:
            parts.append("Blocked tasks (stuck in D state, not scheduled):")
            for t in self.stuck:
                why = []
                if t.hung_reports:
                    why.append(f"{t.hung_reports} hung-task report(s)")
                if t.dumps:
                    why.append(f"in {t.dumps} sysrq-w dump(s)")
                if t.switches:
                    why.append(f"context switches {t.switches[0]} -> {t.switches[1]}")
                parts.append(f"\n== {t.label} blocked in {t.wait_site} ({', '.join(why)})\n"
                             f"{t.stack or '(no stack captured)'}")
        if self.progressing:
            parts.append("\nTasks seen in D state that were still being scheduled "
                         "(progressing, not stuck): "
                         + ", ".join(f"{t.label} {t.switches[0]}->{t.switches[1]}"
                                     if t.switches else t.label for t in self.progressing))
        if self.recovered:
            parts.append("Blocked tasks that recovered once the workload's processes were "
                         "ended (a stall):")
            for t in self.recovered:
                r = self.resolution
                by = r.released_by(t.pid) if r else None
                how = (f"after ending {by.task.label}"
                       + (f", which released {by.pins_released} pin(s)"
                          if by.pins_released else "") if by else "on its own")
                secs = self.blocked_s.get(t.pid)
                parts.append(f"\n== {t.label} blocked in {t.wait_site}"
                             + (f" for {secs:.1f}s" if secs is not None else "")
                             + f", recovered {how}\n{t.stack or '(no stack captured)'}")
        if self.resolution is not None:
            parts.append("\n" + resolution_text(self.resolution))
        if evidence and not self.stuck and not self.recovered:
            parts.append("\n--- evidence ---\n" + evidence[-20000:])
        return "\n".join(parts).strip()


def resolution_text(r: "Resolution") -> str:
    """How the workload's processes were ended and what the blocked tasks did."""
    lines = [f"Ending the workload's processes (holders first, then the blocked ones; "
             f"blocked tasks watched for {r.bound:g}s):"]
    if r.note:
        lines.append(f"  {r.note}")
    for e in r.ended:
        freed = (f" -> recovered: {', '.join(r.watched[p].label for p in e.freed)}"
                 if e.freed else "")
        lines.append(f"  ended {e.show()}{freed}")
    for p, at in sorted(r.killed_blocked.items()):
        lines.append(f"  {r.watched[p].label} was blocked until lab killed it at +{at:.1f}s "
                     "(its operation never completed)")
    for t in r.stuck:
        if t.pid not in r.killed_blocked:
            lines.append(f"  {t.label} still in D state, not scheduled, after {r.bound:g}s")
    for t in r.survivors:
        lines.append(f"  survivor: {t.show()} could not be ended")
    return "\n".join(lines)


def blocked_since(text: str) -> dict[int, float]:
    """Guest uptime by which each task the hung-task detector reported was
    already blocked: the report's timestamp minus its "more than N seconds"."""
    out: dict[int, float] = {}
    for m in re.finditer(r"^\[\s*(\d+\.\d+)\]\s*INFO: task .+?:(\d+) blocked for more than "
                         r"(\d+) seconds", text, re.M):
        at = float(m.group(1)) - int(m.group(3))
        pid = int(m.group(2))
        out[pid] = min(out.get(pid, at), at)
    return out


def settle(v: Verdict, res: "Resolution", since: dict[int, float] | None = None) -> Verdict:
    """The verdict once the workload's processes were ended (pure): stuck
    tasks that all recovered make a stall, any that did not a deadlock."""
    v.resolution = res
    if v.kind is not CaseKind.DEADLOCK:
        return v
    since = since or {}
    recovered = [t for t in v.stuck if t.pid in res.recovered and t.pid not in res.killed_blocked]
    stuck = [t for t in v.stuck if t not in recovered]
    for t in recovered:
        if t.pid in since and t.pid in res.uptime_at:
            v.blocked_s[t.pid] = res.uptime_at[t.pid] - since[t.pid]
    v.recovered, v.stuck = recovered, stuck
    if stuck:
        why = ("lab could not end the workload's processes (no cgroup v2)" if not res.scoped
               else "every process of the workload was ended")
        v.reason = (f"{len(stuck)} task(s) stuck in D state did not recover within "
                    f"{res.bound:g}s after {why}: "
                    + ", ".join(f"{t.label} in {t.wait_site}" for t in stuck[:5]))
        return v
    v.kind = CaseKind.STALL
    parts = []
    for t in recovered[:5]:
        by = res.released_by(t.pid)
        secs = v.blocked_s.get(t.pid)
        parts.append(f"{t.label} in {t.wait_site}"
                     + (f" ({secs:.0f}s)" if secs is not None else "")
                     + (f" recovered after lab ended {by.task.label}"
                        + (f" ({by.pins_released} pin(s) released)" if by.pins_released else "")
                        if by else " recovered on its own"))
    v.reason = (f"stall, not a deadlock: {len(recovered)} blocked task(s) recovered once the "
                f"workload's processes were ended: " + "; ".join(parts))
    return v


def classify(text: str, snap_a: dict[int, tuple[str, int]] | None = None,
             snap_b: dict[int, tuple[str, int]] | None = None,
             *, dead: bool = False) -> Verdict:
    """Deadlock vs timeout vs panic from kernel text (hung-task reports, sysrq-w
    dumps, a panic) and, when SSH still answered, two snapshots of every task's
    state and context-switch count taken a few seconds apart (pure)."""
    if PANIC.search(text):
        return Verdict(CaseKind.PANIC, reason="the kernel panicked")
    tasks = blocked_tasks(text)
    have_snaps = snap_a is not None and snap_b is not None
    if have_snaps:
        # tasks in D state in both snapshots that the text did not mention
        for pid, (state, _) in snap_b.items():
            if state == "D" and snap_a.get(pid, ("?", 0))[0] == "D" and pid not in tasks:
                tasks[pid] = BlockedTask("?", pid)
    stuck, progressing = [], []
    for pid, t in sorted(tasks.items()):
        if have_snaps and pid in snap_a and pid in snap_b:
            (sa, na), (sb, nb) = snap_a[pid], snap_b[pid]
            t.switches = (na, nb)
            if sa == "D" and sb == "D" and na == nb:
                stuck.append(t)
            else:
                progressing.append(t)
        elif have_snaps and pid not in snap_b:
            progressing.append(t)         # it has exited since
        elif t.hung_reports or t.dumps >= 2:
            stuck.append(t)               # no /proc view: trust the detector / two dumps
        else:
            progressing.append(t)
    if stuck:
        sites = ", ".join(f"{t.label} in {t.wait_site}" for t in stuck[:5])
        return Verdict(CaseKind.DEADLOCK, stuck, progressing,
                       f"{len(stuck)} task(s) stuck in D state: {sites}")
    if dead:
        return Verdict("unreachable", [], progressing,
                       "the guest stopped answering and showed no blocked task or panic")
    if progressing:
        return Verdict(CaseKind.TIMEOUT, [], progressing,
                       f"{len(progressing)} task(s) in D state but still scheduled: slow, "
                       "not stuck")
    return Verdict(CaseKind.TIMEOUT, [], [], "no task blocked in D state: slow, not stuck")


def panic_report(console: str) -> str:
    """The console from the first oops/BUG/panic line to the end."""
    m = re.search(r"^.*(BUG: |Oops|general protection fault|Kernel panic).*$", console, re.M)
    return console[m.start():][-20000:] if m else console[-20000:]


# --- effects: evidence from a live or dying guest ---------------------------

# every thread, not only every process: a blocked task is often a thread (an
# io_uring worker, a helper's second thread) that /proc/[0-9]* does not list
PROC_STATES = ("grep -H -E '^(State|voluntary_ctxt_switches|nonvoluntary_ctxt_switches):' "
               "/proc/[0-9]*/task/[0-9]*/status 2>/dev/null; true")


class HungTaskDetected(CommandTimeout):
    """`run_watched` gave up early: the hung-task detector reported a task and
    the command had not finished a grace period later."""

    def __init__(self, argv, elapsed: float, pids: set[int], report: str):
        self.pids = pids
        self.report = report
        self.elapsed = elapsed
        super().__init__(argv, elapsed, "")


def _console_from(machine, offset: int) -> str:
    try:
        with open(machine.console_log, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except (OSError, AttributeError):
        return ""


PAUSE_CHECK = 5.0   # seconds between asking qemu whether it paused the guest


def run_watched(guest, machine, cmd: str, *, timeout: float, grace: float = 5.0,
                poll: float = 1.0):
    """`guest.run(cmd, timeout=timeout)`, but raise HungTaskDetected once the
    console shows a new hung-task report and the command has still not
    finished `grace` seconds later. (A report already means a task was not
    scheduled for the whole hung-task timeout; the detector checks once per
    timeout, so a deadlock is reported 1-2 timeouts + grace + the
    investigation after it began.) Without a machine it is plain `guest.run`."""
    if machine is None or not getattr(machine, "console_log", None):
        return guest.run(cmd, timeout=timeout)
    offset = machine.console_size()
    known = hung_pids(_console_from(machine, 0))
    box: dict = {}

    def work():
        try:
            box["result"] = guest.run(cmd, timeout=timeout)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e

    worker = threading.Thread(target=work, name="run_watched", daemon=True)
    start = time.monotonic()
    worker.start()
    first_seen = None
    reported: set[int] = set()
    before: dict | None = None
    plain = unscoped(guest)
    paused = getattr(machine, "paused_reason", lambda: None)
    next_pause_check = start + PAUSE_CHECK
    while True:
        worker.join(poll)
        if not worker.is_alive():
            break
        if time.monotonic() >= next_pause_check:
            next_pause_check = time.monotonic() + PAUSE_CHECK
            reason = paused()
            if reason:
                raise GuestPaused(f"{reason}; while running: {cmd}")
        text = _console_from(machine, offset)
        new = hung_pids(text) - known
        if new and first_seen is None:
            first_seen, reported = time.monotonic(), new
            before = _moves(plain, reported)
        if first_seen is not None and time.monotonic() - first_seen >= grace:
            after = _moves(plain, reported)
            if before is not None and after is not None and not any(
                    before.get(p) == after.get(p) and after[p][0] == "D" for p in reported
                    if p in after):
                # every reported task was scheduled again meanwhile (or is gone):
                # a long wait that is moving, not a stuck one; keep waiting
                known |= reported
                first_seen = None
                continue
            raise HungTaskDetected(["guest$", cmd], time.monotonic() - start, reported, text)
    if "error" in box:
        raise box["error"]
    return box["result"]


def _moves(guest, pids: set[int]) -> dict[int, tuple[str, int]] | None:
    """{pid: (state, context switches)} of the tasks still there; None when
    the guest cannot say."""
    from .guest.scope import task_states
    try:
        return {p: (t.state, t.switches) for p, t in task_states(guest, list(pids))[1].items()}
    except Exception:  # noqa: BLE001 - then the report is trusted
        return None


def _snapshot(guest) -> dict[int, tuple[str, int]] | None:
    try:
        return parse_proc_states(guest.run(PROC_STATES, timeout=30).stdout)
    except Exception:  # noqa: BLE001 - evidence is best effort
        return None


def collect_ssh(guest, cursor: int, *, interval: float = 3.0,
                save=None) -> tuple[str, dict | None, dict | None]:
    """Over SSH: two task snapshots `interval` apart with a sysrq-w dump after
    each, then a sysrq-t dump (saved separately: it is long). Returns the
    kernel messages since `cursor` (hung-task reports + the dumps) and the
    snapshots."""
    snap_a = _snapshot(guest)
    guest.run("echo w > /proc/sysrq-trigger", timeout=30)
    time.sleep(interval)
    snap_b = _snapshot(guest)
    guest.run("echo w > /proc/sysrq-trigger", timeout=30)
    time.sleep(0.5)
    text, nxt = guest.kmsg_since(cursor)
    if save:
        try:
            guest.run("echo t > /proc/sysrq-trigger", timeout=30)
            time.sleep(1)
            save("sysrq-t.txt", guest.kmsg_since(nxt)[0])
        except Exception:  # noqa: BLE001
            pass
    return text, snap_a, snap_b


def collect_serial(machine, *, interval: float = 3.0) -> str:
    """SSH is dead: sysrq w twice (and l, the CPUs' backtraces) through the
    serial console; an NMI if the kernel does not answer the break."""
    before = machine.console_size()
    for key in ("w", "l"):
        try:
            machine.sysrq(key)
        except Exception:  # noqa: BLE001
            pass
    time.sleep(interval)
    if "sysrq:" not in _console_from(machine, before):
        try:
            machine.nmi()
        except Exception:  # noqa: BLE001
            pass
        time.sleep(2)
    try:
        machine.sysrq("w")
    except Exception:  # noqa: BLE001
        pass
    time.sleep(1.5)
    return _console_from(machine, before)


def tag(exc: CommandTimeout, case_name: str) -> CommandTimeout:
    """Name the testcase a timeout belongs to (else the workload's name is used)."""
    if not getattr(exc, "case_name", None):
        exc.case_name = case_name
    return exc


def keep(exc: BaseException, done: list) -> BaseException:
    """Attach the cases a workload finished before `exc` (say, ext4's before
    xfs hung): the runner records them along with the investigated one."""
    exc.partial = list(done) + list(getattr(exc, "partial", []))
    return exc


def _try_ssh(guest, cursor, save):
    try:
        return collect_ssh(guest, cursor, save=save)
    except Exception:  # noqa: BLE001 - SSH died meanwhile: use the serial console
        return None


def investigate(ctx, exc: CommandTimeout, cursor: int, case_name: str) -> CaseResult:
    """Collect evidence before teardown and classify a workload that ran past
    its timeout (or that `run_watched` stopped): deadlock, timeout or panic.
    The case is named `case_name` unless the workload tagged the exception."""
    case_name = getattr(exc, "case_name", None) or case_name
    machine, guest = ctx.machine, unscoped(ctx.guest)
    start = time.monotonic()
    snap_a = snap_b = None
    hung_text = getattr(exc, "report", "") or ""
    dead = False
    if machine is not None and not machine.running:
        via = "console log (qemu has exited)"
        evidence = machine.console_text()
        dead = True
    elif guest.alive(timeout=15) and (ssh := _try_ssh(guest, cursor, ctx.save)):
        via = "ssh"
        evidence, snap_a, snap_b = ssh
    elif machine is not None:
        via = "serial console (sysrq via break)"
        evidence = collect_serial(machine)
        dead = True
        if not machine.running or PANIC.search(machine.console_text()):
            evidence = machine.console_text()
    else:
        via = "none (no guest, no machine)"
        evidence = ""
        dead = True
    if hung_text and hung_text not in evidence:
        evidence = hung_text + "\n" + evidence
    ctx.save("timeout-evidence.txt", evidence)
    if snap_a is not None:
        ctx.save("tasks-a.txt", repr(snap_a))
        ctx.save("tasks-b.txt", repr(snap_b))
    v = classify(evidence, snap_a, snap_b, dead=dead)
    if not dead and v.kind in (CaseKind.DEADLOCK, CaseKind.TIMEOUT):
        # stall or deadlock: end the workload's processes, watch the blocked
        try:
            res = end_workload(guest, getattr(ctx, "scope", None), [t.pid for t in v.stuck],
                               bound=getattr(ctx, "recovery", 30.0))
            v = settle(v, res, blocked_since(evidence))
            ctx.save("resolution.txt", resolution_text(res))
        except Exception as e:  # noqa: BLE001 - the guest died meanwhile: the evidence stands
            v.reason += f" (ending the workload's processes failed: {e})"
    if isinstance(exc, HungTaskDetected):
        waited = (f"the hung-task detector reported pid(s) "
                  f"{', '.join(map(str, sorted(exc.pids)))} and the workload had not finished "
                  f"{exc.elapsed:.0f}s after it started")
    else:
        waited = f"workload ran past its {exc.timeout:g}s timeout"
    if v.kind is CaseKind.PANIC:
        details = panic_report(evidence)
    else:
        details = v.details(evidence)
    msg = f"{v.reason}; {waited} (evidence via {via})"
    props = {"evidence_via": via, "investigation_s": f"{time.monotonic() - start:.1f}"}
    if v.stuck:
        props["blocked_tasks"] = ", ".join(f"{t.label}@{t.wait_site}" for t in v.stuck)
    if v.recovered:
        props["recovered_tasks"] = ", ".join(f"{t.label}@{t.wait_site}" for t in v.recovered)
    if v.blocked_s:
        props["max_blocked_s"] = f"{max(v.blocked_s.values()):.1f}"
    r = v.resolution
    if r is not None:
        props["ended"] = ", ".join(e.task.label for e in r.ended)
        if r.survivors:
            props["survivors"] = ", ".join(t.show() for t in r.survivors)
        by = {e.task.label for t in v.recovered if (e := r.released_by(t.pid))}
        if by:
            props["released_by"] = ", ".join(sorted(by))
    return CaseResult(case_name, Status.FAILED, getattr(exc, "elapsed", exc.timeout),
                      kind=v.kind, message=msg, details=details, output=exc.output_tail,
                      properties=props)
