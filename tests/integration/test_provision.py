"""ansible/lab-host.yml provisions a host for real: this machine, through
ansible's local connection, into a private prefix (venv, `lab` command,
cache and ccache directories under tmp_path; the Debian packages are the
machine's own, already installed by ansible/bootstrap.sh), twice: the
second run changes nothing, and both end with a `lab doctor` that passes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def playbook(tmp_path: Path, extra: dict) -> subprocess.CompletedProcess:
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
               ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local",
                           "-e", f"@{vars_file}", str(REPO / "ansible" / "lab-host.yml")],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)


def recap(out: str) -> dict[str, int]:
    m = re.search(r"localhost\s*:\s*(.*)", out.split("PLAY RECAP")[-1])
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def test_lab_host_playbook_provisions_then_changes_nothing(tmp_path):
    p = tmp_path / "p"
    extra = {"lab_prefix": str(p / "opt"), "lab_bin": str(p / "bin" / "lab"),
             "lab_cache_dir": str(p / "cache"), "lab_ccache_dir": str(p / "ccache"),
             "lab_apt_cache_valid_time": 10 ** 8}   # the machine's apt index, as it is
    (p / "bin").mkdir(parents=True)
    first = playbook(tmp_path, extra)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] > 0
    assert "ok  qemu-system-x86_64" in first.stdout and "accelerator" in first.stdout
    second = playbook(tmp_path, extra)
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-2000:]
    counts = recap(second.stdout)
    assert counts["changed"] == 0 and counts["failed"] == 0, second.stdout[-6000:]
    # the lab command runs the provisioned venv with the host's cache location
    r = subprocess.run([str(p / "bin" / "lab"), "doctor"], capture_output=True, text=True,
                       timeout=300, env={k: v for k, v in os.environ.items()
                                         if k not in ("LAB_CACHE_DIR", "CCACHE_DIR")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"in {p / 'cache'}" in r.stdout
    assert (p / "ccache" / "ccache.conf").read_text() == "max_size = 20G\n"
    assert (p / "opt" / "src" / "lab" / "cli" / "__init__.py").exists()
