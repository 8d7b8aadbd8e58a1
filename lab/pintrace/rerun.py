"""A workload that leaked pins, run once more with pin tracing (effects).

The runner calls `follow_up` with a workload's pin-balance case. When it is
a pin leak and the workload finished on its own (no timeout, deadlock or
dead guest), the workload runs again in the same guest with the probes of
lab/pintrace/probes.py placed through tracefs; once its pins have settled
the trace is read back, the probes are removed and the settings restored,
and the attribution (lab/pintrace/trace.py) goes into the pin-leak case:
its message starts with "2 pins acquired via X <- Y were never released",
its details list every stack with its count, its properties say the same
as data. The rerun's own results are not the workload's verdict: they, its
commands, its dmesg and the raw trace are kept in `NN-<workload>/pintrace/`.
A kernel that cannot be traced says "cannot trace: ..." in the case.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from .. import checks
from ..errors import LabError
from ..guest.base import GuestPaused, GuestUnreachable
from ..results import CaseKind, CaseResult, Status
from ..workloads.base import WorkloadContext
from ..workloads.common import logged
from .probes import (CannotTrace, buffer_kb, discover_script, foll_pin_flag, node_stat_items,
                     parse_discovery, probe_set, setup_script, stop_script,
                     system_map_symbols, teardown_script)
from .trace import Attribution, analyse, gup_functions, inside_gup

SUBDIR = "pintrace"
TRACE_REMOTE = "/tmp/lab-pintrace.txt"
# a workload that ended like this left the guest in no state to rerun it
_UNHEALTHY = {CaseKind.TIMEOUT, CaseKind.DEADLOCK, CaseKind.UNREACHABLE, CaseKind.PANIC,
              CaseKind.INFRA, CaseKind.INTERRUPTED, CaseKind.PINS_HELD}

Rerun = Callable[[WorkloadContext], list[CaseResult]]


class State(enum.StrEnum):
    """What came of the traced rerun: the pin case's `pintrace` property."""

    ATTRIBUTED = "attributed"           # pins never released, named by call site
    NOT_REPRODUCED = "not-reproduced"   # the rerun leaked nothing
    CANNOT_TRACE = "cannot-trace"       # the kernel lacks what the probes need
    FAILED = "failed"                   # the guest or the tracing broke


ATTRIBUTED, NOT_REPRODUCED, CANNOT_TRACE, FAILED = State


@dataclass
class Outcome:
    state: State
    note: str = ""                  # one line, for the case's message
    attribution: Attribution | None = None
    seconds: float = 0.0
    vmstat: tuple[int, int] | None = None      # acquired, released over the rerun
    rerun: list[CaseResult] = field(default_factory=list)
    alive: bool = True


def wanted(pin: CaseResult, cases: list[CaseResult]) -> bool:
    """A pin leak of a workload that finished on its own."""
    return (pin.kind == CaseKind.PIN_LEAK and pin.status is Status.FAILED
            and not any(c.kind in _UNHEALTHY or c.status is Status.ERROR for c in cases))


def follow_up(pin: CaseResult, cases: list[CaseResult], ctx: WorkloadContext,
              rerun: Rerun) -> tuple[CaseResult, bool]:
    """The pin-balance case, with the call sites of a leak when there is one
    and it can be traced; and whether the guest still answers."""
    if not wanted(pin, cases):
        return pin, True
    ctx.log(f"{pin.classname}: pin leak; running it again with pin tracing")
    outcome = traced_rerun(ctx, rerun)
    ctx.log(f"{pin.classname}: pin tracing: {outcome.note} ({outcome.seconds:.0f}s)")
    return annotate(pin, outcome, f"{ctx.outdir.name}/{SUBDIR}"), outcome.alive


def traced_rerun(ctx: WorkloadContext, rerun: Rerun) -> Outcome:
    """Place the probes, run the workload again, read the trace, remove the
    probes; never raises for what the guest or the kernel did."""
    tdir = ctx.outdir / SUBDIR
    rctx = replace(ctx, outdir=tdir)
    g = logged(rctx)
    start = time.monotonic()
    release = ctx.kernel.release if ctx.kernel else ""
    smap_text = _read(ctx.kernel.system_map if ctx.kernel else None)
    symbols = system_map_symbols(smap_text)       # None: ask the guest's /proc/kallsyms
    try:
        tfs = parse_discovery(g.run(discover_script(symbols is None), timeout=120).stdout,
                              symbols)
        ps = probe_set(set(tfs.symbols), node_stat_items(tfs.vmstat), foll_pin_flag(release))
    except CannotTrace as e:
        return Outcome(CANNOT_TRACE, f"cannot trace: {e}", seconds=time.monotonic() - start)
    except (GuestUnreachable, GuestPaused) as e:
        return Outcome(FAILED, f"the guest stopped answering: {_line(e)}", alive=False,
                       seconds=time.monotonic() - start)
    except LabError as e:
        return Outcome(FAILED, f"pin tracing failed: {_line(e)}",
                       seconds=time.monotonic() - start)
    out = Outcome(FAILED)
    try:
        _trace(ctx, rctx, g, tfs, ps, rerun, smap_text, out)
    except (GuestUnreachable, GuestPaused) as e:
        out.state, out.note, out.alive = FAILED, f"the guest stopped answering: {_line(e)}", False
    except LabError as e:
        out.state, out.note = FAILED, f"pin tracing failed: {_line(e)}"
    finally:
        if out.alive:
            try:
                g.run(teardown_script(tfs) + f"rm -f {TRACE_REMOTE}\n", timeout=120)
            except LabError:
                pass
        out.seconds = time.monotonic() - start
        _save(tdir, out, ps.notes)
    return out


def _trace(ctx, rctx, g, tfs, ps, rerun: Rerun, smap_text: str, out: Outcome) -> None:
    setup = g.run(setup_script(tfs, ps, buffer_kb(tfs)), timeout=120)
    if not setup.ok:
        said = " ".join((setup.stdout + setup.stderr).split())[-300:]
        out.state, out.note = CANNOT_TRACE, f"cannot trace: {said or 'tracefs setup failed'}"
        return
    guest = ctx.guest
    cursor = guest.kmsg_cursor()
    before = checks.read_pins(guest)
    problem = ""
    try:
        out.rerun = rerun(rctx)
    except (GuestUnreachable, GuestPaused):
        raise
    except LabError as e:      # a timeout or a host-side failure of the rerun itself
        problem = f"the rerun did not finish ({_line(e)}); "
    if ctx.scope is not None and ctx.scope.pids():
        # what the rerun left behind is ended, not investigated: the rerun is
        # no verdict (the runner still sees whatever cannot be ended)
        ctx.scope.kill_all()
    if before is not None:
        after, _, _ = checks.settle_pins(guest, before)
        if after is not None:
            out.vmstat = (after.acquired - before.acquired, after.released - before.released)
    g.run(stop_script(tfs, TRACE_REMOTE), timeout=600, check=True)
    local = rctx.outdir / "trace.txt"
    g.get(TRACE_REMOTE, local)
    dmesg, _ = guest.kmsg_since(cursor)
    rctx.save("dmesg.txt", dmesg)
    out.attribution = a = analyse(local.read_text(errors="replace"),
                                  inside_gup(gup_functions(smap_text)))
    rctx.save("attribution.txt", a.report() + "\n")
    if a.unreleased:
        out.state, out.note = ATTRIBUTED, problem + a.headline()
    else:
        seen = (f"; /proc/vmstat over it: {out.vmstat[0]} acquired, {out.vmstat[1]} released"
                if out.vmstat else "")
        out.state = NOT_REPRODUCED
        out.note = (f"{problem}the traced rerun leaked no pin ({a.balance.acquired} acquired, "
                    f"{a.balance.released} released){seen}")


def _save(tdir, out: Outcome, notes: tuple[str, ...]) -> None:
    tdir.mkdir(parents=True, exist_ok=True)
    data = {"state": str(out.state), "note": out.note, "seconds": round(out.seconds, 1),
            "vmstat_delta": list(out.vmstat) if out.vmstat else None,
            "probe_notes": list(notes),
            "rerun_cases": [c.to_dict() for c in out.rerun],
            "attribution": out.attribution.to_dict() if out.attribution else None}
    (tdir / "pintrace.json").write_text(json.dumps(data, indent=2) + "\n")


def _read(path) -> str:
    try:
        return path.read_text(errors="replace") if path else ""
    except OSError:
        return ""


def _line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def annotate(pin: CaseResult, out: Outcome, where: str = SUBDIR) -> CaseResult:
    """The pin-leak case with what the traced rerun found (pure)."""
    props = dict(pin.properties, pintrace=str(out.state), pintrace_s=f"{out.seconds:.1f}",
                 pintrace_dir=where)
    details = pin.details
    a = out.attribution
    if out.state is ATTRIBUTED and a is not None:
        props.update(pintrace_unreleased=str(a.unreleased),
                     pintrace_sites="; ".join(f"{s}={n}" for s, n in a.sites()))
        if out.vmstat:
            props["pintrace_vmstat"] = f"{out.vmstat[0]}/{out.vmstat[1]}"
        message = f"{out.note}; {pin.message}"
        ran = ", ".join(f"{c.name} {c.status.value}" for c in out.rerun) or "none"
        details = (f"{a.report()}\n\n(the rerun's own results: {ran}; its files: {where}/)"
                   f"\n\n{pin.details}")
    else:
        message = f"{pin.message} ({out.note})"
        details = f"pin tracing: {out.note}\n\n{pin.details}"
    return replace(pin, message=message, details=details, properties=props,
                   duration=pin.duration + out.seconds)
