"""Pure parts of guest access and result parsing: /dev/kmsg records, fio JSON,
pin counters, the fake guest, the interactive shell's ssh command line."""

import json
import subprocess
from pathlib import Path

import pytest

from lab.checks import parse_vmstat
from lab.errors import InfraError
from lab.guest.base import render_kmsg
from lab.guest.shell import known_hosts_line, shell_argv
from lab.workloads.fio_parse import parse_fio_json

from .conftest import need

KMSG = ("6,100,5000000,-;first line\n"
        " SUBSYSTEM=block\n"
        "4,101,6123456,-;WARNING: CPU: 0 PID: 1 at mm/gup.c:10 f\\x0asecond\n"
        "garbage without separator\n")


def test_render_kmsg_filters_by_cursor_and_keeps_continuations_out():
    text, nxt = render_kmsg(KMSG, 101)
    assert text == ("[    6.123456] WARNING: CPU: 0 PID: 1 at mm/gup.c:10 f\n"
                    "[    6.123456] second\n")
    assert nxt == 102
    all_text, nxt = render_kmsg(KMSG, 0)
    assert all_text.startswith("[    5.000000] first line\n") and nxt == 102
    assert render_kmsg("", 7) == ("", 7)


def test_fio_json_figures_with_leading_noise():
    js = {"jobs": [{"error": 0, "write": {"iops": 100.5, "bw": 402}, "read": {
        "iops": 200, "bw": 800, "io_bytes": 4096}}]}
    f = parse_fio_json("fio: warning\n" + json.dumps(js))
    assert f.write_iops == 100.5 and f.verified_bytes == 4096 and f.errors == 0


def test_vmstat_pins():
    assert parse_vmstat("nr_foll_pin_acquired 64\nnr_foll_pin_released 42\n").acquired == 64
    assert parse_vmstat("nr_free_pages 3\n") is None


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDfcWBqVqDnFV7gYnGBQ8kZDq4l0WkQyJ3Sx2nH1bq3e lab-guest"


def test_interactive_shell_pins_the_images_host_key(tmp_path):
    """`lab boot --shell` ran ssh with StrictHostKeyChecking=no and no known
    hosts: whatever answered on the port got root's session. It pins the
    image's key like lab's own SSH, from a known_hosts file of its own."""
    line = known_hosts_line(HOST_KEY, 10022)
    assert line == "[127.0.0.1]:10022 " + " ".join(HOST_KEY.split()[:2]) + "\n"
    kh = tmp_path / "known_hosts"
    argv = shell_argv(key=Path("/c/id_ed25519"), port=10022, known_hosts=kh)
    assert argv[:7] == ["ssh", "-F", "none", "-i", "/c/id_ed25519", "-p", "10022"]
    assert argv[-1] == "root@127.0.0.1"
    opts = dict(o.split("=", 1) for o in argv[argv.index("-o") + 1:-1:2])
    assert opts["StrictHostKeyChecking"] == "yes"
    assert opts["UserKnownHostsFile"] == str(kh)
    assert opts["GlobalKnownHostsFile"] == "/dev/null"


def test_lab_boot_shell_runs_ssh_with_a_private_pin(monkeypatch, tmp_path):
    from lab.cli import core
    from lab.image.build import Image
    seen = {}

    def call(argv):
        kh = Path(dict(o.split("=", 1) for o in argv if "=" in o)["UserKnownHostsFile"])
        seen.update(argv=argv, pin=kh.read_text(), mode=kh.parent.stat().st_mode & 0o777)
        return 7

    monkeypatch.setattr(subprocess, "call", call)
    image = Image("t", "k", tmp_path / "rootfs.ext4", tmp_path / "id_ed25519", HOST_KEY, tmp_path)
    assert core._shell(image, 10123) == 7
    assert seen["pin"] == known_hosts_line(HOST_KEY, 10123) and seen["mode"] == 0o700
    assert "StrictHostKeyChecking=yes" in seen["argv"]
    assert not Path(dict(o.split("=", 1) for o in seen["argv"] if "=" in o)
                    ["UserKnownHostsFile"]).exists()  # removed after the session


def test_the_shell_starts_in_the_shared_directory(tmp_path):
    kh = tmp_path / "known_hosts"
    argv = shell_argv(key=Path("/c/id"), port=1, known_hosts=kh, cwd="/home/dev/my linux")
    assert argv[-3:] == ["-t", "root@127.0.0.1",
                         "cd '/home/dev/my linux' && exec \"${SHELL:-/bin/sh}\" -l"]


def test_openssh_reads_the_pin_as_written(tmp_path):
    """ssh itself finds the pinned key for [127.0.0.1]:PORT and resolves the
    options as meant (ssh -G: config only, no connection)."""
    need("ssh", "openssh-client")
    need("ssh-keygen", "openssh-client")
    kh = tmp_path / "known_hosts"
    kh.write_text(known_hosts_line(HOST_KEY, 10022))
    found = subprocess.run(["ssh-keygen", "-F", "[127.0.0.1]:10022", "-f", str(kh)],
                           capture_output=True, text=True)
    assert found.returncode == 0 and HOST_KEY.split()[1] in found.stdout
    argv = shell_argv(key=tmp_path / "id", port=10022, known_hosts=kh)
    cfg = subprocess.run([argv[0], "-G", *argv[1:]], capture_output=True, text=True, check=True)
    resolved = dict(line.split(" ", 1) for line in cfg.stdout.splitlines() if " " in line)
    assert resolved["stricthostkeychecking"] == "true"
    assert resolved["userknownhostsfile"] == str(kh)
    assert resolved["port"] == "10022" and resolved["user"] == "root"


def test_a_known_hosts_path_ssh_would_split_is_refused(tmp_path):
    with pytest.raises(InfraError, match="whitespace"):
        shell_argv(key=tmp_path / "id", port=1, known_hosts=tmp_path / "a b" / "known_hosts")
    with pytest.raises(InfraError, match="host key"):
        known_hosts_line("garbage", 1)
