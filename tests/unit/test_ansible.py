"""lab's playbooks parse with ansible-core alone (no collection beyond
ansible.builtin, as ansible/requirements.yml declares)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
PLAYBOOKS = sorted(p.name for p in ANSIBLE.glob("*.yml") if p.name != "requirements.yml")


def test_requirements_declare_the_collections_the_playbooks_use():
    declared = {c["name"] if isinstance(c, dict) else c
                for c in yaml.safe_load((ANSIBLE / "requirements.yml").read_text())["collections"]}
    used = set()
    for name in PLAYBOOKS:
        text = (ANSIBLE / name).read_text()
        used |= {m for m in __import__("re").findall(r"\b([a-z_]+\.[a-z_]+)\.[a-z_]+:", text)
                 if m != "ansible.builtin"}
    assert used <= declared, f"collections used but not declared: {used - declared}"


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_playbook_passes_syntax_check(name):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               ANSIBLE_NOCOLOR="1")
    r = subprocess.run(["ansible-playbook", "--syntax-check", "-i", "localhost,", name],
                       cwd=ANSIBLE, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
