"""DAX: an fsdax namespace on the emulated NVDIMM, ext4 and xfs mounted with
-o dax, and the pinstress helper: it mmaps a file there and pins its pages
(O_DIRECT reads from the NVMe drive into the mapping; io_uring fixed
buffers) while another thread truncates the file and punches holes in it.
Truncate must complete (DAX truncate waits for pinned pages to be released)
and the data read back must match what was written."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from .. import hang
from ..errors import CommandTimeout
from ..results import CaseKind, CaseResult, Status
from ..validate import MAX_DISK_MB, MAX_SECONDS
from . import register
from .base import Option, Workload, WorkloadContext
from .common import (GUEST_DIR, NVME, GuestProc, fetch, first_line, has_dax_always,
                     install_helper, logged, make_fs, mount_options, nvme_present,
                     parse_json_tail, setup_fsdax)

MNT = "/mnt/lab-dax"


def pinstress_argv(helper: str, *, file: str, dev: str, size_mb: int, seconds: int,
                   chunk_kb: int, uring: bool, stuck_after: float,
                   kick_after: float = 2.0) -> list[str]:
    argv = [helper, "dax", "--file", file, "--dev", dev, "--size-mb", str(size_mb),
            "--seconds", str(seconds), "--chunk-kb", str(chunk_kb),
            "--stuck-after", f"{stuck_after:g}", "--kick-after", f"{kick_after:g}"]
    if uring:
        argv.append("--uring")
    return argv


def judge(name: str, res: dict | None, *, rc: int | None, duration: float,
          stderr: str = "") -> list[CaseResult]:
    """The helper's JSON summary -> testcases (pure): the case `name`, with
    the first problem of the run (see _problems for the order), and a failed
    case `name.<problem>` for each further one. Every problem is reported:
    a lost wakeup never hides corruption, IO errors or a bad exit status,
    and since lab/report.py tells problems apart by case name, corruption
    beside a lost wakeup that the baseline kernel shows too is a new
    problem, not a pre-existing one."""
    if res is None:
        return [CaseResult(name, Status.FAILED, duration, message=f"pinstress printed no "
                           f"summary (exit {rc})", details=stderr[-4000:])]
    if "fatal" in res:
        return [CaseResult(name, Status.ERROR, duration, message=f"pinstress: {res['fatal']}",
                           details=stderr[-4000:])]
    d, u, t, fin = res["direct"], res["uring"], res["truncate"], res["final"]
    props = {
        "direct_reads": str(d["reads"]), "direct_verified": str(d["verified"]),
        "direct_raced": str(d["raced"] + d["efault"] + d["sigbus"]),
        "uring_mapping": res["uring_mapping"], "uring_reads": str(u["reads"]),
        "uring_writes": str(u["writes"]), "uring_verified": str(u["verified"]),
        "truncates": str(t["truncates"]), "punches": str(t["punches"]),
        "max_truncate_ms": str(t["max_truncate_ms"]), "max_punch_ms": str(t["max_punch_ms"]),
        "lost_wakeups": str(t.get("lost_wakeups", 0)),
        "statx_dax": str(res.get("statx_dax")),
        "read_mb_s": f"{(d['bytes'] + u['bytes']) / 2**20 / max(res['seconds'], 0.001):.1f}",
    }
    if res.get("file"):
        props["file"] = str(res["file"])
    # the slowest IO of each pinner (lab.latency judges them), when it did any
    if d["reads"] and "max_io_ms" in d:
        props["max_direct_read_ms"] = str(d["max_io_ms"])
    if (u["reads"] or u["writes"]) and "max_io_ms" in u:
        props["max_uring_io_ms"] = str(u["max_io_ms"])
    mapping = res["uring_mapping"]
    note = {"off": "io_uring not used",
            "ok": "the kernel accepted the mapping as an io_uring fixed buffer (long-term pin)"}
    pin_note = note.get(mapping, f"the kernel refused a long-term pin of the mapping "
                                 f"({mapping.split(':', 1)[-1]}): expected for fsdax")
    summary = (f"{name}: {d['reads']} O_DIRECT reads into the mapping ({d['verified']} verified, "
               f"{props['direct_raced']} raced a truncate), {u['reads']} io_uring fixed-buffer "
               f"reads / {u['writes']} writes ({u['verified']} verified); {t['truncates']} "
               f"truncates (max {t['max_truncate_ms']} ms), {t['punches']} hole punches (max "
               f"{t['max_punch_ms']} ms); {pin_note}; final read-back "
               f"{'ok' if fin['first_bad_offset'] < 0 and fin['punch_ok'] else 'BAD'}")
    problems = _problems(res, rc, stderr)
    # a data check that could not run (every read raced a truncate, as under
    # a loaded host) is inconclusive: a skipped case, never a failure
    inconclusive = [CaseResult(f"{name}.{p.slug}", Status.SKIPPED, message=p.message,
                               properties={"found_by": name})
                    for p in problems if p.slug in INCONCLUSIVE]
    problems = [p for p in problems if p.slug not in INCONCLUSIVE]
    if not problems:
        return [CaseResult(name, Status.PASSED, duration, output=summary,
                           properties=props)] + inconclusive
    first, *others = problems
    main = CaseResult(name, Status.FAILED, duration, kind=first.kind, output=summary,
                      message=first.message, details=first.details, properties=props)
    if first.slug == "lost-wakeup":
        main.properties["wait_site"] = first.site
    main.properties["problems"] = ",".join(p.slug for p in problems)
    if others:
        main.message += (" (also: " + ", ".join(p.what for p in others)
                         + f"; each its own case {name}.<problem>)")
    return [main] + [CaseResult(f"{name}.{p.slug}", Status.FAILED, kind=p.kind,
                                message=p.message, details=p.details,
                                properties={"found_by": name}) for p in others] + inconclusive


INCONCLUSIVE = {"unverified"}


@dataclass(frozen=True)
class Problem:
    """One thing that went wrong in a pinstress run."""

    slug: str             # names its own case: <case>.<slug>
    what: str             # a few words for the list in the first case's message
    kind: str
    message: str
    details: str = ""
    site: str = ""


def _problems(res: dict, rc: int | None, stderr: str) -> list[Problem]:
    """Every problem of a run, in PRECEDENCE order (pure). The first is the
    case's own verdict: blocking first (a stuck truncate, a lost wakeup, a
    truncate held behind a registration), since that is what the workload
    is about and what the baseline kernel shows too (6.1's lost wakeup);
    then data corruption, IO errors, nothing verified, and an exit status
    that none of these explains."""
    d, u, t, fin = res["direct"], res["uring"], res["truncate"], res["final"]
    out: list[Problem] = []
    if t["stuck"]:
        out.append(Problem("deadlock", "a stuck truncate", CaseKind.DEADLOCK,
                           f"a truncate/punch did not complete in {t['longest_op_s']}s: "
                           "it was still waiting long after the pinners had stopped and "
                           "no page of the file was referenced any more"
                           + (f" ({t['kicks']} signal(s) sent)" if t.get("kicks") else "")))
    if t.get("lost_wakeups"):
        stack = t.get("slow_op_stack", "")
        site = stack.split("]", 1)[1].split("+", 1)[0].strip() if "]" in stack else "?"
        out.append(Problem("lost-wakeup", "a lost wakeup", CaseKind.LOST_WAKEUP,
                           f"a truncate/punch stayed blocked in {site} for "
                           f"{t['longest_op_s']}s after every page reference had been "
                           "dropped, and completed at once when a signal restarted it: "
                           "the wakeup it waited for was lost",
                           "Kernel stack of the blocked truncate/punch (while no page "
                           "of the file was referenced any more):\n" + stack, site))
    if t["blocked_by_registered_mapping_s"]:
        # it completed once the pin went away: a stall bounded by the pin's life
        out.append(Problem("registration-block", "a truncate blocked by a registration",
                           CaseKind.STALL,
                           f"truncate blocked {t['blocked_by_registered_mapping_s']}s "
                           "behind the io_uring registration of the fsdax mapping (it "
                           "completed only once the buffers were unregistered)"))
    bad = d["mismatches"] + u["mismatches"]
    if bad or fin["first_bad_offset"] >= 0 or not fin["punch_ok"]:
        where = (d["first_bad_offset"] if d["mismatches"] else u["first_bad_offset"]
                 if u["mismatches"] else fin["first_bad_offset"])
        out.append(Problem("corruption", "data corruption", CaseKind.CORRUPTION,
                           f"data read back does not match: {bad} mismatching chunk(s) "
                           f"under stress, final read-back first bad offset {where}, "
                           f"punched range zero: {fin['punch_ok']}"))
    if d["errors"] or u["errors"]:
        out.append(Problem("io-errors", "IO errors", CaseKind.NONE,
                           f"IO errors: {d['first_error'] or u['first_error']}"))
    if d["verified"] == 0:
        out.append(Problem("unverified", "no verified read", CaseKind.NONE,
                           "no read could be verified (every read raced a truncate)"))
    if rc not in (0, None) and not out:
        out.append(Problem("exit-status", f"exit {rc}", CaseKind.NONE, f"pinstress exited {rc}",
                           stderr[-4000:]))
    return out


@register
class Dax(Workload):
    name = "dax"
    description = "fsdax on an emulated NVDIMM: mmap + pin + truncate/punch with verification"
    needs = frozenset({"pmem", "nvme"})
    options = {
        "filesystems": Option(tuple, ("ext4", "xfs"), "filesystems mounted -o dax",
                              choices=("ext4", "xfs")),
        "seconds": Option(int, 5, "seconds of pin + truncate stress per filesystem", minimum=1,
                          maximum=MAX_SECONDS),
        "size_mb": Option(int, 8, "size of the mapped file, MiB", minimum=1, maximum=MAX_DISK_MB),
        "chunk_kb": Option(int, 64, "bytes per read, KiB (multiple of 4)", minimum=4,
                           maximum=1 << 20),
        "uring": Option(bool, True, "also pin with io_uring fixed buffers"),
        "stuck_after": Option(float, 20.0, "seconds a truncate may keep waiting after the "
                              "pinners stopped before it is stuck (a deadlock)",
                              minimum=1, maximum=MAX_SECONDS),
        "kick_after": Option(float, 2.0, "seconds a truncate may keep waiting once nothing "
                             "references the file's pages before a signal restarts it (a "
                             "lost wakeup if it then completes)", minimum=0.5,
                             maximum=MAX_SECONDS),
    }

    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        o = self.opts
        if o["chunk_kb"] % 4 or o["size_mb"] * 1024 < 2 * o["chunk_kb"]:
            return [CaseResult("dax", Status.ERROR, message="chunk_kb must be a multiple of 4 "
                               "and size_mb at least two chunks")]
        g = logged(ctx)
        dev, why = setup_fsdax(g)
        if dev is None:
            return [CaseResult("dax", Status.SKIPPED, message=why)]
        if not nvme_present(g):
            return [CaseResult("dax", Status.SKIPPED, message=f"{NVME} is missing: the helper "
                               "reads into the mapping from an NVMe drive (machine.nvme_mb)")]
        helper = install_helper(ctx, g)
        cases: list[CaseResult] = []
        for fs in o["filesystems"]:
            try:
                cases += self._fs(ctx, g, fs, dev, helper)
            except CommandTimeout as e:
                raise hang.keep(e, cases)
        return cases

    def _fs(self, ctx, g, fs: str, dev: str, helper: str) -> list[CaseResult]:
        mount_case = f"dax.{fs}.mount"
        t0 = time.monotonic()
        mk = make_fs(g, fs, dev, MNT, dax=True)
        if not mk.ok:
            why = first_line(mk.stderr)
            # a namespace too small for the filesystem, or no DAX support: not
            # the kernel misbehaving
            status = Status.SKIPPED if any(s in mk.stderr for s in (
                "must be larger", "not support", "unknown filesystem", "too small")) \
                else Status.FAILED
            return [CaseResult(mount_case, status, time.monotonic() - t0,
                               message=f"mount -o dax of {fs} on {dev} failed: {why}")]
        cleanup = (f"pkill -KILL -x pinstress 2>/dev/null; umount {MNT} 2>/dev/null"
                   f" || umount -l {MNT}; true")
        opts = mount_options(g, MNT) or ""
        props = {"mount_options": opts}
        if not has_dax_always(opts):
            g.run(cleanup, timeout=120)
            return [CaseResult(mount_case, Status.FAILED, time.monotonic() - t0,
                               message=f"mount -o dax did not take effect: {opts}",
                               properties=props)]
        cases = [CaseResult(mount_case, Status.PASSED, time.monotonic() - t0,
                            output=f"{fs} on {dev} mounted with {opts}", properties=props)]
        try:
            stress = self._stress(ctx, g, fs, helper)
        except CommandTimeout as e:
            # no cleanup: the runner's deadlock investigation looks first
            raise hang.tag(e, f"dax.{fs}.pin-truncate")
        cases += stress
        g.run(cleanup, timeout=120)
        if stress[0].properties.get("statx_dax") == "False":
            cases[0] = CaseResult(mount_case, Status.FAILED, cases[0].duration,
                                  message="statx does not report STATX_ATTR_DAX on a file "
                                          f"of the -o dax mount ({opts})", properties=props)
        return cases

    def _stress(self, ctx, g, fs: str, helper: str) -> list[CaseResult]:
        o = self.opts
        name = f"dax.{fs}.pin-truncate"
        wdir = f"{GUEST_DIR}/{name}"
        argv = pinstress_argv(helper, file=f"{MNT}/pin.dat", dev=NVME, size_mb=o["size_mb"],
                              seconds=o["seconds"], chunk_kb=o["chunk_kb"], uring=o["uring"],
                              stuck_after=o["stuck_after"], kick_after=o["kick_after"])
        start = time.monotonic()
        p = GuestProc(g, "pinstress", shlex.join(argv), wdir).start()
        budget = o["seconds"] + 4 * o["stuck_after"] + 90     # pinstress's own cap + margin
        finished = g.run(f"i=0; until [ -e {p.rc_file} ] || grep -q '^{{' {wdir}/pinstress.out"
                         f" 2>/dev/null; do i=$((i+1)); [ $i -gt {budget * 5} ] && exit 1; "
                         "sleep 0.2; done", timeout=budget + 60, watch=True).ok
        duration = time.monotonic() - start
        fetch(g, wdir, ctx.outdir / name)
        res = parse_json_tail(p.output())
        err = g.run(f"tail -c 4000 {wdir}/pinstress.err", timeout=30).stdout
        if not finished:
            cases = judge(name, None, rc=None, duration=duration, stderr=err)
            cases[0].message = f"pinstress did not finish within {budget}s"
            cases[0].kind = CaseKind.TIMEOUT
        else:
            cases = judge(name, res, rc=p.returncode(), duration=duration, stderr=err)
        case = cases[0]
        case.properties["command"] = shlex.join(argv)
        if case.kind is CaseKind.DEADLOCK:
            text, a, b = hang.collect_ssh(g.inner, g.kmsg_cursor())
            v = hang.classify(text, a, b)
            case.details = v.details(text)
        return cases
