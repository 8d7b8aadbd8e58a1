"""RDMA over soft-RoCE with a file-backed memory region.

rxe is attached to the guest NIC and ib_write_bw runs server and client in
the guest (loopback to the guest's own address), each with its memory region
on a file (`--mmap=FILE`, which long-term pins the file's pages), while a
third process loops pwrite()+fsync() on that file: writeback of pinned
pages. On ext4/xfs this must run and report bandwidth. On an fsdax file a
kernel that refuses the registration ("Failed to create MR") is the expected
outcome; if the registration succeeds, a truncate of the file while the
region is registered must complete within `truncate_timeout`.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass

from .. import hang
from ..errors import CommandTimeout
from ..results import CaseKind, CaseResult, Status
from ..validate import MAX_DISK_MB, MAX_SECONDS, matching
from . import register
from .base import Option, Workload, WorkloadContext
from .common import (GUEST_DIR, NVME, GuestProc, fetch, first_line, has_dax_always,
                     install_helper, logged, make_fs, mount_options, nvme_present,
                     parse_json_tail, setup_fsdax, unmount, wait_files)

MNT = "/mnt/lab-rdma"
RXE = "rxe0"
PORT = 18515
REFUSED = re.compile(r"Failed to create MR|Couldn't allocate MR|failed to create mr")
CONNECTED = "remote address:"


@dataclass(frozen=True)
class PerftestResult:
    msg_bytes: int
    iterations: int
    bw_peak_mbs: float
    bw_avg_mbs: float
    msg_rate_mpps: float


def refusal_problems(sides: dict[str, tuple[int | None, str]], *, done: bool,
                     bandwidth: bool) -> list[str]:
    """What else went wrong when the kernel refused an MR on an fsdax file
    (pure): the refusal is the expected outcome only when it is the whole
    story. Each side that failed must have failed for the refusal itself
    (perftest exits 1 then), and no bandwidth can have been measured.
    `sides`: name -> (exit status or None, its output)."""
    out = []
    for side, (rc, text) in sides.items():
        if rc is None:
            if done:
                out.append(f"the {side} left no exit status")
        elif rc not in (0, 1):
            out.append(f"the {side} exited {rc}")
        elif rc == 1 and not REFUSED.search(text):
            out.append(f"the {side} failed without a refusal of its own: "
                       f"{first_line(text) or 'no output'}")
    if bandwidth:
        out.append("a bandwidth was reported although a registration was refused")
    return out


def parse_perftest(text: str) -> PerftestResult | None:
    """The result row under the `#bytes #iterations BW peak...` header (pure)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "#bytes" in line and "BW average" in line:
            for row in lines[i + 1:i + 4]:
                f = row.split()
                if len(f) >= 5 and f[0].isdigit():
                    try:
                        return PerftestResult(int(f[0]), int(f[1]), float(f[2]), float(f[3]),
                                              float(f[4]))
                    except ValueError:
                        return None
    return None


def rxe_setup_cmd(netdev: str) -> str:
    """Load rxe (and the crc32 it needs when modular) and attach it (pure)."""
    return (f"modprobe -q crc32_generic 2>/dev/null; modprobe -q rdma_rxe 2>&1; "
            f"rdma link show {RXE}/1 >/dev/null 2>&1 || "
            f"rdma link add {RXE} type rxe netdev {shlex.quote(netdev)}")


def perftest_argv(*, seconds: int, size: int, mmap: str, offset: int = 0,
                  server: str | None = None) -> list[str]:
    argv = ["ib_write_bw", "-d", RXE, "-F", "-D", str(seconds), "-s", str(size),
            "-p", str(PORT), f"--mmap={mmap}"]
    if offset:
        argv.append(f"--mmap-offset={offset}")
    if server:
        argv.append(server)
    return argv


@register
class Rdma(Workload):
    name = "rdma"
    description = "ib_write_bw over rxe with a file-backed MR while another process fsyncs it"
    options = {
        "targets": Option(tuple, ("ext4", "dax-ext4"), "where the MR file lives",
                          choices=("ext4", "xfs", "dax-ext4", "dax-xfs")),
        "duration": Option(int, 5, "seconds of ib_write_bw traffic", minimum=1,
                           maximum=MAX_SECONDS),
        "size": Option(int, 65536, "message size, bytes", minimum=1, maximum=1 << 30),
        "file_mb": Option(int, 16, "size of the MR file, MiB", minimum=1, maximum=MAX_DISK_MB),
        "fsync": Option(bool, True, "loop pwrite+fsync on the MR file meanwhile"),
        "truncate_timeout": Option(float, 30.0,
                                   "seconds a truncate may take while an MR is registered",
                                   minimum=1, maximum=MAX_SECONDS),
        "netdev": Option(str, "eth0", "the NIC rxe attaches to",
                         valid=matching(r"[A-Za-z0-9_.-]{1,15}", "a network interface name")),
        "address": Option(str, "10.0.2.15", "the guest's address on that NIC",
                          valid=matching(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", "an IPv4 address")),
    }

    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        o = self.opts
        if o["file_mb"] * 2**20 // 2 < 2 * o["size"]:
            return [CaseResult("rdma", Status.ERROR, message=f"file_mb {o['file_mb']} is too "
                               f"small for two {o['size']}-byte buffers per side")]
        g = logged(ctx)
        setup = g.run(rxe_setup_cmd(o["netdev"]), timeout=120)
        if not setup.ok:
            text = (setup.stdout + setup.stderr).strip()
            have_mod = g.run("test -d /sys/module/rdma_rxe || test -d /sys/class/infiniband",
                             timeout=30).ok
            if not have_mod:
                return [CaseResult("rdma", Status.SKIPPED,
                                   message=f"the kernel lacks rxe (CONFIG_RDMA_RXE): {text[-300:]}")]
            return [CaseResult("rdma", Status.ERROR, message=f"cannot attach rxe to "
                               f"{o['netdev']}: {text[-300:]}")]
        if not g.run("command -v ib_write_bw", timeout=30).ok:
            return [CaseResult("rdma", Status.SKIPPED, message="the image lacks ib_write_bw "
                               "(package perftest)")]
        state = g.run(f"for i in $(seq 50); do rdma link show {RXE}/1 | grep -q 'state ACTIVE' "
                      "&& exit 0; sleep 0.2; done; exit 1", timeout=60)
        if not state.ok:
            g.run(f"rdma link delete {RXE}", timeout=60)
            return [CaseResult("rdma", Status.ERROR, message=f"{RXE} did not become ACTIVE")]
        helper = install_helper(ctx, g) if o["fsync"] else None
        cases = []
        for t in o["targets"]:
            # a timeout propagates without cleanup: the runner investigates first
            try:
                cases.append(self._target(ctx, g, t, helper))
            except CommandTimeout as e:
                raise hang.keep(e, cases)
        g.run(f"rdma link delete {RXE} 2>/dev/null; true", timeout=60)
        return cases

    # -- one target ---------------------------------------------------------
    def _target(self, ctx, g, target: str, helper: str | None) -> CaseResult:
        name = f"rdma.{target}"
        dax = target.startswith("dax-")
        fs = target.split("-")[-1]
        if dax:
            dev, why = setup_fsdax(g)
            if dev is None:
                return CaseResult(name, Status.SKIPPED, message=why)
        else:
            if not nvme_present(g):
                return CaseResult(name, Status.SKIPPED, message=f"{NVME} is missing: the "
                                  "machine has no NVMe drive (machine.nvme_mb)")
            dev = NVME
        mk = make_fs(g, fs, dev, MNT, dax=dax)
        if not mk.ok:
            return CaseResult(name, Status.ERROR, message=f"cannot make and mount {fs} on {dev}"
                              f"{' -o dax' if dax else ''}: {first_line(mk.stderr)}")
        opts = mount_options(g, MNT) or ""
        if dax and not has_dax_always(opts):
            unmount(g, MNT)
            return CaseResult(name, Status.ERROR, message=f"mount -o dax did not take effect "
                              f"({opts}): the MR would not be on an fsdax file")
        try:
            case = self._traffic(ctx, g, name, dax, helper, opts)
        except CommandTimeout as e:
            # leave the processes and the mount as they are: the runner's
            # deadlock investigation looks at them before anything is killed
            raise hang.tag(e, name)
        g.run(f"pkill -KILL -x ib_write_bw 2>/dev/null; umount {MNT} 2>/dev/null || "
              f"umount -l {MNT}; true", timeout=120)
        return case

    def _traffic(self, ctx, g, name: str, dax: bool, helper: str | None,
                 mount_opts: str) -> CaseResult:
        o = self.opts
        wdir = f"{GUEST_DIR}/{name}"
        mr = f"{MNT}/mr.dat"
        start = time.monotonic()
        g.run(f"rm -rf {wdir}; mkdir -p {wdir}; dd if=/dev/zero of={mr} bs=1M "
              f"count={o['file_mb']} conv=fsync status=none", timeout=120, check=True)
        half = o["file_mb"] * 2**20 // 2
        dur = o["duration"]
        server = GuestProc(g, "server", shlex.join(perftest_argv(
            seconds=dur, size=o["size"], mmap=mr)), wdir).start()
        g.run(f"for i in $(seq 100); do ss -ltn | grep -q ':{PORT} ' && exit 0; "
              f"[ -e {server.rc_file} ] && exit 1; sleep 0.2; done; exit 1", timeout=60)
        fsync = None
        if helper:
            fsync = GuestProc(g, "fsync", f"{helper} fsync --file {mr} --write --seconds "
                              f"{dur + 120}", wdir).start()
        client = GuestProc(g, "client", shlex.join(perftest_argv(
            seconds=dur, size=o["size"], mmap=mr, offset=half, server=o["address"])),
            wdir).start()
        props = {"target": name.split(".", 1)[1], "msg_size": str(o["size"]),
                 "duration_s": str(dur), "mount_options": mount_opts, "file": mr}
        truncate_note = ""
        if dax:
            verdict = self._dax_truncate(g, name, wdir, mr, client)
            if verdict is not None and verdict.status is not Status.PASSED:
                t0 = time.monotonic()
                self._stop(g, client, server, fsync)
                # stall or deadlock: does the truncate complete once the
                # processes holding the MRs (the pins) are gone?
                if wait_files(g, [f"{wdir}/truncate.rc"], timeout=ctx.recovery):
                    verdict.kind = CaseKind.STALL
                    verdict.message += (f"; it completed {time.monotonic() - t0:.1f}s after "
                                        "the MR holders were ended: a stall")
                else:
                    verdict.message += (f"; it did not complete within {ctx.recovery:g}s after "
                                        "the MR holders were ended: a deadlock")
                fetch(g, wdir, ctx.outdir / name)
                return verdict
            truncate_note = verdict.output if verdict else ""
            if verdict:
                props.update(verdict.properties)
        done = wait_files(g, [client.rc_file, server.rc_file], timeout=dur + 90)
        fsync_json = None
        if fsync:
            fsync.stop(grace=30)
            fsync_json = parse_json_tail(fsync.output())
        if not done:
            self._stop(g, client, server, None)
        fetch(g, wdir, ctx.outdir / name)
        crc, src = client.returncode(), server.returncode()
        cout, sout = client.output(), server.output()
        cerr = g.run(f"tail -c 4000 {wdir}/client.err", timeout=30).stdout
        serr = g.run(f"tail -c 4000 {wdir}/server.err", timeout=30).stdout
        props.update({"client_exit": str(crc), "server_exit": str(src)})
        if fsync_json:
            props.update({"fsyncs": str(fsync_json.get("fsyncs")),
                          "max_fsync_ms": str(fsync_json.get("max_fsync_ms"))})
        elapsed = time.monotonic() - start
        everything = cout + sout + cerr + serr
        res = parse_perftest(cout) or parse_perftest(sout)
        if res:
            props.update({"bw_avg_mbs": f"{res.bw_avg_mbs:.2f}", "bw_peak_mbs":
                          f"{res.bw_peak_mbs:.2f}", "iterations": str(res.iterations),
                          "msg_rate_mpps": f"{res.msg_rate_mpps:.6f}"})
        summary = (f"{name}: ib_write_bw {res.bw_avg_mbs:.2f} MB/s average, {res.iterations} "
                   f"x {res.msg_bytes} B" if res else f"{name}: no bandwidth reported")
        if fsync_json:
            summary += (f"; {fsync_json.get('fsyncs')} fsyncs of the MR file meanwhile "
                        f"(max {fsync_json.get('max_fsync_ms')} ms)")
        if truncate_note:
            summary += "; " + truncate_note
        refused = dax and REFUSED.search(everything) is not None
        problems = []
        if not done:
            problems.append(f"ib_write_bw did not finish within {dur + 90}s")
        if refused:
            props["registration"] = "refused"
            problems += refusal_problems({"client": (crc, cout + cerr),
                                          "server": (src, sout + serr)},
                                         done=done, bandwidth=res is not None)
        elif done and (crc != 0 or src != 0 or res is None or res.bw_avg_mbs <= 0):
            problems.append(f"ib_write_bw failed (client exit {crc}, server exit {src})")
        if fsync_json is not None and not fsync_json.get("ok", False):
            problems.append(f"fsync of the MR file failed: {fsync_json.get('first_error')}")
        if fsync and fsync_json is None:
            problems.append("the fsync loop did not report (it did not exit on SIGTERM: "
                            "stuck in fsync?)")
        if refused and not problems:
            return CaseResult(name, Status.PASSED, elapsed, properties=props,
                              output="the kernel refused to register an MR on an fsdax file "
                                     "(\"Failed to create MR\"): the expected outcome on kernels "
                                     "that refuse FOLL_LONGTERM pins of fsdax pages")
        if problems:
            message = "; ".join(problems)
            if refused:
                message = ("the kernel refused to register an MR on the fsdax file (the "
                           "expected outcome), but: " + message)
            return CaseResult(name, Status.FAILED, elapsed,
                              kind=CaseKind.NONE if done else CaseKind.TIMEOUT,
                              output=summary, message=message, details=everything[-4000:],
                              properties=props)
        if dax:
            props["registration"] = "ok"
        return CaseResult(name, Status.PASSED, elapsed, output=summary, properties=props)

    def _dax_truncate(self, g, name, wdir, mr, client) -> CaseResult | None:
        """Once the client has connected (so both MRs exist), truncate the file
        and require the truncate to complete. None when the MR was refused."""
        o = self.opts
        ok = g.run(f"for i in $(seq 300); do grep -q '{CONNECTED}' {wdir}/client.out && exit 0;"
                   f" [ -e {client.rc_file} ] && exit 1; sleep 0.2; done; exit 1", timeout=120)
        if not ok.ok:
            return None   # refused or failed: judged from the outputs
        trunc = GuestProc(g, "truncate", f"truncate -s 0 {mr}", wdir).start()
        t0 = time.monotonic()
        if wait_files(g, [trunc.rc_file], timeout=o["truncate_timeout"]):
            secs = time.monotonic() - t0
            return CaseResult("truncate", Status.PASSED, secs,
                              output=f"the MR registration succeeded; truncate of the file "
                                     f"completed in {secs:.1f}s",
                              properties={"registration": "ok", "truncate_s": f"{secs:.1f}"})
        text, a, b = hang.collect_ssh(g.inner, g.kmsg_cursor())
        v = hang.classify(text, a, b)
        return CaseResult(name, Status.FAILED,
                          o["truncate_timeout"], kind=CaseKind.DEADLOCK,
                          message=f"truncate of the fsdax MR file did not complete within "
                                  f"{o['truncate_timeout']:g}s while the MR was registered"
                                  f" ({v.reason})",
                          details=v.details(text), properties={"registration": "ok"})

    @staticmethod
    def _stop(g, *procs) -> None:
        for p in procs:
            if p is not None:
                p.stop()
