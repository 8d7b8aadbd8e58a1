"""A matrix across hosts (lab/fanout.py, and lab hosts run's bad input):
shares weighted by what each host can run at once, baselines kept with
their cells, pinned shards that must cover the matrix, kernels built once
and booted from their artifact, the cells a lost host never returned."""

import json

import pytest

from lab.cli import main
from lab.errors import UserError
from lab.fanout import (Host, Probe, assign, build_specs, capacity, groups, load_prebuilt,
                        lost_suites, pinned)
from lab.job import KernelKind, load_job
from lab.matrix import expand

from .conftest import make_artifact

FOUR = """
name: four
image: debian-bookworm
kernel: distro
machine: {cpus: 1, memory_mb: 1024}
workloads:
  a: [{shell: {command: "true", case: a}}]
  b: [{shell: {command: "true", case: b}}]
  c: [{shell: {command: "true", case: c}}]
  d: [{shell: {command: "true", case: d}}]
"""


@pytest.fixture
def four(tmp_path):
    p = tmp_path / "four.yaml"
    p.write_text(FOUR)
    return load_job(p)


def test_capacity_is_guests_at_once_by_cores_and_memory(four):
    assert capacity(Probe(cores=8, memory_mb=64000, qemu="q", accels=("tcg",)), four) == 8
    # memory bounds it: (4096 - 1024 reserved) // (1024 + 256 qemu) = 2
    assert capacity(Probe(cores=8, memory_mb=4096, qemu="q", accels=("tcg",)), four) == 2
    assert capacity(Probe(cores=1, memory_mb=512, qemu="q", accels=("tcg",)), four) == 1


def test_shares_follow_the_weights(four):
    cells = expand(four)
    assert assign(cells, {"big": 3, "small": 1}) == {
        "big": ["default.a", "default.b", "default.c"], "small": ["default.d"]}
    even = assign(cells, {"h1": 2, "h2": 2})
    assert even == {"h1": ["default.a", "default.c"], "h2": ["default.b", "default.d"]}
    three = assign(cells, {"h1": 2, "h2": 2, "h3": 2})
    assert sorted(len(v) for v in three.values()) == [1, 1, 2]
    assert sorted(c for v in three.values() for c in v) == [c.id for c in cells]


def test_a_baseline_goes_with_the_cells_compared_against_it(tmp_path):
    base = make_artifact(tmp_path / "base", "6.1-base")
    series = make_artifact(tmp_path / "series", "6.1-series")
    p = tmp_path / "m.yaml"
    p.write_text(f"""
name: m
image: debian-bookworm
kernels:
  base: {{artifact: {base}}}
  series: {{artifact: {series}, baseline: base}}
  other: {{artifact: {base}}}
workloads:
  quick: [{{shell: {{command: "true", case: q}}}}]
  full: [{{shell: {{command: "true", case: a}}}}]
""")
    cells = expand(load_job(p))
    assert [[c.id for c in g] for g in groups(cells)] == [
        ["base.quick", "series.quick"], ["base.full", "series.full"], ["other.quick"],
        ["other.full"]]
    shares = assign(cells, {"h1": 1, "h2": 1})
    for h, ids in shares.items():
        for i in ids:
            if i.startswith("series."):
                assert "base." + i.split(".", 1)[1] in ids


def hosts(*shards):
    return [Host(f"h{i}", {"lab_shard": s} if s else {}) for i, s in enumerate(shards, 1)]


def test_pinned_shards_cover_the_matrix(four):
    cells = expand(four)
    assert pinned(four, cells, hosts(None, None), "inv") == {}
    assert pinned(four, cells, hosts("1/2", "2/2"), "inv") == {
        "h1": ["default.a", "default.c"], "h2": ["default.b", "default.d"]}


@pytest.mark.parametrize("shards, says", [
    (("1/3", "2/3"), "shard(s) 3/3 (cells default.c) are on no host"),
    (("1/2", "1/2"), "hosts h1 and h2 both have shard 1/2"),
    (("1/2", "2/3"), "host h2 has shard 2/3 but another host's is of 2"),
    (("1/2", None), "lab_shard is set on h1 but not on h2"),
    (("3/2", "1/2"), "host h1: '3/2' is not a shard"),
])
def test_pinned_shards_that_do_not_cover_the_matrix_are_bad_input(four, shards, says):
    with pytest.raises(UserError) as e:
        pinned(four, expand(four), hosts(*shards), "inv.yml")
    assert says in str(e.value) and "inv.yml" in str(e.value)


def test_probe_problems_name_what_to_install():
    assert "apt-get install qemu-system-x86" in Probe(cores=2, memory_mb=4096).problem()
    assert "neither KVM nor TCG" in Probe(2, 4096, "/usr/bin/q", ("xen",)).problem()
    assert Probe(2, 4096, "/usr/bin/q", ("tcg", "kvm")).problem() == ""
    assert Probe.parse('noise\n{"cores": 4, "memory_mb": 9000, "qemu": "/q", '
                       '"accels": ["tcg"]}') == Probe(4, 9000, "/q", ("tcg",))
    assert "printed no probe" in Probe.parse("lab: command not found").problem()


def test_lost_host_cells_are_errors_naming_the_host(four):
    cells = expand(four)[:2]
    h = Host("h3", {"ansible_host": "10.0.0.3"})
    suites = lost_suites(four, cells, {"default.a#1"}, h, "lost mid-run, unreachable: refused")
    (s,) = suites
    assert s.name == "default.b#1" and s.properties["host"] == "h3"
    (case,) = s.cases
    assert case.status.value == "error" and case.kind == "infra"
    assert case.message == "host h3 (10.0.0.3): lost mid-run, unreachable: refused"


def test_prebuilt_kernels_replace_the_build_of_their_cells(tmp_path, tree):
    art = make_artifact(tmp_path / "kernels" / "k1", "6.1-lab")
    p = tmp_path / "b.yaml"
    p.write_text(f"""
name: b
image: debian-bookworm
kernels:
  series: {{build: {{tree: {tree}}}}}
variants:
  debug: [lab]
  plain: [lab, debug]
workloads: [{{shell: {{command: "true", case: q}}}}]
""")
    job = load_job(p)
    assert set(build_specs(expand(job))) == {"series/debug", "series/plain"}
    m = tmp_path / "runs" / "r1" / "prebuilt.json"
    m.parent.mkdir(parents=True)
    m.write_text(json.dumps({"series/debug": "../../kernels/k1"}))
    from dataclasses import replace
    cells = {c.id: c for c in expand(replace(job, prebuilt=load_prebuilt(m)))}
    assert cells["series.debug"].kernel_spec.kind is KernelKind.ARTIFACT
    assert cells["series.debug"].kernel_spec.path == art.resolve()
    assert cells["series.plain"].kernel_spec.kind is KernelKind.BUILD
    m.write_text('["not a map"]')
    with pytest.raises(UserError, match="KERNEL/VARIANT"):
        load_prebuilt(m)


def test_lab_hosts_run_bad_input(tmp_path, capsys):
    job = tmp_path / "four.yaml"
    job.write_text(FOUR)
    empty = tmp_path / "empty.yml"
    empty.write_text("all:\n  hosts: {}\n")
    assert main(["hosts", "run", str(job), "-i", str(empty)]) == 3
    assert "the inventory has no hosts" in capsys.readouterr().err
    assert main(["hosts", "run", str(job), "-i", str(tmp_path / "nope.yml")]) == 3
    assert "no such inventory file" in capsys.readouterr().err
    partial = tmp_path / "partial.yml"
    partial.write_text("all:\n  hosts:\n    h1: {lab_shard: 1/3}\n    h2: {lab_shard: 2/3}\n")
    assert main(["hosts", "run", str(job), "-i", str(partial)]) == 3
    err = capsys.readouterr().err
    assert "shard(s) 3/3 (cells default.c) are on no host" in err and "partial.yml" in err


def test_merged_junit_names_the_host_and_drops_empty_suites():
    import xml.etree.ElementTree as ET
    from lab.hostrun import _tag_junit
    from lab.junit import render
    from lab.results import CaseResult, Status, SuiteResult
    text = render([SuiteResult("a#1", {"cell": "a"}, [CaseResult("boot", Status.PASSED)]),
                   SuiteResult("b#1", {"cell": "b"}, [])])
    root = ET.fromstring(_tag_junit(text, "h2"))
    assert [s.get("name") for s in root] == ["a#1"]
    assert {p.get("name"): p.get("value") for p in root.iter("property")}["host"] == "h2"


def test_a_packed_artifact_leaves_the_links_into_this_hosts_build_dir(tmp_path):
    import tarfile
    from lab.hostrun import _portable
    d = make_artifact(tmp_path / "k", "6.1-x")
    mods = d / "modules" / "lib" / "modules" / "6.1-x"
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("")
    (mods / "build").symlink_to("/root/.cache/lab/kbuild/x")
    (mods / "source").symlink_to("/root/.cache/lab/src/x")
    with tarfile.open(tmp_path / "k.tar", "w") as t:
        t.add(d, arcname="k", filter=_portable)
    with tarfile.open(tmp_path / "k.tar") as t:
        names = t.getnames()
    assert "k/modules/lib/modules/6.1-x/modules.dep" in names and "k/bzImage" in names
    assert not any(n.endswith(("/build", "/source")) for n in names)


def test_lab_finds_its_playbooks_and_says_when_they_are_missing(tmp_path, monkeypatch):
    """The playbooks are lab's data (lab/data/ansible -> ansible/): found from
    any directory; an install without them is an infrastructure error naming
    the file, not a host that 'reported nothing'."""
    from lab import hostrun
    from lab.errors import InfraError
    for name in ("hosts-probe.yml", "hosts-run.yml", "callback_plugins/lab_events.py"):
        assert (hostrun.ANSIBLE_DIR / name).is_file()
    assert not hostrun.ANSIBLE_DIR.is_symlink() and hostrun.ANSIBLE_DIR.name == "ansible"
    monkeypatch.setattr(hostrun, "ANSIBLE_DIR", tmp_path / "none")
    with pytest.raises(InfraError, match=r"playbook .*none/hosts-probe.yml is missing"):
        hostrun.playbook("hosts-probe.yml", "inv", ["h1"], tmp_path, "probe")


@pytest.mark.parametrize("has_filter", [True, False])
def test_a_hosts_results_unpack_inside_their_directory_only(tmp_path, monkeypatch, has_filter):
    """With tarfile's data filter (Python >= 3.11.4) and without it (Debian
    bookworm's 3.11.2, where lab's venv lives): the results unpack; a member
    or link reaching outside is refused."""
    import io
    import tarfile
    from lab.hostrun import extract_results
    if not has_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)

    def archive(*members: tuple[str, str | None]):
        p = tmp_path / f"a{len(list(tmp_path.glob('a*.tar')))}.tar"
        with tarfile.open(p, "w") as t:
            for name, link in members:
                info = tarfile.TarInfo(name)
                if link is None:
                    data = b"ok\n"
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
                else:
                    info.type, info.linkname = tarfile.SYMTYPE, link
                    t.addfile(info)
        return p

    good = archive(("results/summary.json", None), ("results/latest", "summary.json"))
    dest = tmp_path / "h1"
    dest.mkdir()
    with tarfile.open(good) as t:
        extract_results(t, dest)
    assert (dest / "results" / "summary.json").read_text() == "ok\n"
    assert (dest / "results" / "latest").is_symlink()
    for bad in (archive(("../evil", None)), archive(("results/x", "../../../etc/passwd")),
                archive(("results/y", "/etc/passwd"))):
        d = tmp_path / f"d-{bad.stem}"
        d.mkdir()
        with tarfile.open(bad) as t, pytest.raises(tarfile.TarError):
            extract_results(t, d)
    assert not (tmp_path / "evil").exists()
