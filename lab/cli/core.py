"""The core subcommands: run, boot, image build, doctor."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from .. import validate
from ..errors import UserError
from ..store import prepare_output
from .helptext import boot_epilog, para, run_epilog


def output_option(p: argparse.ArgumentParser, text: str = "") -> None:
    """-o/--output DIR, the one spelling of the results directory of every
    subcommand that writes one; --out, test-patch's old spelling, still works
    (hidden)."""
    p.add_argument("-o", "--output", metavar="DIR", help=text or (
        "results directory (default: a new <date>-<job> directory under $LAB_RUNS_DIR, "
        "else ./runs)"))
    p.add_argument("--out", dest="output", help=argparse.SUPPRESS)


def register(sub) -> None:
    p = sub.add_parser("run", help="run a job file: boot, run workloads, write JUnit",
                       description=para("Run a job's cells: build or find each kernel and "
                                        "the image, boot, run the workloads and the checks "
                                        "after each, write junit.xml, junit-properties.xml "
                                        "and summary.json after every case, compare with the "
                                        "baseline cell and the previous run."),
                       epilog=run_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("job", help="job file (YAML) or the name of one, e.g. jobs/smoke.yaml or "
                               "smoke")
    output_option(p)
    p.add_argument("--dry-run", action="store_true", help="print the qemu argv and exit")
    p.add_argument("--cell", action="append", metavar="ID",
                   help="run only this cell (repeatable); ids from `lab matrix JOB --list`")
    p.add_argument("--shard", metavar="I/N", help="run shard I of N of the cells")
    p.add_argument("--prebuilt", metavar="MAP.json", type=Path,
                   help='kernels built elsewhere: {"KERNEL/VARIANT": ARTIFACT_DIR}; those '
                        "cells boot the artifact instead of building (lab hosts run uses it)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("matrix", help="the cells a job expands into",
                       description="List the cells of a job's matrix: one line per cell, "
                                   "its id (made of names, stable across edits elsewhere in "
                                   "the file), kernel, variant, workload set and baseline.")
    p.add_argument("job", help="job file (YAML)")
    p.add_argument("--list", action="store_true", help="list the cells (the default)")
    p.add_argument("--cell", action="append", metavar="ID", help="only these cells")
    p.add_argument("--shard", metavar="I/N", help="only shard I of N")
    p.add_argument("--format", choices=["list", "gitlab", "github"], default="list",
                   help="list the cells (default), or print a CI pipeline running the "
                        "matrix in shards: a GitLab child pipeline (parallel:matrix) or a "
                        "GitHub Actions workflow (strategy.matrix)")
    p.add_argument("--shards", type=int, metavar="N",
                   help="with --format gitlab|github: N parallel jobs (default: one a cell)")
    p.add_argument("--runner-tag", default="lab", metavar="TAG",
                   help="with --format gitlab|github: the runners' tag (default: lab)")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("boot", help="boot a kernel and open a shell or run one command",
                       description=para(
                           "Boot a kernel with lab's image, then an interactive SSH shell "
                           "(--shell) or one command (-- CMD...). The kernel may be the one "
                           "you just built in your own tree (`make && lab boot --kernel . "
                           "--shell`), with the current directory mounted in the guest at "
                           "the same path."),
                       epilog=boot_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernel", default="distro", metavar="K",
                   help="'distro', 'distro:RELEASE', a `lab build` artifact dir, a kernel tree "
                        "you built (or its O= build dir: its arch/x86/boot/bzImage, .config "
                        "and modules) or a bzImage file (booted without modules)")
    p.add_argument("--image", default="debian-bookworm", help="image recipe name or path")
    p.add_argument("--memory", type=int, default=2048, help="MiB")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--nvme", type=int, default=1024, help="NVMe drive size MiB (0: none)")
    p.add_argument("--pmem", type=int, default=0, help="NVDIMM size MiB (0: none)")
    p.add_argument("--append", default="", help="extra kernel command line")
    p.add_argument("--timeout", type=float, default=180, help="boot timeout, seconds")
    share = p.add_mutually_exclusive_group()
    share.add_argument("--share", metavar="DIR",
                       help="host directory mounted read-write in the guest at the same "
                            "path, over virtio-9p (default: the current directory)")
    share.add_argument("--no-share", action="store_true", help="share no host directory")
    p.add_argument("--shell", action="store_true", help="interactive SSH shell")
    p.add_argument("--dry-run", action="store_true", help="print the qemu argv and exit")
    output_option(p, "directory for console.log and qemu.cmdline (default: a new "
                     "temporary directory)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD...: run it, exit with its status")
    p.set_defaults(func=cmd_boot)

    p = sub.add_parser("image", help="guest images")
    isub = p.add_subparsers(dest="image_cmd", required=True)
    b = isub.add_parser("build", help="build (or find cached) an image from images/NAME.yaml")
    b.add_argument("name", help="recipe name (in $LAB_IMAGES_DIR or lab's images) or path")
    b.add_argument("--force", action="store_true", help="rebuild even when cached")
    b.set_defaults(func=cmd_image_build)

    p = sub.add_parser("doctor", help="check this host: qemu, KVM, mmdebstrap, disk")
    p.set_defaults(func=cmd_doctor)


def parse_kernel_arg(value: str, *, share: bool = False, log=lambda msg: None):
    """--kernel: 'distro', 'distro:RELEASE', a `lab build` artifact directory,
    a kernel tree (or O= build directory) the user built, or a bzImage."""
    from ..kernel import tree as ktree
    from ..kernel.artifact import KernelArtifact, distro_kernel
    if value == "distro":
        return distro_kernel()
    if value.startswith("distro:"):
        return distro_kernel(value.split(":", 1)[1])
    path = Path(value).expanduser()
    if path.is_dir() and (path / "bzImage").is_file() and not (path / ktree.BZIMAGE).exists():
        return KernelArtifact.from_dir(path, field="--kernel")
    return ktree.tree_artifact(ktree.detect(path, field="--kernel"), share=share,
                               field="--kernel", log=log)


# guest paths a share may not hide: the guest's own system, and /root/.ssh
# (its authorized_keys lets lab in); a share inside them (/usr/src/linux) is fine
GUEST_SYSTEM = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root/.ssh",
                "/run", "/sbin", "/sys", "/usr", "/var")


def share_problem(path: Path) -> str | None:
    """Why a host directory cannot be mounted at its own path in the guest
    (pure): it would hide a part of the guest's system lab needs."""
    p = str(path)
    if p == "/":
        return "mounted at / in the guest it would hide the guest's whole system"
    for sys_dir in GUEST_SYSTEM:
        if sys_dir == p or sys_dir.startswith(p + "/"):
            return f"mounted at {p} in the guest it would hide the guest's {sys_dir}"
    for virtual in ("/proc", "/sys", "/dev"):
        if p.startswith(virtual + "/"):
            return f"it is under {virtual}, a filesystem of the guest's own kernel"
    return None


def boot_shares(args, log) -> tuple:
    """--share DIR (must be a directory lab can mount), the current directory
    by default (skipped with a note when it cannot be), or --no-share."""
    from ..vm.base import Share
    if args.no_share:
        return ()
    if args.share is None:
        cwd = Path.cwd().resolve()
        why = share_problem(cwd)
        if why:
            log(f"not sharing the current directory {cwd}: {why} (give --share DIR)")
            return ()
        return (Share(cwd),)
    validate.path_text(args.share, field="--share")
    path = Path(args.share).expanduser()
    if not path.is_dir():
        raise UserError(f"{path} is not a directory" if path.exists() else
                        f"{path} does not exist", field="--share")
    path = path.resolve()
    why = share_problem(path)
    if why:
        raise UserError(f"{path} cannot be shared: {why}; share a directory of your own, "
                        "or --no-share", field="--share")
    return (Share(path),)


def _cells(args):
    from dataclasses import replace
    from ..job import load_job
    from ..matrix import expand, parse_shard, select
    job = load_job(args.job)
    if getattr(args, "prebuilt", None):
        from ..fanout import load_prebuilt
        job = replace(job, prebuilt=load_prebuilt(args.prebuilt))
    shard = parse_shard(args.shard) if args.shard else None
    return job, select(job, expand(job), args.cell, shard), shard


def cmd_run(args) -> int:
    job, cells, shard = _cells(args)
    if args.dry_run:
        return _dry_run(job, cells)
    from ..runner import run_job
    return run_job(job, Path(args.output) if args.output else None, cell_ids=args.cell,
                   shard=shard)


def cmd_matrix(args) -> int:
    if args.format != "list":
        return _pipeline(args)
    job, cells, _ = _cells(args)
    rows = [("cell", "kernel", "variant", "workloads", "baseline")]
    rows += [(c.id, f"{c.kernel.name} ({c.kernel.spec.kind})", c.variant.name,
              f"{c.workload_set.name} ({len(c.workloads)})", c.baseline or "-")
             for c in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"{len(cells)} cell(s) x repeat {job.repeat} = {len(cells) * job.repeat} boot(s)",
          file=sys.stderr)
    return 0


def _pipeline(args) -> int:
    """`lab matrix JOB --format gitlab|github`: the whole matrix, sharded."""
    from ..job import load_job
    from ..matrix import expand
    from ..pipelines import plan, render
    if args.cell or args.shard or args.list:
        raise UserError("a pipeline runs the whole matrix; give --shards N, not --cell, "
                        "--shard or --list", field="--format")
    job = load_job(args.job)
    p = plan(args.job, job.name, len(expand(job)), args.shards, args.runner_tag)
    sys.stdout.write(render(p, args.format))
    return 0


def _dry_run(job, cells) -> int:
    """Print the qemu argv of each cell (its kernel and the image must be
    available: a kernel to build is planned, and must be in the cache)."""
    from ..image.build import Image, cached
    from ..image.recipe import load_recipe
    from ..job import KernelKind
    from ..runner import boot_config, resolve_kernel
    from ..vm.machine import Machine
    import tempfile
    recipe = load_recipe(job.image)
    image = cached(recipe) or Image(recipe.name, recipe.key,
                                    Path(f"<{recipe.name}-{recipe.key}>/rootfs.ext4"),
                                    Path("<key>"), "ssh-ed25519 AAAA", Path("."))
    m = job.machine
    for cell in cells:
        spec = cell.kernel_spec
        if spec.kind is KernelKind.BUILD:
            from ..kernel.api import cached_outcome, plan
            hit = cached_outcome(plan(spec.build))
            if hit is None:
                raise UserError(f"--dry-run needs cell {cell.id}'s kernel built: run "
                                "`lab build` (or the job) first", file=str(job.path),
                                field=f"kernels.{cell.kernel.name}")
            kernel = hit.artifact
        else:
            kernel = resolve_kernel(spec).artifact
        if len(cells) > 1:
            print(f"# {cell.id}")
        with tempfile.TemporaryDirectory() as d:
            mach = Machine(boot_config(job, kernel, image, cell), Path(d))
            argv = mach.build_spec(ssh_port=10022,
                                   accel="tcg" if m.accel == "auto" else m.accel)
            print(argv.shell())
    return 0


BOOT_SIZES = {"memory_mb": "--memory", "cpus": "--cpus", "nvme_mb": "--nvme",
              "pmem_mb": "--pmem"}


def boot_numbers(args) -> dict[str, int]:
    """`lab boot`'s machine sizes, under the same bounds as a job's machine."""
    return {key: validate.machine_number(key, getattr(args, opt[2:]), field=opt)
            for key, opt in BOOT_SIZES.items()}


def cmd_boot(args) -> int:
    from ..image.build import ensure
    from ..image.recipe import load_recipe
    from ..progress import Progress
    from ..vm.machine import BootConfig, Machine
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd and not args.shell and not args.dry_run:
        raise UserError("give --shell or -- CMD...", field="lab boot")
    sizes = boot_numbers(args)
    timeout = validate.seconds(args.timeout, field="--timeout")
    out = prepare_output(Path(args.output)) if args.output else None
    progress = Progress(["boot"], live=False if args.dry_run else None)
    say = lambda msg: progress.log("boot", msg)  # noqa: E731
    try:
        shares = boot_shares(args, say)
        kernel = parse_kernel_arg(args.kernel, share=bool(shares), log=say)
        if shares:
            _check_share_support(kernel)
        recipe = load_recipe(args.image, field="--image")
        image = ensure(recipe, log=say)
        import tempfile
        out = out or Path(tempfile.mkdtemp(prefix="lab-boot-"))
        cfg = BootConfig(kernel=kernel, image=image, extra_cmdline=args.append,
                         boot_timeout=timeout, hung_task_timeout=20, shares=shares, **sizes)
        m = Machine(cfg, out, log=say)
        if args.dry_run:
            progress.close()
            print(m.build_spec(ssh_port=10022, accel="tcg").shell())
            return 0
        m.on_stage = lambda stage, at: progress.stage("boot", str(stage), at)
        progress.set("boot", "starting qemu")
        say(f"booting {kernel.release} ({kernel.origin})"
            + "".join(f"; {s.host} shared at the same path" for s in shares))
        with m:
            say(f"{kernel.release} up in {m.times.to_ssh:.1f}s ({m.accel.accel}); "
                f"console: {m.console_log}")
            progress.close()
            if args.shell:
                return _shell(image, m.ssh_port, shares[0].guest if shares else None)
            where = f"cd {shlex.quote(shares[0].guest)} && " if shares else ""
            r = m.guest.run(where + (shlex.join(cmd) if len(cmd) > 1 else cmd[0]), timeout=3600)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)
            return r.returncode
    finally:
        progress.close()


def _check_share_support(kernel) -> None:
    """A kernel whose configuration is known to lack 9p: bad input, before
    a boot (a tree's .config is checked with the rest of what it needs)."""
    missing = [s for s in ("NET_9P", "NET_9P_VIRTIO", "9P_FS")
               if kernel.config is not None and kernel.config.exists()
               and kernel.config_has(s) not in ("y", "m")]
    if missing:
        raise UserError(f"{kernel.config} lacks {', '.join('CONFIG_' + s for s in missing)}: "
                        "--share mounts a host directory over virtio-9p; enable them or boot "
                        "with --no-share", field="--kernel")


def _shell(image, port: int, cwd: str | None = None) -> int:
    """An interactive ssh into the guest, its host key pinned to the image's
    through a known_hosts file in a private (0700) temporary directory; it
    starts in the shared directory, if any."""
    import subprocess
    import tempfile
    from ..guest.shell import known_hosts_line, shell_argv
    with tempfile.TemporaryDirectory(prefix="lab-ssh-") as d:
        known_hosts = Path(d) / "known_hosts"
        known_hosts.write_text(known_hosts_line(image.host_key, port))
        return subprocess.call(shell_argv(key=image.ssh_key, port=port,
                                          known_hosts=known_hosts, cwd=cwd))


def cmd_image_build(args) -> int:
    from ..image.build import cached, ensure
    from ..image.recipe import load_recipe
    recipe = load_recipe(args.name, field="name")
    t = time.monotonic()
    hit = None if args.force else cached(recipe)
    image = hit or ensure(recipe, force=args.force,
                          log=lambda m: print(f"[lab] {m}", file=sys.stderr))
    print(f"[lab] {'cached' if hit else 'built'} in {time.monotonic() - t:.1f}s",
          file=sys.stderr)
    print(image.dir)
    return 0


def cmd_doctor(args) -> int:
    from ..doctor import report
    return report()
