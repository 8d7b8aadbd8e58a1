"""The subprocess wrapper: timeouts kill the whole process group and say what
they waited for; spawned children are reaped."""

import os
import time

import pytest

from lab import proc
from lab.errors import CommandTimeout, InfraError


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[1].split()[0] != "Z"


def test_run_captures_and_tees(tmp_path):
    log = tmp_path / "log"
    r = proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10, log=log)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert sorted(log.read_text().split()) == ["err", "out"]


def test_timeout_kills_grandchildren_and_carries_output(tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(CommandTimeout) as e:
        proc.run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo started; wait"],
                 timeout=1)
    assert "started" in e.value.output_tail and "sleep 300" in str(e.value)
    time.sleep(0.2)
    assert not alive(int(pidfile.read_text()))


def test_missing_binary_is_infra_error_naming_package():
    with pytest.raises(InfraError, match="apt-get|install the Debian package 'nope-pkg'"):
        proc.which("definitely-not-a-binary", "nope-pkg")
    with pytest.raises(InfraError, match="cannot run"):
        proc.run(["definitely-not-a-binary"], timeout=5)


def test_check_raises_with_tail():
    with pytest.raises(InfraError, match="boom"):
        proc.run(["sh", "-c", "echo boom; exit 1"], timeout=5, check=True)


def test_spawned_children_are_reaped():
    p = proc.spawn(["sh", "-c", "sleep 300 & sleep 300"])
    time.sleep(0.2)
    proc.reap_all()
    assert p.poll() is not None
    assert not alive(p.pid)
