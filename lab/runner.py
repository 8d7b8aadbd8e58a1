"""The only module that knows the order of the steps: resolve the kernel and
the image, boot, run each workload with its checks, and write results as
each case ends."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from . import checks, hang
from .errors import CommandTimeout, InfraError, LabError
from .guest.base import GuestUnreachable
from .image.build import Image, ensure as ensure_image
from .image.recipe import load_recipe
from .job import Job, KernelKind, KernelSpec
from .kernel.artifact import KernelArtifact, distro_kernel
from .paths import runs_dir
from .results import CaseKind, CaseResult, RunState, Status
from .store import RunStore
from .vm.machine import BootConfig, BootError, Machine, kernel_time_to_init
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


def resolve_kernel(spec: KernelSpec, store: RunStore, suite) -> KernelArtifact | None:
    if spec.kind is KernelKind.DISTRO:
        return distro_kernel(spec.release)
    if spec.kind is KernelKind.ARTIFACT:
        return KernelArtifact.from_dir(spec.path)
    from .kernel.api import build_kernel
    outcome = build_kernel(spec.build)
    store.add(suite, *outcome.cases)
    return outcome.artifact


def run_job(job: Job, out_dir: Path | None = None,
            extra_cases: list[CaseResult] | tuple = ()) -> int:
    out = Path(out_dir) if out_dir else new_run_dir(job.name)
    store = RunStore(out, {"job": str(job.path), "name": job.name, "argv": sys.argv})
    if job.path.exists():
        shutil.copy(job.path, out / "job.yaml")
    log(f"results in {out}")
    suite = store.suite(job.name, {"job_file": str(job.path)})
    if extra_cases:
        store.add(suite, *extra_cases)
    try:
        _run(job, out, store, suite)
    except KeyboardInterrupt:
        store.add(suite, CaseResult("interrupted", Status.ERROR, kind=CaseKind.INTERRUPTED,
                                    message="run interrupted (Ctrl-C / SIGTERM)"))
        store.finish(RunState.INTERRUPTED)
        raise
    except LabError as e:
        store.add(suite, CaseResult("infrastructure", Status.ERROR, kind=CaseKind.INFRA,
                                    message=str(e).splitlines()[0], details=str(e)))
        if e.exit_code == 3:
            store.finish(RunState.BAD_INPUT)
            raise
    code = store.finish()
    c = suite.counts()
    log(f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
        f"{c['skipped']} skipped -> {out / 'junit.xml'}")
    return code


def boot_config(job: Job, kernel: KernelArtifact, image: Image) -> BootConfig:
    """How the job's machine boots `kernel` with `image`."""
    m = job.machine
    return BootConfig(kernel=kernel, image=image, memory_mb=m.memory_mb, cpus=m.cpus,
                      nvme_mb=m.nvme_mb, pmem_mb=m.pmem_mb,
                      hung_task_timeout=job.hung_task_timeout, extra_cmdline=m.cmdline,
                      boot_timeout=job.boot_timeout,
                      accel=None if m.accel == "auto" else m.accel)


def _run(job: Job, out: Path, store: RunStore, suite) -> None:
    kernel = resolve_kernel(job.kernel, store, suite)
    if kernel is None:
        return  # the build/apply cases already say why
    suite.name = f"{job.name}:{kernel.release}"
    image = ensure_image(load_recipe(job.image), log=log)
    suite.properties.update({"kernel_release": kernel.release, "kernel": kernel.origin,
                             "image": image.name, "image_hash": image.key})
    machine = Machine(boot_config(job, kernel, image), out, log=log)
    log(f"booting {kernel.release} ({kernel.origin}) with image {image.name}")
    try:
        try:
            machine.start()
            suite.properties.update({"qemu_version": machine.qemu_version,
                                     "accelerator": machine.accel.accel,
                                     "accelerator_reason": machine.accel.reason,
                                     "kernel_cmdline": machine.spec.cmdline})
            machine.wait_for_ssh()
        except BootError as e:
            console = machine.console_text()
            store.add(suite, CaseResult("boot", Status.FAILED, kind=_boot_kind(console),
                                        message=str(e).splitlines()[0], details=str(e)),
                      *checks.findings_cases(console, "boot"))
            return
        guest = machine.guest
        boot_props = {"boot_to_ssh_s": f"{machine.times.to_ssh:.2f}"}
        k2i = kernel_time_to_init(machine.console_text())
        if k2i is not None:
            boot_props["kernel_to_init_s"] = f"{k2i:.2f}"
        uname = guest.run("uname -r", timeout=30).stdout.strip()
        boot_props["uname_r"] = uname
        log(f"guest up in {machine.times.to_ssh:.1f}s ({machine.accel.accel}), uname -r {uname}")
        store.add(suite, CaseResult("boot", Status.PASSED, machine.times.to_ssh,
                                    output=f"reached SSH in {machine.times.to_ssh:.1f}s under "
                                           f"{machine.accel.accel}",
                                    properties=boot_props))
        seen: set[str] = set()
        store.add(suite, *checks.findings_cases(machine.console_text(), "boot", seen))
        for i, entry in enumerate(job.workloads):
            if not _run_workload(i, entry, machine, kernel, out, store, suite, seen):
                store.add(suite, *[
                    CaseResult(later.name, Status.SKIPPED, classname=later.name,
                               message=f"not run: the guest died during {entry.name}")
                    for later in job.workloads[i + 1:]])
                break
    finally:
        machine.stop()


def _boot_kind(console: str) -> CaseKind:
    return CaseKind.PANIC if "Kernel panic" in console else CaseKind.BOOT


def _run_workload(i, entry, machine: Machine, kernel, out, store, suite, seen) -> bool:
    """Run one workload and its checks; False when the guest is gone."""
    guest = machine.guest
    wl = lookup(entry.name)(entry.options)
    wdir = out / f"{i:02d}-{entry.name}"
    ctx = WorkloadContext(guest=guest, outdir=wdir, timeout=entry.timeout,
                          machine=machine, log=log, kernel=kernel)
    wdir.mkdir(parents=True, exist_ok=True)
    cursor = guest.kmsg_cursor()
    pins = checks.read_pins(guest)
    log(f"workload {entry.name} (timeout {entry.timeout:g}s)")
    start = time.monotonic()
    alive = True
    try:
        cases = wl.run(ctx)
    except CommandTimeout as e:
        cases = [hang.investigate(ctx, e, cursor, entry.name)]
        alive = guest.alive(timeout=15)
    except GuestUnreachable as e:
        alive = False
        console = machine.console_text()
        kind = CaseKind.PANIC if "Kernel panic" in console else CaseKind.UNREACHABLE
        cases = [CaseResult(entry.name, Status.FAILED, time.monotonic() - start, kind=kind,
                            message=f"{kind}: {e}", details=console[-20000:])]
    except InfraError as e:
        cases = [CaseResult(entry.name, Status.ERROR, time.monotonic() - start, kind=CaseKind.INFRA,
                            message=str(e).splitlines()[0], details=str(e))]
    for c in cases:
        c.classname = c.classname or entry.name
    store.add(suite, *cases)
    if alive and machine.running:
        dmesg, _ = guest.kmsg_since(cursor)
        (wdir / "dmesg.txt").write_text(dmesg)
        store.add(suite, *checks.findings_cases(dmesg, entry.name, seen))
        if any(c.status is not Status.SKIPPED for c in cases):
            store.add(suite, checks.pin_case(guest, pins, entry.name))
    else:
        console = machine.console_text()
        store.add(suite, *checks.findings_cases(console, entry.name, seen))
        log(f"guest is gone after {entry.name}; remaining workloads are not run")
    return alive and machine.running
