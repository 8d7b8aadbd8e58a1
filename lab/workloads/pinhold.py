"""A pin held while its holder blocks: the situation the pinned-pages debate
is about, on an fsdax file.

The pinhold helper pins a page of a file on an `-o dax` mount (FOLL_PIN,
through process_vm_readv) and keeps the pin while the copy waits on a
userfaultfd page, for `hold` seconds (0: until lab ends it). Meanwhile a
truncate of the file waits in ext4_break_layouts / xfs_break_dax_layouts for
the pin to go away (interruptible sleep) holding the inode lock, and a
writer of the file waits for that lock in D state. When the pin goes away
both complete: a stall bounded by the pin's life. With `hold: 0` the holder
never lets go by itself: the hung-task detector reports the writer, and the
runner's investigation ends the workload's processes, the holder first, and
sees the writer recover: a stall, not a deadlock. The case records how long
the truncate and the write took (truncate_ms, write_ms) and how long the pin
was held (held_ms).

`scenario: frozen` instead registers anonymous pages as io_uring fixed
buffers (long-term pins, held until the ring is freed) and has a second
thread of the same process write to a frozen ext4 on the NVMe drive: the
writer waits in D state for good, so the process cannot finish exiting when
killed, its ring stays open and its pins stay held by a live task: a
deadlock whose pins are held, not leaked (the guest is then replaced).

Scenarios rather than tests of one kernel change: they exercise the
verdicts (stall vs deadlock, pins held vs leaked) on a real kernel and
measures how a filesystem treats a long-held short-term pin.
"""

from __future__ import annotations

import shlex
import time

from .. import hang
from ..errors import CommandTimeout
from ..results import CaseResult, Status
from ..validate import MAX_SECONDS
from . import register
from .base import Option, Workload, WorkloadContext
from .common import (GUEST_DIR, NVME, GuestProc, fetch, first_line, has_dax_always,
                     install_helper, logged, make_fs, mount_options, nvme_present, setup_fsdax,
                     unmount, wait_files)

MNT = "/mnt/lab-pinhold"
FROZEN = "/mnt/lab-pinhold-frozen"


def timed(cmd: str) -> str:
    """A shell line that runs `cmd` and prints how long it took, in ms (pure)."""
    return (f"s=$(date +%s%N); {cmd}; rc=$?; e=$(date +%s%N); "
            f"echo $(( (e - s) / 1000000 )); exit $rc")


def events(text: str) -> dict[str, dict]:
    """pinhold's JSON lines by event name (pure)."""
    import json
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and "event" in ev:
                out[str(ev["event"])] = ev
    return out


def last_int(text: str) -> int | None:
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


@register
class PinHold(Workload):
    name = "pinhold"
    description = ("a FOLL_PIN held while its holder blocks; truncate and a writer of the "
                   "fsdax file wait for it")
    options = {
        "scenario": Option(str, "truncate", "truncate: a DAX truncate and a writer wait for "
                           "the pin; frozen: the pinning process writes to a frozen filesystem",
                           choices=("truncate", "frozen")),
        "filesystem": Option(str, "ext4", "the filesystem mounted -o dax",
                             choices=("ext4", "xfs")),
        "hold": Option(float, 1.0, "seconds the holder keeps the pin (0: until lab ends it)",
                       minimum=0, maximum=MAX_SECONDS),
        "pages": Option(int, 1, "pages of the file pinned", minimum=1, maximum=4096),
    }

    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        o = self.opts
        g = logged(ctx)
        if o["scenario"] == "frozen":
            return [self._frozen(ctx, g)]
        fs = o["filesystem"]
        name = f"pinhold.{fs}"
        dev, why = setup_fsdax(g)
        if dev is None:
            return [CaseResult(name, Status.SKIPPED, message=why)]
        mk = make_fs(g, fs, dev, MNT, dax=True)
        if not mk.ok:
            return [CaseResult(name, Status.ERROR, message=f"cannot make and mount {fs} on "
                               f"{dev} -o dax: {first_line(mk.stderr)}")]
        opts = mount_options(g, MNT) or ""
        if not has_dax_always(opts):
            unmount(g, MNT)
            return [CaseResult(name, Status.ERROR, message=f"mount -o dax did not take "
                               f"effect ({opts})")]
        helper = install_helper(ctx, g, "pinhold")
        try:
            case = self._scenario(ctx, g, name, helper, opts)
        except CommandTimeout as e:
            # no cleanup: the runner investigates and ends the processes itself
            raise hang.tag(e, name)
        unmount(g, MNT)
        return [case]

    def _frozen(self, ctx, g) -> CaseResult:
        o = self.opts
        name = "pinhold.frozen"
        if not nvme_present(g):
            return CaseResult(name, Status.SKIPPED, message=f"{NVME} is missing: the machine "
                              "has no NVMe drive (machine.nvme_mb)")
        mk = make_fs(g, "ext4", NVME, FROZEN)
        if not mk.ok:
            return CaseResult(name, Status.ERROR, message=f"cannot make and mount ext4 on "
                              f"{NVME}: {first_line(mk.stderr)}")
        helper = install_helper(ctx, g, "pinhold")
        wdir = f"{GUEST_DIR}/{name}"
        g.run(f"rm -rf {wdir}; mkdir -p {wdir}; fsfreeze -f {FROZEN}", timeout=60, check=True)
        start = time.monotonic()
        holder = GuestProc(g, "pinhold", shlex.join(
            [helper, "--uring-pin", "--pages", str(o["pages"]), "--write-to",
             f"{FROZEN}/f"]), wdir).start()
        try:
            done = g.run(f"i=0; until grep -q written {wdir}/pinhold.out; do [ -e "
                         f"{holder.rc_file} ] && exit 1; i=$((i+1)); sleep 0.2; done",
                         timeout=ctx.timeout, watch=True).ok
        except CommandTimeout as e:
            raise hang.tag(e, name)        # the expected path: investigated by the runner
        fetch(g, wdir, ctx.outdir / name)
        g.run(f"fsfreeze -u {FROZEN}; umount {FROZEN}; true", timeout=60)
        ev = events(holder.output())
        return CaseResult(name, Status.FAILED, time.monotonic() - start,
                          message="the write to the frozen filesystem completed"
                                  if done else f"pinhold failed: {ev.get('error')}")

    def _scenario(self, ctx, g, name: str, helper: str, mount_opts: str) -> CaseResult:
        o = self.opts
        wdir = f"{GUEST_DIR}/{name}"
        f = f"{MNT}/held.dat"
        g.run(f"rm -rf {wdir}; mkdir -p {wdir}", timeout=30)
        start = time.monotonic()
        holder = GuestProc(g, "pinhold", shlex.join(
            [helper, "--file", f, "--pages", str(o["pages"]), "--hold", f"{o['hold']:g}"]),
            wdir).start()
        pinned = g.run(f"for i in $(seq 150); do grep -q '\"pinned\"' {wdir}/pinhold.out && "
                       f"exit 0; [ -e {holder.rc_file} ] && exit 1; sleep 0.2; done; exit 1",
                       timeout=60)
        props = {"filesystem": o["filesystem"], "mount_options": mount_opts,
                 "hold_s": f"{o['hold']:g}", "pages": str(o["pages"]), "file": f}
        if not pinned.ok:
            fetch(g, wdir, ctx.outdir / name)
            ev = events(holder.output())
            err = ev.get("error", {})
            return CaseResult(name, Status.ERROR, time.monotonic() - start, properties=props,
                              message=f"pinhold could not pin the file: "
                                      f"{err.get('call', '?')}: {err.get('error', 'no output')}")
        q = shlex.quote(f)
        trunc = GuestProc(g, "truncate", timed(f"truncate -s 0 {q}"), wdir).start()
        # the writer goes in once the truncate waits (or has finished)
        g.run(f"for i in $(seq 50); do [ -e {trunc.rc_file} ] && exit 0; for p in $(pgrep -s "
              f"{trunc.pid} -x truncate); do grep -q break_layouts /proc/$p/stack 2>/dev/null "
              f"&& exit 0; done; sleep 0.2; done; exit 1", timeout=60)
        writer = GuestProc(g, "write", timed(f"printf x >> {q}"), wdir).start()
        budget = ctx.timeout - (time.monotonic() - start)
        done = wait_files(g, [writer.rc_file, trunc.rc_file, holder.rc_file],
                          timeout=max(budget, 5))
        fetch(g, wdir, ctx.outdir / name)
        ev = events(holder.output())
        trunc_ms, write_ms = last_int(trunc.output()), last_int(writer.output())
        rel = ev.get("released", {})
        props.update({"truncate_ms": str(trunc_ms), "write_ms": str(write_ms),
                      "held_ms": str(rel.get("held_ms"))})
        elapsed = time.monotonic() - start
        if not done:
            return CaseResult(name, Status.FAILED, elapsed, properties=props,
                              message=f"the truncate and the writer did not finish within "
                                      f"{budget:.0f}s")
        rcs = (holder.returncode(), trunc.returncode(), writer.returncode())
        if rcs != (0, 0, 0):
            return CaseResult(name, Status.FAILED, elapsed, properties=props,
                              message=f"exit status pinhold {rcs[0]}, truncate {rcs[1]}, "
                                      f"write {rcs[2]}")
        return CaseResult(name, Status.PASSED, elapsed, properties=props,
                          output=f"{name}: pin held {rel.get('held_ms')} ms; truncate took "
                                 f"{trunc_ms} ms and the write {write_ms} ms")
