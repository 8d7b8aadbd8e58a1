"""One kselftest program from the tree under test, each of its KTAP subtests a
testcase.

    - kselftest: {target: vm, test: madv_populate}      # the defaults

The program (tools/testing/selftests/<target>/<test>) is built statically on
the host from the source and commit the booted kernel was built from, and
cached by what that build reads (lab/kernel/selftest.py); it is copied into
the guest and run there, in its own directory, inside the workload's cgroup.
Its output goes through lab/ktap.py: every result without subtests becomes a
case `kselftest.<target>.<test>.<description>` (SKIP -> skipped; XFAIL and a
failing TODO -> skipped with the reason, not failures; not ok, TIMEOUT, ERROR
and results missing against the plan -> failed, with the diagnostics printed
before them as the failure text). One more case, `kselftest.<target>.<test>`,
is the program's run: its command, exit status, output and counts; it fails
only when the exit status is not explained by a failed subtest (a crash, a
bail out, no KTAP at all).

A distro kernel has no tree: the workload is then one skipped case saying it
needs a kernel built by lab (a job may mix distro and built kernels in one
matrix, so this is not a validation error), unless `binary:` names a program
built elsewhere.

The default, vm/madv_populate, prints 16 subtests through kselftest.h (21 with
soft-dirty) and runs in well under a second under TCG.
"""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path
from typing import Callable

from .. import hang, ktap, validate
from ..errors import CommandTimeout
from ..kernel import selftest
from ..results import CaseResult, Status
from . import register
from .base import Option, Workload, WorkloadContext
from .common import GUEST_DIR, logged

KSFT_FAIL = 1
KSFT_SKIP = 4
TARGET_RE = r"[A-Za-z0-9][A-Za-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9_-]*)*"
TEST_RE = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"


# --- KTAP -> testcases (pure) -------------------------------------------------

def subtest_case(name: str, r: ktap.Result) -> CaseResult:
    """One KTAP result -> a testcase."""
    o = r.outcome
    props = {"ktap_outcome": o.value, "ktap_number": str(r.number),
             "ktap_description": r.description}
    details = "\n".join(r.diagnostics)
    why = r.reason or (r.diagnostics[-1] if r.diagnostics else "")
    if o is ktap.Outcome.PASS:
        return CaseResult(name, Status.PASSED, properties=props, output=details)
    if o is ktap.Outcome.SKIP:
        # runner.sh's `ok 1 selftests: vm: x # SKIP` has the reason in the
        # program's own `1..0 # SKIP why`
        why = r.reason or (r.subtests.skipped if r.subtests is not None else None) or "SKIP"
        return CaseResult(name, Status.SKIPPED, message=f"skipped: {why}",
                          properties=props, output=details)
    if o in (ktap.Outcome.XFAIL, ktap.Outcome.TODO):
        if r.ok and o is ktap.Outcome.TODO:
            return CaseResult(name, Status.PASSED, message=f"TODO passed: {why}".rstrip(": "),
                              properties=props, output=details)
        return CaseResult(name, Status.SKIPPED, message=f"{o.value} (expected failure): "
                          f"{why or r.description}", properties=props, output=details)
    return CaseResult(name, Status.FAILED, message=f"{o.value}: {why or 'not ok'}"[:300],
                      details=details, properties=props)


def ktap_cases(base: str, doc: ktap.Block,
               name: Callable[[ktap.Result], str] | None = None) -> list[CaseResult]:
    """A testcase per result without subtests, at any depth, named
    base.<parents>.<name>; a parent that failed without any failed subtest
    gets one too, so its failure is not lost."""
    name = name or (lambda r: r.name)
    out = []
    seen: dict[str, int] = {}
    for path, r in doc.walk():
        subs = r.subtests.results if r.subtests is not None else []
        if subs and not (r.outcome.failed and not any(
                s.outcome.failed for _, s in r.subtests.walk())):
            continue
        full = ".".join((base, *path, name(r)))
        # madv_populate checks "range is populated" twice: the second is " (2)",
        # in summary.json and the history as in JUnit
        seen[full] = seen.get(full, 0) + 1
        out.append(subtest_case(full if seen[full] == 1 else f"{full} ({seen[full]})", r))
    return out


def judge_program(base: str, rc: int, out: str, err: str, duration: float,
                  props: dict[str, str],
                  name: Callable[[ktap.Result], str] | None = None) -> list[CaseResult]:
    """A kselftest program's exit status and output -> its run's case and a
    case per subtest (pure)."""
    doc = ktap.parse(out)
    subs = ktap_cases(base, doc, name)
    bad = [c for c in subs if c.status.bad]
    text = (out + err).strip()
    last = text.splitlines()[-1] if text else "no output"
    props = dict(props, exit_status=str(rc))
    if ktap.has_ktap(out):
        counts = {k: v for k, v in doc.counts().items() if v}
        props["ktap_counts"] = ", ".join(f"{k}:{v}" for k, v in counts.items())
        props["ktap_plan"] = str(doc.plan.count) if doc.plan is not None else ""
    run = CaseResult(base, Status.PASSED, duration, output=out.strip()[-4000:],
                     properties=props)
    if doc.skipped is not None or (rc == KSFT_SKIP and not bad):
        run.status = Status.SKIPPED
        run.message = f"skipped: {doc.skipped or last}"
    elif doc.bail_out is not None and not bad:
        run.status, run.message = Status.FAILED, f"Bail out! {doc.bail_out}"[:300]
    elif rc != 0 and not (rc == KSFT_FAIL and bad):
        run.status = Status.FAILED
        run.message = (f"exit {rc}" + (" with no failed subtest" if subs and not bad else "")
                       + f": {last}")[:300]
    if run.status is Status.FAILED:
        run.details = text[-4000:]
    elif bad:
        run.message = f"{len(bad)} of {len(subs)} subtests failed"
    return [run, *subs]


# --- the workload -----------------------------------------------------------

@register
class Kselftest(Workload):
    name = "kselftest"
    description = "a kselftest program from the tree under test, a testcase per subtest"
    options = {
        "target": Option(str, "vm", "the selftests directory: tools/testing/selftests/TARGET",
                         valid=validate.matching(TARGET_RE, "a directory under "
                                                 "tools/testing/selftests, e.g. vm or mm")),
        "test": Option(str, "madv_populate", "the program in it, as its Makefile names it",
                       valid=validate.matching(TEST_RE, "a program name, e.g. "
                                               "madv_populate")),
        "binary": Option(str, "", "a kselftest binary on the host to run instead of "
                                  "building TEST from the kernel's tree",
                         valid=validate.path_text),
    }

    @property
    def base(self) -> str:
        return f"kselftest.{self.opts['target'].replace('/', '.')}.{self.opts['test']}"

    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        o, base = self.opts, self.base
        if o["binary"]:
            local = Path(o["binary"]).expanduser()
            if not local.is_file():
                return [CaseResult(base, Status.ERROR, message=f"binary: no file {local}")]
        else:
            src = selftest.source_of(ctx.kernel)
            if isinstance(src, str):
                return [CaseResult(base, Status.SKIPPED, message=src)]
            ctx.log(f"kselftest: {o['target']}/{o['test']} from {src.describe()}")
            built = selftest.build_selftest(src, o["target"], o["test"])
            if built.binary is None:
                return [CaseResult(base, Status.ERROR, message=built.error,
                                   details=built.details,
                                   properties={"build_commands": "\n".join(built.commands)})]
            local = built.binary
        g = logged(ctx)
        wdir = f"{GUEST_DIR}/kselftest/{o['target']}"
        remote = f"{wdir}/{o['test']}"
        # a copy still running from an earlier workload keeps its file busy
        # (ETXTBSY): upload under a new name, then rename over it
        tmp = f"{wdir}/.{o['test']}.{uuid.uuid4().hex[:12]}"
        g.run(f"mkdir -p {shlex.quote(wdir)}", timeout=30, check=True)
        g.put(local, tmp, mode=0o755)
        g.run(f"mv -f {shlex.quote(tmp)} {shlex.quote(remote)}", timeout=30, check=True)
        cmd = f"cd {shlex.quote(wdir)} && ./{shlex.quote(o['test'])}"
        try:
            r = g.run(cmd, timeout=ctx.timeout, watch=True)
        except CommandTimeout as e:
            raise hang.tag(e, base)
        ctx.save(f"{base}.out",
                 r.stdout + (f"\n--- stderr ---\n{r.stderr}" if r.stderr else ""))
        return judge_program(base, r.returncode, r.stdout, r.stderr, r.duration,
                             {"command": cmd, "binary": str(local)})
