"""What the pinned-page workloads share: a guest wrapper that keeps every
command's exit status and output in the workload's directory, background
processes in the guest with their own output files, filesystems on the NVMe
drive or an fsdax namespace, and the compiled guest helper."""

from __future__ import annotations

import json
import shlex
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import CommandTimeout
from ..guest.base import Guest, GuestUnreachable
from ..proc import Result
from .. import hang

NVME = "/dev/nvme0n1"
PMEM = "/dev/pmem0"
GUEST_DIR = "/tmp/lab-wl"           # the guest's scratch dir for outputs and helpers


class LoggedGuest(Guest):
    """Delegates to a guest and appends every command, its exit status,
    duration and output to `commands.log` in the workload's directory.
    Long commands go through hang.run_watched (hung-task aware) when a
    machine is given."""

    def __init__(self, inner: Guest, outdir: Path, machine=None):
        self.inner = inner
        self.outdir = Path(outdir)
        self.machine = machine
        self.log_path = self.outdir / "commands.log"
        self._lock = threading.Lock()

    def _record(self, cmd: str, text: str) -> None:
        self.outdir.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.log_path, "a", encoding="utf-8", errors="replace") as f:
            f.write(f"$ {cmd}\n{text}\n")

    def run(self, cmd, *, timeout, check=False, log=None, watch=False):
        start = time.monotonic()
        try:
            if watch and self.machine is not None:
                r = hang.run_watched(self.inner, self.machine, cmd, timeout=timeout)
            else:
                r = self.inner.run(cmd, timeout=timeout, check=check, log=log)
        except CommandTimeout as e:
            self._record(cmd, f"[timed out after {time.monotonic() - start:.1f}s "
                              f"({type(e).__name__})]\n{e.output_tail}")
            raise
        out = r.stdout + (f"--- stderr ---\n{r.stderr}" if r.stderr else "")
        self._record(cmd, f"[exit {r.returncode}, {r.duration:.1f}s]\n{out}".rstrip())
        if r.returncode == -1 and not self.inner.alive(timeout=10):
            # the channel closed without an exit status and the guest is gone
            # (a panic, say): the runner looks at the console
            raise GuestUnreachable(f"the guest stopped answering while running {cmd!r} "
                                   "(no exit status)")
        return r

    def put(self, local, remote, mode=None):
        self._record(f"put {local} -> {remote}", "")
        self.inner.put(local, remote, mode)

    def get(self, remote, local):
        self.inner.get(remote, local)

    def alive(self, timeout=10.0):
        return self.inner.alive(timeout)

    def kmsg_cursor(self):
        return self.inner.kmsg_cursor()

    def kmsg_since(self, cursor, timeout=60):
        return self.inner.kmsg_since(cursor, timeout)


def logged(ctx) -> LoggedGuest:
    g = ctx.guest
    if isinstance(g, LoggedGuest):
        return g
    return LoggedGuest(g, ctx.outdir, ctx.machine)


# --- background processes in the guest ---------------------------------------

@dataclass
class GuestProc:
    """A command started in the background in its own session; its stdout,
    stderr and exit status go to files under GUEST_DIR/<tag>/."""

    guest: LoggedGuest
    name: str
    cmd: str
    dir: str
    pid: int = 0

    @property
    def rc_file(self) -> str:
        return f"{self.dir}/{self.name}.rc"

    def start(self) -> "GuestProc":
        q = shlex.quote
        body = f"{self.cmd}; echo $? > {q(self.rc_file)}.tmp; mv {q(self.rc_file)}.tmp {q(self.rc_file)}"
        line = (f"mkdir -p {q(self.dir)}; rm -f {q(self.rc_file)}; "
                f"setsid sh -c {q(body)} > {q(self.dir)}/{self.name}.out "
                f"2> {q(self.dir)}/{self.name}.err < /dev/null & echo $!")
        r = self.guest.run(line, timeout=30)
        self.pid = int(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else 0
        return self

    def returncode(self) -> int | None:
        r = self.guest.run(f"cat {shlex.quote(self.rc_file)} 2>/dev/null", timeout=30)
        return int(r.stdout.strip()) if r.stdout.strip().lstrip("-").isdigit() else None

    def output(self) -> str:
        return self.guest.run(f"cat {shlex.quote(self.dir)}/{self.name}.out", timeout=30).stdout

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the command (not the shell that records its exit status),
        wait up to `grace` for the status, then SIGKILL the whole session."""
        if self.pid:
            pg = self.pid
            n = max(1, int(grace / 0.2))
            self.guest.run(f"for p in $(pgrep -g {pg}); do [ \"$p\" = {pg} ] || "
                           f"kill -TERM \"$p\" 2>/dev/null; done; i=0; while [ ! -e "
                           f"{shlex.quote(self.rc_file)} ] && [ $i -lt {n} ]; do sleep 0.2; "
                           f"i=$((i+1)); done; kill -KILL -- -{pg} 2>/dev/null; true",
                           timeout=grace + 30)


def wait_files(guest: LoggedGuest, paths: list[str], *, timeout: float,
               poll: float = 0.3) -> bool:
    """Wait in the guest (one command, hung-task aware) until all `paths`
    exist; False if `timeout` passed first."""
    tests = " && ".join(f"[ -e {shlex.quote(p)} ]" for p in paths)
    n = max(1, int(timeout / poll))
    cmd = (f"i=0; until {tests}; do i=$((i+1)); [ $i -gt {n} ] && exit 1; "
           f"sleep {poll}; done")
    return guest.run(cmd, timeout=timeout + 60, watch=True).ok


def fetch(guest: LoggedGuest, remote_dir: str, outdir: Path) -> None:
    """Copy the small text files of a guest dir into the workload's directory."""
    r = guest.inner.run(f"cd {shlex.quote(remote_dir)} 2>/dev/null && "
                        "for f in *.out *.err *.rc *.json; do [ -f \"$f\" ] && "
                        "printf '=== %s\\n' \"$f\" && head -c 200000 \"$f\"; done; true",
                        timeout=60)
    name = None
    buf: list[str] = []
    outdir.mkdir(parents=True, exist_ok=True)

    def flush():
        if name:
            (outdir / name).write_text("".join(buf), errors="replace")
    for line in r.stdout.splitlines(keepends=True):
        if line.startswith("=== "):
            flush()
            name, buf = Path(line[4:].strip()).name, []
        else:
            buf.append(line)
    flush()


# --- filesystems ------------------------------------------------------------

MKFS = {"ext4": "mkfs.ext4 -q -F -b 4096", "xfs": "mkfs.xfs -q -f"}


def make_fs(guest: LoggedGuest, fs: str, dev: str, mnt: str, *, dax: bool = False,
            timeout: float = 120) -> Result:
    """mkfs + mount (modules load on demand); -o dax for DAX."""
    q = shlex.quote
    opts = "-o dax" if dax else ""
    return guest.run(f"umount {q(mnt)} 2>/dev/null; mkdir -p {q(mnt)} && modprobe -q {fs} "
                     f"2>/dev/null; {MKFS[fs]} {q(dev)} && mount {opts} {q(dev)} {q(mnt)}",
                     timeout=timeout)


def first_line(text: str) -> str:
    """The first non-empty line of an error output (mkfs prints its usage after it)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


def mount_options(guest: LoggedGuest, mnt: str) -> str | None:
    r = guest.run(f"grep ' {mnt} ' /proc/mounts", timeout=30)
    parts = r.stdout.split()
    return parts[3] if len(parts) > 3 else None


def has_dax_always(mount_opts: str | None) -> bool:
    return bool(mount_opts) and ("dax=always" in mount_opts.split(",")
                                 or "dax" in mount_opts.split(","))


def unmount(guest: LoggedGuest, mnt: str) -> None:
    guest.run(f"sync; umount {shlex.quote(mnt)} 2>/dev/null; true", timeout=120)


def nvme_present(guest: LoggedGuest) -> bool:
    return guest.run(f"test -b {NVME}", timeout=30).ok


def setup_fsdax(guest: LoggedGuest) -> tuple[str | None, str]:
    """Load the NVDIMM drivers and put namespace0.0 in fsdax mode.
    Returns (/dev/pmem0, "") or (None, why it is not possible)."""
    guest.run("modprobe -qa nfit nd_pmem dax_pmem 2>/dev/null; "
              "for i in $(seq 30); do [ -e /sys/bus/nd/devices/namespace0.0 ] && break; "
              "sleep 0.2; done; true", timeout=60)
    r = guest.run("ls /sys/bus/nd/devices 2>/dev/null", timeout=30)
    if "namespace0.0" not in r.stdout:
        if not guest.run("test -d /sys/bus/nd", timeout=30).ok:
            return None, ("the kernel has no NVDIMM support (CONFIG_ACPI_NFIT / "
                          "CONFIG_LIBNVDIMM) or the machine no NVDIMM (machine.pmem_mb)")
        return None, ("no NVDIMM namespace: the machine has no emulated NVDIMM "
                      "(set machine.pmem_mb in the job)")
    mode = guest.run("ndctl list -n namespace0.0 2>/dev/null", timeout=60)
    if '"mode":"fsdax"' not in mode.stdout.replace(" ", ""):
        c = guest.run("ndctl create-namespace -f -e namespace0.0 -m fsdax", timeout=120)
        if not c.ok:
            return None, f"ndctl create-namespace -m fsdax failed: {c.stderr.strip()[-300:]}"
    ok = guest.run(f"for i in $(seq 50); do [ -b {PMEM} ] && exit 0; sleep 0.2; done; exit 1",
                   timeout=60)
    if not ok.ok:
        return None, f"{PMEM} did not appear after creating the fsdax namespace"
    return PMEM, ""


# --- the C helper -----------------------------------------------------------

def install_helper(ctx, guest: LoggedGuest, name: str = "pinstress") -> str:
    """Compile (cached) and copy a helper into the guest; its guest path."""
    from .helpers import build_helper
    local = (Path(ctx.helpers_dir) / name) if ctx.helpers_dir else build_helper(name)
    if not local.exists():
        local = build_helper(name)
    remote = f"{GUEST_DIR}/{name}"
    # A copy still running (stuck in D state after an earlier workload) keeps
    # its file busy (ETXTBSY): upload under a new name, then rename over it.
    tmp = f"{GUEST_DIR}/.{name}.{uuid.uuid4().hex[:12]}"
    guest.run(f"mkdir -p {GUEST_DIR}", timeout=30)
    guest.put(local, tmp, mode=0o755)
    guest.run(f"mv -f {tmp} {remote}", timeout=30, check=True)
    return remote


def parse_json_tail(text: str) -> dict | None:
    """The last line of `text` that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None
