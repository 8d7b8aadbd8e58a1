"""Job loading: valid files become frozen dataclasses; bad ones are UserErrors
(exit 3) naming the file, the field and what is valid."""

import pytest

from lab.errors import UserError
from lab.job import load_job

GOOD = """
name: t
kernel: distro
image: debian-bookworm
machine: {memory_mb: 1024, nvme_mb: 256}
timeouts: {boot: 60}
workloads:
  - fio: {size_mb: 8, timeout: 30}
  - name: fio
    options: {targets: [ext4, xfs], engines: [io_uring]}
"""


def write(tmp_path, text, name="job.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_job_loads(tmp_path):
    job = load_job(write(tmp_path, GOOD))
    assert job.name == "t" and job.kernel.kind == "distro"
    assert job.machine.memory_mb == 1024 and job.boot_timeout == 60
    assert [w.name for w in job.workloads] == ["fio", "fio"]
    assert job.workloads[0].timeout == 30 and job.workloads[0].options["size_mb"] == 8
    assert job.workloads[1].options["targets"] == ("ext4", "xfs")
    assert job.workloads[1].timeout == job.workload_timeout


def test_shipped_jobs_load():
    from lab.paths import PROJECT_ROOT
    for p in sorted((PROJECT_ROOT / "jobs").glob("*.yaml")):
        load_job(p)


def bad(tmp_path, text, *fragments):
    p = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_job(p)
    msg = str(e.value)
    assert str(p) in msg
    for f in fragments:
        assert f in msg, msg
    assert e.value.exit_code == 3
    return msg


def test_not_yaml(tmp_path):
    bad(tmp_path, "kernel: [distro\nimage: x\n", "not valid YAML", ":")


def test_not_a_mapping(tmp_path):
    bad(tmp_path, "- a\n- b\n", "mapping")


def test_unknown_top_level_key(tmp_path):
    bad(tmp_path, GOOD + "colour: blue\n", "colour", "valid:", "workloads")


def test_unknown_machine_key(tmp_path):
    bad(tmp_path, GOOD.replace("nvme_mb", "nvme_gb"), "machine.nvme_gb", "memory_mb")


def test_negative_timeout(tmp_path):
    bad(tmp_path, GOOD.replace("boot: 60", "boot: -5"), "timeouts.boot", "positive")


def test_negative_workload_timeout(tmp_path):
    bad(tmp_path, GOOD.replace("timeout: 30", "timeout: -1"), "workloads[0].fio.timeout")


def test_missing_image_recipe(tmp_path):
    bad(tmp_path, GOOD.replace("image: debian-bookworm", "image: gentoo"), "field 'image'",
        "gentoo", "debian-bookworm")


def test_missing_kernel_artifact(tmp_path):
    bad(tmp_path, GOOD.replace("kernel: distro", f"kernel: {{artifact: {tmp_path}/nope}}"),
        "kernel.artifact", "no bzImage")


def test_bad_kernel_kind(tmp_path):
    bad(tmp_path, GOOD.replace("kernel: distro", "kernel: {rpm: x}"), "kernel", "distro")


def test_unknown_workload(tmp_path):
    bad(tmp_path, GOOD.replace("- fio: {size_mb", "- fuzz: {size_mb"), "workloads[0].name",
        "unknown workload 'fuzz'", "fio")


def test_unknown_workload_option(tmp_path):
    bad(tmp_path, GOOD.replace("size_mb: 8", "sizee: 8"), "workloads[0].fio.sizee'", "sizee",
        "size_mb")


def test_bad_option_choice(tmp_path):
    bad(tmp_path, GOOD.replace("[ext4, xfs]", "[btrfs]"), "workloads[1].options.targets",
        "btrfs", "xfs")


def test_missing_required(tmp_path):
    bad(tmp_path, "kernel: distro\nimage: debian-bookworm\n", "workloads", "missing")


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such job file"):
        load_job(tmp_path / "nope.yaml")


def test_cli_bad_input_exits_3_without_traceback(tmp_path, capsys):
    from lab.cli import main
    p = write(tmp_path, GOOD + "colour: blue\n")
    assert main(["run", str(p)]) == 3
    err = capsys.readouterr().err
    assert "colour" in err and "Traceback" not in err


def test_stall_threshold_defaults_to_2s_and_an_entry_may_have_its_own(tmp_path):
    """The bound of lab/latency.py travels in the Job and in each entry
    (resolved: the entry's own, else the job's; 0 is off)."""
    job = load_job(write(tmp_path, GOOD))
    assert job.stall_threshold == 2.0
    assert [w.stall_threshold for w in job.workloads] == [2.0, 2.0]
    job = load_job(write(tmp_path, GOOD.replace("timeout: 30}", "timeout: 30, stall_threshold: 0}")
                         .replace("  - name: fio\n", "  - name: fio\n    stall_threshold: 7.5\n")
                         + "stall_threshold: 0.5\n"))
    assert job.stall_threshold == 0.5
    assert [w.stall_threshold for w in job.workloads] == [0.0, 7.5]
    assert "stall_threshold" not in job.workloads[0].options     # not a fio option
    sets = load_job(write(tmp_path, "kernel: distro\nimage: debian-bookworm\n"
                          "stall_threshold: 3\nworkloads: {a: [fio], b: [{fio: {}}]}\n"))
    assert {w.stall_threshold for s in sets.workload_sets for w in s.workloads} == {3.0}
