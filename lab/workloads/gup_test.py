"""The kernel's own GUP selftest (tools/testing/selftests/vm/gup_test in 6.1,
mm/ later), built statically from the tree under test by `lab build` into
the kernel artifact directory. It drives /sys/kernel/debug/gup_test
(CONFIG_GUP_TEST): get_user_pages / pin_user_pages (fast, long-term, basic)
and dump_page of pinned pages, over anonymous, shmem or ext4 file mappings.
Skipped with the reason on kernels without CONFIG_GUP_TEST. Where gup_test
prints KTAP (kselftest.h, later kernels) each of its results is a case of its
own (judge_all); 6.1's prints none and is judged by its exit status."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .. import hang, ktap, validate
from ..errors import CommandTimeout
from ..results import CaseResult, Status
from ..validate import MAX_DISK_MB
from . import register
from .base import Option, Workload, WorkloadContext
from .common import GUEST_DIR, NVME, logged, make_fs, nvme_present, unmount
from .kselftest import judge_program

DEBUGFS_FILE = "/sys/kernel/debug/gup_test"
MNT = "/mnt/lab-gup"
KSFT_SKIP = 4

# name -> gup_test flags (see main() in gup_test.c)
VARIANTS: dict[str, tuple[str, ...]] = {
    "gup-fast": ("-u",),                 # GUP_FAST_BENCHMARK: get_user_pages_fast
    "pin-fast": ("-a",),                 # PIN_FAST_BENCHMARK: pin_user_pages_fast
    "pin-longterm": ("-L",),             # PIN_LONGTERM_BENCHMARK: FOLL_LONGTERM pins
    "gup-basic": ("-U",),                # GUP_BASIC_TEST: get_user_pages
    "pin-basic": ("-b",),                # PIN_BASIC_TEST: pin_user_pages
    "dump-pages": ("-c", "-t", "-F", "0x1", "0", "19", "0x1000"),          # as run_vmtests.sh
    "dump-pages-pin": ("-c", "-p", "-t", "-F", "0x1", "0", "19", "0x1000"),
}
BACKINGS = ("anon", "shmem", "ext4")
TIME = re.compile(r"Time: get:(\d+) put:(\d+) us")


def gup_argv(binary: str, variant: str, backing: str, *, size_mb: int, repeats: int,
             threads: int, file: str | None = None) -> list[str]:
    """The gup_test command for one variant over one backing (pure)."""
    flags = list(VARIANTS[variant])
    extra = []
    if variant.startswith("dump-pages"):
        # the page indexes come last: keep them after every other option
        idx = flags.index("0x1") + 1
        flags, extra = flags[:idx], flags[idx:]
    argv = [binary, *flags, "-m", str(size_mb), "-r", str(repeats), "-j", str(threads)]
    if backing == "shmem":
        argv.append("-S")                    # MAP_SHARED of /dev/zero: shmem pages
    elif backing == "ext4":
        argv += ["-S", "-f", file or f"{MNT}/gup.dat"]
    return argv + extra


def judge(name: str, rc: int, out: str, err: str, duration: float,
          props: dict[str, str]) -> CaseResult:
    """gup_test exit status and output -> a testcase (pure)."""
    times = TIME.findall(out)
    if times:
        gets = [int(g) for g, _ in times]
        puts = [int(p) for _, p in times]
        props.update({"get_us": str(min(gets)), "put_us": str(min(puts)),
                      "runs": str(len(times))})
    text = (out + err).strip()
    if rc == KSFT_SKIP:
        return CaseResult(name, Status.SKIPPED, duration, message=f"gup_test skipped: "
                          f"{text.splitlines()[-1] if text else 'KSFT_SKIP'}", properties=props)
    if rc != 0:
        return CaseResult(name, Status.FAILED, duration, output=out[-4000:],
                          message=f"gup_test exit {rc}: "
                                  f"{text.splitlines()[-1] if text else 'no output'}",
                          details=text[-4000:], properties=props)
    return CaseResult(name, Status.PASSED, duration, output=out.strip()[-4000:],
                      properties=props)


def judge_all(name: str, rc: int, out: str, err: str, duration: float,
              props: dict[str, str]) -> list[CaseResult]:
    """gup_test's testcases (pure). Kernels whose gup_test uses kselftest.h
    (selftests/mm, 6.5 on) print KTAP with a result per thread: then the run
    is a case (with the timings) and each thread's result one more,
    `<name>.thread-N`. 6.1's prints no KTAP: one case from the exit status."""
    if not ktap.has_ktap(out):
        return [judge(name, rc, out, err, duration, props)]
    run, *subs = judge_program(name, rc, out, err, duration, props,
                               name=lambda r: f"thread-{r.number}")
    timed = judge(name, 0, out, "", duration, {})
    run.properties.update({k: v for k, v in timed.properties.items()
                           if k in ("get_us", "put_us", "runs")})
    return [run, *subs]


@register
class GupTest(Workload):
    name = "gup_test"
    description = "the kernel's gup_test selftest (CONFIG_GUP_TEST) from the tree under test"
    options = {
        "variants": Option(tuple, tuple(VARIANTS), "gup_test modes", choices=tuple(VARIANTS)),
        "backings": Option(tuple, ("anon", "ext4"), "what the pinned pages are",
                           choices=BACKINGS),
        "size_mb": Option(int, 32, "bytes pinned per call, MiB (-m)", minimum=1,
                          maximum=MAX_DISK_MB),
        "repeats": Option(int, 1, "benchmark repeats (-r)", minimum=1, maximum=1 << 20),
        "threads": Option(int, 1, "threads (-j)", minimum=1, maximum=1024),
        "binary": Option(str, "", "a gup_test binary on the host (default: the kernel "
                                  "artifact's)", valid=validate.path_text),
    }

    def binary(self, ctx: WorkloadContext) -> Path | None:
        if self.opts["binary"]:
            return Path(self.opts["binary"]).expanduser()
        k = ctx.kernel
        if k is None or k.origin == "distro":
            return None
        return Path(k.image).parent / "gup_test"

    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        g = logged(ctx)
        g.run("mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug",
              timeout=30)
        if not g.run(f"test -e {DEBUGFS_FILE}", timeout=30).ok:
            return [CaseResult("gup_test", Status.SKIPPED, message="the kernel lacks "
                               f"CONFIG_GUP_TEST (no {DEBUGFS_FILE})")]
        local = self.binary(ctx)
        if local is None or not local.exists():
            where = local or "the kernel (a distro kernel has no artifact directory)"
            return [CaseResult("gup_test", Status.SKIPPED, message=f"no gup_test binary: "
                               f"{where} (`lab build` puts one in the artifact directory)")]
        remote = f"{GUEST_DIR}/gup_test"
        g.run(f"mkdir -p {GUEST_DIR}", timeout=30)
        g.put(local, remote, mode=0o755)
        o = self.opts
        cases: list[CaseResult] = []
        mounted = False
        per_run = max(30.0, ctx.timeout / max(1, len(o["variants"]) * len(o["backings"])))
        try:
            for backing in o["backings"]:
                if backing == "ext4":
                    if not nvme_present(g):
                        cases += [CaseResult(f"gup_test.{v}.ext4", Status.SKIPPED,
                                             message=f"{NVME} is missing (machine.nvme_mb)")
                                  for v in o["variants"]]
                        continue
                    mk = make_fs(g, "ext4", NVME, MNT)
                    if not mk.ok:
                        cases.append(CaseResult("gup_test.ext4", Status.ERROR,
                                                message=f"cannot make ext4 on {NVME}: "
                                                        f"{mk.stderr.strip()[-300:]}"))
                        continue
                    mounted = True
                    g.run(f"truncate -s {o['size_mb']}M {MNT}/gup.dat", timeout=60, check=True)
                for v in o["variants"]:
                    cases += self._one(ctx, g, remote, v, backing, per_run)
                if mounted:
                    unmount(g, MNT)
                    mounted = False
        except CommandTimeout as e:
            # no cleanup (an unmount could hang too): the runner investigates
            mounted = False
            raise hang.keep(e, cases)
        finally:
            if mounted:
                unmount(g, MNT)
        return cases

    def _one(self, ctx, g, remote: str, variant: str, backing: str,
             timeout: float) -> list[CaseResult]:
        o = self.opts
        name = f"gup_test.{variant}.{backing}"
        argv = gup_argv(remote, variant, backing, size_mb=o["size_mb"], repeats=o["repeats"],
                        threads=o["threads"])
        cmd = shlex.join(argv)
        try:
            r = g.run(cmd, timeout=timeout, watch=True)
        except CommandTimeout as e:
            raise hang.tag(e, name)
        ctx.save(f"{name}.out", r.stdout + (f"\n--- stderr ---\n{r.stderr}" if r.stderr else ""))
        return judge_all(name, r.returncode, r.stdout, r.stderr, r.duration,
                         {"command": cmd, "exit_status": str(r.returncode)})
