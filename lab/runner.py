"""The only module that knows the order of the steps.

The run core is `run_unit`: one boot of one cell (a kernel spec, a config
variant, an image, a machine, a workload list, a repeat index): make or find
the kernel, boot it, run each workload with its checks, and return the
cell's suite of results. `run_job` expands a job into cells (lab/matrix.py),
runs their boots in parallel without oversubscribing the host
(lab/schedule.py), keeps one live display (lab/progress.py), and writes the
results as each case ends (lab/store.py). `lab run`, `lab test-patch` and
the matrix all go through it; machines come from the factory it is given.
"""

from __future__ import annotations

import enum
import errno
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from . import checks, hang, latency, pintrace, proc
from .errors import CommandTimeout, InfraError, LabError, UserError
from .guest.base import GuestPaused, GuestUnreachable
from .guest.scope import Scope, ScopedGuest
from .image.build import Image, cached as cached_image, ensure as ensure_image
from .image.recipe import load_recipe
from .job import Job, KernelKind, KernelSpec
from .kernel.artifact import KernelArtifact, distro_kernel, identity
from .matrix import Cell, Unit, expand, select, units as make_units
from .paths import free_space, runs_dir
from .progress import Progress
from .resolve import end_workload
from .results import CaseKind, CaseResult, RunState, Status, SuiteResult
from .schedule import Cancelled, MadeOnce, Resources
from .store import RunStore, mark_dead_runs
from .vm.base import BootConfig, BootError, MachineFactory, MachineLike
from .workloads import lookup
from .workloads.base import WorkloadContext


def log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def new_run_dir(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = runs_dir() / f"{stamp}-{name}"
    d, n = base, 1
    while d.exists():
        n += 1
        d = Path(f"{base}-{n}")
    return d


def default_machine_factory(cfg: BootConfig, workdir: Path, log) -> MachineLike:
    """Real QEMU (imported here: unit tests of the runner never need it)."""
    from .vm.machine import Machine
    return Machine(cfg, workdir, log=log)


@dataclass
class KernelOutcome:
    """A kernel ready to boot, or why not: the apply/build cases say."""

    artifact: KernelArtifact | None
    cases: list[CaseResult] = field(default_factory=list)
    built: bool = False            # make ran (not a cache hit)


def resolve_kernel(spec: KernelSpec, resources: Resources | None = None,
                   progress: bool = False,
                   on_build: Callable[[], None] | None = None) -> KernelOutcome:
    """The kernel a spec names: found (distro, artifact, cached build) or
    built; `on_build` is called when a build is about to start."""
    if spec.kind is KernelKind.DISTRO:
        return KernelOutcome(distro_kernel(spec.release))
    if spec.kind is KernelKind.ARTIFACT:
        return KernelOutcome(KernelArtifact.from_dir(spec.path))
    if spec.kind is KernelKind.TREE:
        from .kernel.tree import detect, tree_artifact
        return KernelOutcome(tree_artifact(detect(spec.path), share=False))
    from .kernel.api import build_kernel, cached_outcome, plan
    p = plan(spec.build)
    hit = cached_outcome(p)
    if hit is None:
        if on_build is not None:
            on_build()
        with (resources.build(f"build {p.key[:12]}") if resources else nullcontext()):
            outcome = build_kernel(spec.build, progress=progress, planned=p)
    else:
        outcome = hit
    return KernelOutcome(outcome.artifact if outcome.ok else None,
                         [step_case(st) for st in outcome.steps], built=not outcome.cached)


def step_case(step) -> CaseResult:
    """A kernel step's result (lab.kernel.outcome.StepResult) as a testcase."""
    from .kernel.outcome import Step, StepState
    status = {StepState.OK: Status.PASSED, StepState.FAILED: Status.FAILED,
              StepState.SKIPPED: Status.SKIPPED}[step.state]
    kind = CaseKind.NONE
    if step.state is StepState.FAILED:
        kind = CaseKind.APPLY if step.step is Step.APPLY else CaseKind.BUILD
    return CaseResult(str(step.step), status, step.seconds, classname="kernel",
                      message=step.message, details=step.details, output=step.output,
                      properties=dict(step.properties), kind=kind)


@dataclass
class RunEnv:
    """What every boot of a run shares."""

    job: Job
    out: Path
    store: RunStore
    progress: Progress
    machine_factory: MachineFactory
    resources: Resources
    kernels: MadeOnce = field(default_factory=MadeOnce)
    images: MadeOnce = field(default_factory=MadeOnce)
    live: set = field(default_factory=set)      # machines running now
    lock: threading.Lock = field(default_factory=threading.Lock)
    single: bool = False                        # one boot: results at the top of `out`


def boot_config(job: Job, kernel: KernelArtifact, image: Image,
                cell: Cell | None = None) -> BootConfig:
    """How the job's machine boots `kernel` with `image` (in `cell`'s variant)."""
    m = job.machine
    cmdline = " ".join(x for x in (m.cmdline, cell.variant.cmdline if cell else "") if x)
    return BootConfig(kernel=kernel, image=image, memory_mb=m.memory_mb, cpus=m.cpus,
                      nvme_mb=m.nvme_mb, pmem_mb=m.pmem_mb,
                      hung_task_timeout=job.hung_task_timeout, extra_cmdline=cmdline,
                      boot_timeout=job.boot_timeout,
                      accel=None if m.accel == "auto" else m.accel)


def run_job(job: Job, out_dir: Path | None = None, *,
            cell_ids: list[str] | None = None, shard: tuple[int, int] | None = None,
            machine_factory: MachineFactory | None = None,
            resources: Resources | None = None, live: bool | None = None) -> int:
    """Run the job's cells (all, or those chosen by id or shard); returns the
    exit code. Ctrl-C stops every guest and build, keeps what finished, and
    re-raises KeyboardInterrupt."""
    cells = select(job, expand(job), cell_ids, shard)
    preflight(job, cells)
    todo = make_units(job, cells)
    out = Path(out_dir) if out_dir else new_run_dir(job.name)
    for d in {runs_dir(), out.parent}:
        for dead in mark_dead_runs(d):
            log(f"{dead} was left running by a lab that is gone: marked crashed")
    store = RunStore(out, {"job": str(job.path), "name": job.name, "argv": sys.argv},
                     cells=[c.to_dict(job.repeat) for c in cells])
    if job.path.exists():
        (out / "job.yaml").write_bytes(job.path.read_bytes())
    progress = Progress([u.id for u in todo], live=live)
    store.on_add = lambda suite, cases: progress.cases(suite.name, cases)
    env = RunEnv(job, out, store, progress, machine_factory or default_machine_factory,
                 resources or Resources(), single=len(todo) == 1)
    progress.log(todo[0].id, f"results in {out}")
    try:
        _run_units(env, todo)
    except KeyboardInterrupt:
        store.finish(RunState.INTERRUPTED, exit_code=130)
        raise
    except UserError:
        store.finish(RunState.BAD_INPUT, exit_code=3)
        raise
    finally:
        progress.close()
    code = _judge(env)
    c = {k: sum(s.counts()[k] for s in store.suites) for k in ("passed", "failed", "error",
                                                               "skipped")}
    log(f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
        f"{c['skipped']} skipped -> {out / 'junit.xml'}")
    return code


def _judge(env: RunEnv) -> int:
    """Compare with the baseline cells of this run and with the previous run
    of the job (lab/report.py), write that into the results, record the run
    in the history store; the exit code follows the series' own failures.
    An unusable history store costs the comparison, never the results."""
    from .history import History, default_path
    from .report import apply, classify, render
    store = env.store
    summary = dict(store.summary(), state=str(RunState.FINISHED))
    history = None
    previous = {}
    try:
        history = History(default_path())
        previous = history.previous_for(summary, env.out)
    except LabError as e:
        log(f"history not used: {e}")
    report = classify(summary, lambda cid: previous[cid].problems if cid in previous else None,
                      {cid: p.run_id for cid, p in previous.items()})
    apply(report, store.suites)
    code = store.finish(RunState.FINISHED, exit_code=report.exit_code)
    if history is not None:
        try:
            history.record(store.summary(), env.out)
        except LabError as e:
            log(f"run not recorded in the history: {e}")
    if not env.single:
        sys.stderr.write(render(report, "text"))
    return code


def preflight(job: Job, cells: list[Cell]) -> None:
    """Bad input found before anything slow starts: a distro kernel that is
    not installed, a series or fragment that does not exist."""
    specs = {c.kernel_spec: c.kernel.name for c in cells}
    for spec, name in specs.items():
        try:
            if spec.kind is KernelKind.DISTRO:
                distro_kernel(spec.release)
            elif spec.kind is KernelKind.TREE:
                from .kernel.tree import check_config, detect, has_modules
                tk = detect(spec.path)
                check_config(tk, share=False, has_modules=tk.tree is not None
                             and has_modules(tk.tree))
            elif spec.kind is KernelKind.BUILD:
                from .kernel.api import plan
                plan(spec.build)
        except UserError as e:
            if e.file:
                raise
            field = "kernel" if name == "default" else f"kernels.{name}"
            raise UserError(e.bare, file=str(job.path), field=field) from None


def _run_units(env: RunEnv, todo: list[Unit]) -> None:
    if env.single:
        run_unit(todo[0], env)
        return
    pool = ThreadPoolExecutor(max_workers=min(64, len(todo)), thread_name_prefix="cell")
    futures = {pool.submit(run_unit, u, env): u for u in todo}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in done:
                f.result()      # run_unit records its own errors; this re-raises bugs
    except BaseException:      # Ctrl-C, or results that can no longer be written
        _stop_everything(env)
        wait(futures, timeout=60)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _stop_everything(env: RunEnv) -> None:
    """Ctrl-C: no new boot or build starts, every guest and build is killed."""
    env.resources.cancel()
    with env.lock:
        live = list(env.live)
    for m in live:
        m.kill()
    proc.reap_all()


def run_unit(unit: Unit, env: RunEnv) -> SuiteResult:
    """One boot of one cell; never raises for what went wrong in it (that is
    the cell's result), except bad input and Ctrl-C."""
    cell, job, store = unit.cell, env.job, env.store
    suite = store.suite(unit.id, {"job_file": str(job.path), "cell": cell.id,
                                  "repeat": str(unit.repeat), "kernel": cell.kernel.name,
                                  "variant": cell.variant.name,
                                  "workloads": cell.workload_set.name})
    udir = env.out if env.single else env.out / cell.id / f"r{unit.repeat}"
    say = lambda msg: env.progress.log(unit.id, msg)  # noqa: E731
    try:
        _run_cell(unit, env, suite, udir, say)
    except KeyboardInterrupt:
        store.add(suite, CaseResult("interrupted", Status.ERROR, kind=CaseKind.INTERRUPTED,
                                    message="run interrupted (Ctrl-C / SIGTERM)"))
        raise
    except Cancelled as e:
        store.add(suite, CaseResult("interrupted", Status.ERROR, kind=CaseKind.INTERRUPTED,
                                    message=str(e)))
    except UserError:
        raise
    except OSError as e:        # the host: the results filesystem is full or gone
        raise InfraError(f"cannot write the results under {udir}: {e.strerror or e}"
                         f"{free_space(udir)}") from None
    except LabError as e:
        if env.resources.cancelled.is_set():     # its machine was killed by Ctrl-C
            store.add(suite, CaseResult("interrupted", Status.ERROR,
                                        kind=CaseKind.INTERRUPTED,
                                        message="run interrupted (Ctrl-C / SIGTERM)",
                                        details=str(e)))
        else:
            store.add(suite, CaseResult("infrastructure", Status.ERROR, kind=CaseKind.INFRA,
                                        message=str(e).splitlines()[0], details=str(e)))
            say(f"infrastructure error: {str(e).splitlines()[0]}")
    env.progress.set(unit.id, _verdict(suite))
    return suite


def _verdict(suite: SuiteResult) -> str:
    c = suite.counts()
    if c["failed"]:
        return f"FAILED ({c['failed']} failed, {c['passed']} passed)"
    if c["error"]:
        return f"ERROR ({c['error']} errors)"
    return f"passed ({c['passed']} passed, {c['skipped']} skipped)"


def _kernel(unit: Unit, env: RunEnv) -> tuple[KernelOutcome, float]:
    """The cell's kernel (made once per run) and how long making it took."""
    spec = unit.cell.kernel_spec
    env.progress.set(unit.id, "kernel")

    # a single boot on a terminal: the build draws its own progress bar
    build_bar = env.single and sys.stderr.isatty()

    def make():
        start = time.monotonic()
        with env.progress.paused() if build_bar else nullcontext():
            out = resolve_kernel(spec, env.resources, progress=build_bar,
                                 on_build=lambda: env.progress.set(unit.id, "building kernel"))
        return out, time.monotonic() - start
    return env.kernels.get(spec, make)


def _image(env: RunEnv, say) -> tuple[Image, bool, float]:
    """The job's image (found or built once per run), whether it was built,
    and how long that took."""
    def make():
        start = time.monotonic()
        recipe = load_recipe(env.job.image)
        hit = cached_image(recipe)
        image = hit or ensure_image(recipe, log=say)
        return image, hit is None, time.monotonic() - start
    return env.images.get(env.job.image, make)


def _run_cell(unit: Unit, env: RunEnv, suite: SuiteResult, udir: Path, say) -> None:
    cell, job, store = unit.cell, env.job, env.store
    kernel_out, kernel_s = _kernel(unit, env)
    suite.properties.update({"kernel_cache": "built" if kernel_out.built else "hit",
                             "kernel_resolve_s": f"{kernel_s:.3f}"})
    if kernel_out.cases:
        store.add(suite, *[_copy(c) for c in kernel_out.cases])
    kernel = kernel_out.artifact
    if kernel is None:
        return  # the apply/build cases already say why
    image, image_built, image_s = _image(env, say)
    suite.properties.update(identity(kernel))
    suite.properties.update({"kernel_release": kernel.release, "kernel_origin": kernel.origin,
                             "image": image.name, "image_hash": image.key,
                             "image_cache": "built" if image_built else "hit",
                             "image_resolve_s": f"{image_s:.3f}"})
    cfg = boot_config(job, kernel, image, cell)
    env.progress.set(unit.id, "waiting for cores")
    with env.resources.guest(cfg.cpus, cfg.memory_mb, unit.id):
        env.progress.set(unit.id, "booting")
        suite.properties["machine_started"] = _now()
        boots = Boots(env, cfg, udir, say, unit.id)
        try:
            _boot_and_run(unit, env, boots, kernel, suite, say)
        finally:
            boots.stop()
            suite.properties["machine_stopped"] = _now()
            suite.properties["boots"] = str(boots.count)


class After(enum.Enum):
    """What a workload leaves for the next one."""

    CONTINUE = "continue"      # the guest is fine
    REBOOT = "reboot"          # the guest is poisoned or dead: a fresh boot of the kernel
    STOP = "stop"              # the host failed under it (qemu killed or paused): stop


class Boots:
    """The machines of one unit: the first boot, and a fresh one of the same
    kernel each time a workload leaves the guest unusable (its files under
    boot-N/)."""

    def __init__(self, env: RunEnv, cfg: BootConfig, udir: Path, say, unit: str = ""):
        self.env, self.cfg, self.udir, self.say, self.unit = env, cfg, udir, say, unit
        self.count = 0
        self.machine: MachineLike | None = None

    def new(self) -> MachineLike:
        self.stop()
        self.count += 1
        wd = self.udir if self.count == 1 else self.udir / f"boot-{self.count}"
        self.machine = self.env.machine_factory(self.cfg, wd, self.say)
        unit = self.unit
        self.machine.on_stage = lambda stage, at: self.env.progress.stage(unit, str(stage), at)
        with self.env.lock:
            self.env.live.add(self.machine)
        return self.machine

    def stop(self) -> None:
        m, self.machine = self.machine, None
        if m is not None:
            try:
                m.stop()
            finally:
                with self.env.lock:
                    self.env.live.discard(m)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()) + f".{int(time.time() % 1 * 1000):03d}"


def _copy(c: CaseResult) -> CaseResult:
    """Each suite gets its own copy (the report annotates cases in place)."""
    return replace(c, properties=dict(c.properties))


def _boot(machine, kernel: KernelArtifact, suite: SuiteResult, store: RunStore, name: str,
          seen: set[str], say, why: str = "", cancelled: threading.Event | None = None) -> bool:
    """Start `machine` and wait for SSH; the boot's case is `name`. After
    Ctrl-C (`cancelled`) the machine is killed and Cancelled raised."""
    say(f"booting {kernel.release} ({kernel.origin})" + (f": {why}" if why else ""))
    interrupted = cancelled.is_set if cancelled is not None else lambda: False
    try:
        machine.start()
        if interrupted():
            # Ctrl-C came after this machine was made but before qemu ran:
            # _stop_everything's kill found nothing to kill, so kill it here
            machine.kill()
            raise Cancelled("interrupted while booting")
        if name == "boot":
            suite.properties.update({"qemu_version": machine.qemu_version,
                                     "accelerator": machine.accel.accel,
                                     "accelerator_reason": machine.accel.reason,
                                     "kernel_cmdline": machine.spec.cmdline})
        machine.wait_for_ssh()
    except BootError as e:
        if interrupted():           # Ctrl-C killed it while it booted: not the kernel's fault
            raise Cancelled("interrupted while booting") from None
        console = machine.console_text()
        code = machine.exit_code
        if code not in (None, 0) and "Kernel panic" not in console:
            # qemu crashed or was killed while the guest booted (seen: a TCG
            # segfault probing PCI): no kernel makes qemu exit non-zero, so it
            # is an error of the run, as during a workload, not a failed boot
            store.add(suite, CaseResult(
                name, Status.ERROR, kind=CaseKind.INFRA, classname="boot",
                message=f"qemu exited (code {code}{_signal_name(code)}) while the guest "
                        "booted; the kernel reported nothing", details=str(e)),
                *checks.findings_cases(console, name, seen))
            return False
        store.add(suite, CaseResult(name, Status.FAILED, kind=_boot_kind(console),
                                    message=str(e).splitlines()[0], details=str(e),
                                    classname="boot"),
                  *checks.findings_cases(console, name, seen))
        return False
    guest = machine.guest
    boot_props = {"boot_to_ssh_s": f"{machine.times.to_ssh:.2f}"}
    if why:
        boot_props["reason"] = why
    from .vm.machine import kernel_time_to_init
    k2i = kernel_time_to_init(machine.console_text())
    if k2i is not None:
        boot_props["kernel_to_init_s"] = f"{k2i:.2f}"
    uname = guest.run("uname -r", timeout=30).stdout.strip()
    boot_props["uname_r"] = uname
    say(f"guest up in {machine.times.to_ssh:.1f}s ({machine.accel.accel}), uname -r {uname}")
    store.add(suite, CaseResult(name, Status.PASSED, machine.times.to_ssh, classname="boot",
                                output=f"reached SSH in {machine.times.to_ssh:.1f}s under "
                                       f"{machine.accel.accel}"
                                       + (f" (a fresh boot: {why})" if why else ""),
                                properties=boot_props))
    store.add(suite, *checks.findings_cases(machine.console_text(), name, seen))
    return True


def _boot_and_run(unit: Unit, env: RunEnv, boots: Boots, kernel: KernelArtifact,
                  suite: SuiteResult, say) -> None:
    store = env.store
    seen: set[str] = set()
    machine = boots.new()
    if not _boot(machine, kernel, suite, store, "boot", seen, say,
                 cancelled=env.resources.cancelled):
        return
    workloads = unit.cell.workloads
    for i, entry in enumerate(workloads):
        env.progress.set(unit.id, f"workload {i + 1} of {len(workloads)}: {entry.name}")
        after, why = _run_workload(i, entry, machine, kernel, boots.udir, store, suite, seen,
                                   say, env.resources.cancelled, env.job.recovery_timeout)
        rest = workloads[i + 1:]
        if after is After.CONTINUE or not rest:
            continue
        if after is After.REBOOT:
            say(f"{why}: the {len(rest)} workload(s) left run on a fresh boot")
            env.progress.set(unit.id, "booting again")
            machine = boots.new()
            if _boot(machine, kernel, suite, store, f"boot.{boots.count}", seen, say, why,
                     env.resources.cancelled):
                continue
            message = f"not run: the fresh boot after {entry.case} failed"
        else:
            message = f"not run: the guest died during {entry.case}"
        store.add(suite, *[CaseResult(later.case, Status.SKIPPED, classname=later.name,
                                      kind=CaseKind.NOT_RUN, message=message)
                           for later in rest])
        break


def _boot_kind(console: str) -> CaseKind:
    return CaseKind.PANIC if "Kernel panic" in console else CaseKind.BOOT


QEMU_SETTLE = 2.0  # seconds for a qemu whose guest went silent to be seen exiting


def _unreachable_case(name: str, machine, exc: GuestUnreachable,
                      duration: float) -> CaseResult:
    """The case of a workload whose guest stopped answering, saying why:
    the kernel panicked (the console says so), qemu exited under it (killed
    from the host, or the guest reset: -no-reboot makes a reset an exit with
    code 0), or the guest is silent with qemu still running."""
    console = machine.console_text()
    details = console[-20000:]
    if "Kernel panic" in console:
        return CaseResult(name, Status.FAILED, duration, kind=CaseKind.PANIC,
                          message=f"{CaseKind.PANIC}: {exc}", details=details)
    code = _qemu_exit_code(machine)
    if code is None:
        return CaseResult(name, Status.FAILED, duration, kind=CaseKind.UNREACHABLE,
                          message=f"{CaseKind.UNREACHABLE}: {exc}", details=details)
    if code == 0:
        return CaseResult(name, Status.FAILED, duration, kind=CaseKind.UNREACHABLE,
                          message=f"qemu exited (code 0): the guest reset or powered off "
                                  f"with no kernel panic on the console ({exc})",
                          details=details)
    # Not the kernel's doing: the host killed qemu (kill -9, the OOM killer) or
    # qemu failed. An error of the run, not a failure of the kernel under test.
    return CaseResult(name, Status.ERROR, duration, kind=CaseKind.INFRA,
                      message=f"qemu exited (code {code}{_signal_name(code)}) during the "
                              "workload; "
                              f"the kernel reported nothing ({exc})", details=details)


_SIGNALS = {s.value for s in signal.Signals}


def _signal_name(code: int) -> str:
    """', killed by SIGSEGV' for qemu's exit code -11; '' when not a signal."""
    return f", killed by {signal.Signals(-code).name}" if -code in _SIGNALS else ""


def _qemu_exit_code(machine, settle: float = QEMU_SETTLE) -> int | None:
    """qemu's exit code if it has exited or does within `settle` seconds:
    the SSH connection can break a moment before the process is reaped."""
    deadline = time.monotonic() + settle
    while True:
        code = machine.exit_code
        if code is not None or time.monotonic() >= deadline:
            return code
        time.sleep(0.05)


HOST_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _lab_error(name: str, e: Exception, duration: float) -> CaseResult:
    """A workload's error case for an exception inside lab (an SFTP upload
    failing, a guest in a state a workload did not expect), with the traceback."""
    import traceback
    kind = "" if isinstance(e, InfraError) else f"{type(e).__name__}: "
    return CaseResult(name, Status.ERROR, duration, kind=CaseKind.INFRA,
                      message=f"{kind}{str(e).splitlines()[0] if str(e) else ''}"[:300],
                      details=str(e) if isinstance(e, InfraError) else traceback.format_exc())


def _run_workload(i, entry, machine, kernel, out: Path, store: RunStore, suite: SuiteResult,
                  seen: set[str], say: Callable[[str], None],
                  cancelled: threading.Event | None = None,
                  recovery: float = 30.0) -> tuple[After, str]:
    """Run one workload in a scope of its own (lab/guest/scope.py) and its
    checks; return what it leaves for the next one and why. A workload past
    its timeout is investigated (lab/hang.py: evidence, then its processes
    ended and its blocked tasks watched: stall or deadlock). Whatever a
    workload does to the guest, the result is its cases, never an exception
    (bad input and Ctrl-C aside). After Ctrl-C (the machine was killed under
    it) there is nothing to investigate: Cancelled ends the boot at once."""
    guest = machine.guest
    wl = lookup(entry.name)(entry.options)
    wdir = out / f"{i:02d}-{entry.name}"
    ctx = WorkloadContext(guest=guest, outdir=wdir, timeout=entry.timeout,
                          machine=machine, log=say, kernel=kernel, recovery=recovery)
    wdir.mkdir(parents=True, exist_ok=True)
    scope = Scope(guest, f"{i:02d}-{entry.name}")
    cursor, pins = 0, None
    say(f"workload {entry.name} (timeout {entry.timeout:g}s)")
    start = time.monotonic()
    after, why = After.CONTINUE, ""
    investigated = False
    try:
        try:
            cursor = guest.kmsg_cursor()
            pins = checks.read_pins(guest)
            if scope.create():
                ctx.guest, ctx.scope = ScopedGuest(guest, scope), scope
            cases = wl.run(ctx)
        except (CommandTimeout, GuestUnreachable, GuestPaused):
            if cancelled is not None and cancelled.is_set():
                raise Cancelled(f"interrupted during {entry.name}") from None
            raise
    except CommandTimeout as e:
        cases = list(getattr(e, "partial", [])) + [hang.investigate(ctx, e, cursor, entry.case)]
        investigated = True
    except GuestPaused as e:
        after, why = After.STOP, str(e).splitlines()[0]
        cases = [CaseResult(entry.case, Status.ERROR, time.monotonic() - start,
                            kind=CaseKind.INFRA, message=why, details=str(e))]
    except GuestUnreachable as e:
        cases = [_unreachable_case(entry.case, machine, e, time.monotonic() - start)]
        after = After.STOP if cases[0].kind is CaseKind.INFRA else After.REBOOT
        why = f"the guest died during {entry.case} ({cases[0].kind})"
    except (Cancelled, UserError):
        raise
    except OSError as e:
        if e.errno in HOST_FULL:        # the results filesystem: the run's error, not the case's
            raise
        cases = [_lab_error(entry.case, e, time.monotonic() - start)]
    except Exception as e:  # noqa: BLE001 - an InfraError, or lab failing on a guest in a bad state
        cases = [_lab_error(entry.case, e, time.monotonic() - start)]
    for c in cases:
        c.classname = c.classname or entry.name
    cases += latency.stall_cases(cases, entry.stall_threshold, entry.name)
    store.add(suite, *cases)
    if after is not After.CONTINUE or not machine.running:
        store.add(suite, *checks.findings_cases(machine.console_text(), entry.name, seen))
        if after is After.CONTINUE:
            after, why = After.REBOOT, f"the guest died during {entry.case}"
        return after, why
    try:
        if not guest.alive(timeout=15):
            raise GuestUnreachable("the guest stopped answering")
        dmesg, _ = guest.kmsg_since(cursor)
        (wdir / "dmesg.txt").write_text(dmesg)
        store.add(suite, *checks.findings_cases(dmesg, entry.name, seen))
        left = scope.tasks()
        if left and not investigated:
            # the workload left processes behind: end them the same way
            res = end_workload(guest, scope, [t.pid for t in left.values() if t.state == "D"],
                               bound=recovery)
            (wdir / "resolution.txt").write_text(hang.resolution_text(res) + "\n")
        elif left:
            scope.kill_all()
        failed = any(c.status in (Status.FAILED, Status.ERROR) for c in cases)
        if any(c.status is not Status.SKIPPED for c in cases):
            pin = checks.pin_case(guest, pins, entry.name, scope=scope, workload_failed=failed)
            # a leak: run the workload again with pin tracing to name its call sites
            pin, alive = pintrace.follow_up(pin, cases, ctx,
                                            lambda c: lookup(entry.name)(entry.options).run(c))
            store.add(suite, pin)
            if not alive:
                raise GuestUnreachable("the guest stopped answering during the traced rerun")
        survivors = scope.tasks()
        deadlocked = [c for c in cases if c.kind in (CaseKind.DEADLOCK, CaseKind.PANIC,
                                                     CaseKind.UNREACHABLE)]
        reasons = [f"{deadlocked[0].name} ended in a {deadlocked[0].kind}"] if deadlocked else []
        if survivors:
            reasons.append(f"{entry.case} left process(es) that cannot be ended: "
                           + ", ".join(t.show() for t in survivors.values()))
        if reasons:
            after, why = After.REBOOT, "; ".join(reasons)
        else:
            scope.remove()
    except (CommandTimeout, GuestUnreachable, InfraError) as e:
        store.add(suite, *checks.findings_cases(machine.console_text(), entry.name, seen))
        after, why = After.REBOOT, f"the guest stopped answering after {entry.case} ({e})"
    if after is not After.CONTINUE:
        say(why)
    return after, why
