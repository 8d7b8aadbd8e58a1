"""Real image, real distro kernel under QEMU, real SSH."""

import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.image.build import cached, ensure
from lab.image.recipe import load_recipe
from lab.vm.machine import BootError, Machine

from .conftest import REPO, boot_config


def qemu_pids_using(path: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"qemu-system.*{path}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_image_is_cached_by_recipe_content(image):
    again = ensure(load_recipe("debian-bookworm"))
    assert again.dir == image.dir and again.rootfs.stat().st_size > 0
    assert cached(load_recipe("debian-bookworm")) is not None
    assert image.host_key.startswith("ssh-ed25519 ")
    assert (image.dir / "id_ed25519").stat().st_mode & 0o077 == 0


def test_boot_distro_kernel_and_run_commands_over_ssh(image, distro, tmp_path):
    before = image.rootfs.stat().st_mtime
    with Machine(boot_config(distro, image), tmp_path) as m:
        g = m.guest
        assert g.run("uname -r", timeout=30).stdout.strip() == distro.release
        # the distro kernel's modules are usable: NVMe came from a module
        r = g.run("test -b /dev/nvme0n1 && grep -c '^nvme ' /proc/modules", timeout=30)
        assert r.ok and r.stdout.strip() == "1"
        # writes go to the throwaway overlay
        g.run("echo scratch > /root/scratch && sync", timeout=30, check=True)
        r = g.run("exit 7", timeout=30)
        assert r.returncode == 7
        g.put(Path(__file__), "/tmp/copied.py")
        assert g.run("wc -c < /tmp/copied.py", timeout=30).stdout.strip() == \
            str(Path(__file__).stat().st_size)
        pid = m.proc.pid
        # the accelerator used is the one recorded, with its reason, in the argv
        assert m.accel.reason
        assert f"accel={m.accel.accel}" in (tmp_path / "qemu.cmdline").read_text()
    assert "Linux version" in (tmp_path / "console.log").read_text()
    assert not Path(f"/proc/{pid}").exists()
    assert image.rootfs.stat().st_mtime == before


def test_kernel_that_dies_in_boot_gives_console_tail_and_no_process(image, distro, tmp_path):
    m = Machine(boot_config(distro, image, extra_cmdline="init=/bin/false", boot_timeout=120),
                tmp_path)
    with pytest.raises(BootError) as e:
        with m:
            pass
    assert "qemu exited" in str(e.value)
    assert "Kernel panic" in str(e.value)  # the console tail is in the error
    assert m.proc.poll() is not None and not qemu_pids_using(tmp_path)


def test_boot_timeout_is_clear_and_kills_qemu(image, distro, tmp_path):
    m = Machine(boot_config(distro, image, boot_timeout=3), tmp_path)
    with pytest.raises(BootError, match=r"did not answer SSH .* within 3s"):
        with m:
            pass
    assert m.proc.poll() is not None and not qemu_pids_using(tmp_path)


def test_cli_boot_runs_one_command_and_returns_its_status(image):
    r = subprocess.run([sys.executable, "-m", "lab.cli", "boot", "--", "sh", "-c",
                        "uname -r; exit 7"], capture_output=True, text=True, timeout=400,
                       cwd=REPO)
    assert r.returncode == 7, r.stderr
    assert r.stdout.strip().endswith("-amd64")


def test_smoke_job_writes_real_results(image, tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "lab.cli", "run", "jobs/smoke.yaml", "-o", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    for key in ("kernel_release", "qemu_version", "accelerator", "image_hash", "job_file"):
        assert props.get(key), key
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    for name in ("boot", "fio.nvme.libaio"):
        assert name in cases and cases[name].find("failure") is None \
            and cases[name].find("error") is None and cases[name].find("skipped") is None
    out_text = cases["fio.nvme.libaio"].find("system-out").text
    iops = float(out_text.split("write ")[1].split(" IOPS")[0])
    assert iops > 0 and "verify passed" in out_text
    assert (out / "console.log").stat().st_size > 0
    assert (out / "00-fio" / "dmesg.txt").exists()
    assert (out / "00-fio" / "fio.nvme.libaio.json").stat().st_size > 0
    # `lab run --dry-run` prints the command the run really used (no boot):
    # the same options in the same order, the same size and kernel command
    # line; only paths under the run's own directories and the port differ
    r = subprocess.run([sys.executable, "-m", "lab.cli", "run", "jobs/smoke.yaml", "--dry-run"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    dry = shlex.split(r.stdout)
    real = shlex.split((out / "qemu.cmdline").read_text())
    assert [a for a in dry if a.startswith("-")] == [a for a in real if a.startswith("-")]
    for flag in ("-smp", "-m", "-append", "-kernel", "-initrd"):
        assert dry[dry.index(flag) + 1] == real[real.index(flag) + 1], flag


def test_doctor_on_this_host():
    """Everything `lab doctor` checks is installed by bootstrap (CI runs it)."""
    r = subprocess.run([sys.executable, "-m", "lab.cli", "doctor"], capture_output=True,
                       text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MISSING" not in r.stdout
    assert "ok  accelerator" in r.stdout and "qemu: QEMU emulator version" in r.stdout


def smoke_until_guest_up(out: Path) -> subprocess.Popen:
    """`lab run jobs/smoke.yaml -o out` in a child, returned once its guest is up."""
    p = subprocess.Popen([sys.executable, "-m", "lab.cli", "run", "jobs/smoke.yaml", "-o",
                          str(out)], stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 300
    for line in p.stderr:
        if "guest up" in line or time.monotonic() > deadline:
            break
    assert qemu_pids_using(out), "qemu should be running once the guest is up"
    return p


def test_ctrl_c_keeps_results_and_leaves_no_qemu(image, tmp_path):
    out = tmp_path / "run"
    p = smoke_until_guest_up(out)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=60)           # drains stderr: a full pipe would block lab's exit
    assert p.returncode == 130
    root = ET.parse(out / "junit.xml").getroot()
    names = [c.get("name") for c in root.iter("testcase")]
    assert "boot" in names and "interrupted" in names
    deadline = time.monotonic() + 10    # lab waits for qemu; allow a loaded host its reaping
    while qemu_pids_using(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not qemu_pids_using(out)


def test_sigkill_of_lab_leaves_no_qemu_and_the_next_lab_marks_the_run(image, tmp_path):
    out = tmp_path / "run"
    p = smoke_until_guest_up(out)
    sockdirs = list(Path("/tmp").glob(f"lab-vm-{p.pid}-*"))
    assert sockdirs
    p.kill()
    p.wait(10)
    for _ in range(50):                 # qemu dies with its parent (PR_SET_PDEATHSIG)
        if not qemu_pids_using(out):
            break
        time.sleep(0.1)
    assert not qemu_pids_using(out)
    import json
    assert json.loads((out / "summary.json").read_text())["state"] == "running"
    # the next lab that sees the run marks it; the next run cleans the sockets
    r = subprocess.run([sys.executable, "-m", "lab.cli", "report", str(out)],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["state"] == "crashed" and s["exit_code"] == 2
    assert [c["name"] for c in s["suites"][0]["cases"]][:1] == ["boot"]
    assert not (out / "disks").exists()
    r = subprocess.run([sys.executable, "-m", "lab.cli", "run", "jobs/smoke.yaml", "-o",
                        str(tmp_path / "again"), "--dry-run"], capture_output=True, text=True,
                       timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    subprocess.run([sys.executable, "-c", "from lab.store import mark_dead_runs; "
                    f"mark_dead_runs(__import__('pathlib').Path({str(tmp_path)!r}))"],
                   check=True, cwd=REPO)
    assert not any(d.exists() for d in sockdirs)
