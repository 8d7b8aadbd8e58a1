"""fio direct IO with crc32c verification: on the raw NVMe namespace and on
files on ext4 and xfs (O_DIRECT writes with fsync), with libaio and with
io_uring on registered (fixed) buffers, which pins the buffer pages."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .. import hang
from ..errors import CommandTimeout
from ..results import CaseResult, Status
from ..validate import MAX_DISK_MB, matching
from . import register
from .base import Option, Workload, WorkloadContext
from .common import NVME as DEVICE, logged, make_fs, unmount
from .fio_parse import parse_fio_json

MNT = "/mnt/lab-fio"
SIZE = r"[0-9]+[kKmM]?"           # fio --bs: reaches the guest's command line


@dataclass(frozen=True)
class FioRun:
    target: str       # nvme | ext4 | xfs
    engine: str       # libaio | io_uring

    @property
    def case_name(self) -> str:
        return f"fio.{self.target}.{self.engine}"


def fio_file(run: FioRun) -> str:
    """The device or file the run writes (pure)."""
    return DEVICE if run.target == "nvme" else f"{MNT}/fio.dat"


def fio_argv(run: FioRun, *, size_mb: int, bs: str, iodepth: int, fsync: int) -> list[str]:
    """The fio command for one run (pure)."""
    argv = ["fio", f"--name={run.case_name}", "--direct=1", f"--ioengine={run.engine}",
            f"--iodepth={iodepth}", "--rw=randwrite", f"--bs={bs}", f"--size={size_mb}M",
            "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_backlog=0",
            "--randrepeat=0", "--output-format=json"]
    if run.engine == "io_uring":
        argv += ["--fixedbufs=1", "--registerfiles=1"]
    argv.append(f"--filename={fio_file(run)}")
    if run.target != "nvme":
        argv.append(f"--fsync={fsync}")
    return argv


@register
class Fio(Workload):
    name = "fio"
    description = "direct IO with crc32c verify on NVMe and ext4/xfs files"
    needs = frozenset({"nvme"})
    options = {
        "targets": Option(tuple, ("nvme",), "where to write", choices=("nvme", "ext4", "xfs")),
        "engines": Option(tuple, ("libaio",), "IO engines; io_uring uses fixed buffers",
                          choices=("libaio", "io_uring")),
        "size_mb": Option(int, 64, "bytes written and verified per run, MiB", minimum=1,
                          maximum=MAX_DISK_MB),
        "bs": Option(str, "4k", "block size", valid=matching(SIZE, "a size in bytes, k or M")),
        "iodepth": Option(int, 16, "queue depth", minimum=1, maximum=65536),
        "fsync": Option(int, 32, "fsync every N writes (file targets)", minimum=0,
                        maximum=1 << 30),
    }

    def runs(self) -> list[FioRun]:
        return [FioRun(t, e) for t in self.opts["targets"] for e in self.opts["engines"]]

    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        g = logged(ctx)
        if not g.run(f"test -b {DEVICE}", timeout=30).ok:
            return [CaseResult("fio", Status.SKIPPED, message=f"{DEVICE} is missing: the "
                               "machine has no NVMe drive or the kernel no NVMe driver")]
        cases = []
        mounted = None
        per_run = ctx.timeout / max(1, len(self.runs()))
        for run in self.runs():
            if run.target != "nvme" and mounted != run.target:
                mk = make_fs(g, run.target, DEVICE, MNT, timeout=max(120.0, per_run))
                if not mk.ok:
                    cases.append(CaseResult(run.case_name, Status.SKIPPED if "not found" in
                                            mk.stderr else Status.ERROR,
                                            message=f"cannot make and mount {run.target}: "
                                                    f"{mk.stderr.strip()[-200:]}"))
                    continue
                mounted = run.target
            elif run.target == "nvme" and mounted:
                unmount(g, MNT)
                mounted = None
            try:
                cases.append(self._one(ctx, g, run, per_run))
            except CommandTimeout as e:
                raise hang.keep(e, cases)     # no cleanup: the runner investigates
        if mounted:
            unmount(g, MNT)
        return cases

    def _one(self, ctx: WorkloadContext, g, run: FioRun, timeout: float) -> CaseResult:
        o = self.opts
        argv = fio_argv(run, size_mb=o["size_mb"], bs=o["bs"], iodepth=o["iodepth"],
                        fsync=o["fsync"])
        cmd = shlex.join(argv)
        try:
            r = g.run(cmd, timeout=timeout, watch=True)
        except CommandTimeout as e:
            raise hang.tag(e, run.case_name)
        ctx.save(f"{run.case_name}.json", r.stdout)
        if r.stderr:
            ctx.save(f"{run.case_name}.stderr", r.stderr)
        props = {"command": cmd, "file": fio_file(run)}
        try:
            fig = parse_fio_json(r.stdout)
        except ValueError as e:
            return CaseResult(run.case_name, Status.FAILED, r.duration,
                              message=f"fio exit {r.returncode}, no results: {e}",
                              details=r.stderr[-4000:], properties=props)
        props.update(fig.properties())
        summary = (f"{run.case_name}: write {fig.write_iops:.0f} IOPS {fig.write_bw_kib/1024:.1f} "
                   f"MiB/s; verify read back {fig.verified_bytes} bytes, errors {fig.errors}")
        expected = o["size_mb"] * 2**20
        if r.returncode != 0 or fig.errors or "verify:" in r.stderr:
            return CaseResult(run.case_name, Status.FAILED, r.duration, output=summary,
                              message=f"fio failed (exit {r.returncode}, errors {fig.errors})",
                              details=r.stderr[-4000:], properties=props)
        if fig.verified_bytes < expected:
            return CaseResult(run.case_name, Status.FAILED, r.duration, output=summary,
                              message=f"verify read back {fig.verified_bytes} of {expected} bytes",
                              properties=props)
        props["verify"] = "passed"
        return CaseResult(run.case_name, Status.PASSED, r.duration,
                          output=summary + "; verify passed", properties=props)
