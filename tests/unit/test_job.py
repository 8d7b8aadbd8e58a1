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


FULL = """\
name: full
description: every field
kernels:
  base: {distro: 6.1.0-13-amd64}
  new: {distro: 6.1.0-14-amd64, baseline: base}
image: recipe.yml
machine: {memory_mb: 512, cpus: 1, nvme_mb: 0, pmem_mb: 16, cmdline: quiet, accel: tcg}
timeouts: {boot: 11, workload: 12, recovery: 13}
hung_task_timeout: 0
stall_threshold: 4
variants:
  plain:
  frag: {fragments: [lab], cmdline: "x=1"}
workloads:
  quick: [{name: fio, timeout: 5, options: {size_mb: 8}}, {fio: }]
matrix: {kernels: [new], workloads: [quick],
         include: [{kernel: base, variant: plain, workloads: quick}]}
repeat: 100
"""


def full_job(tmp_path):
    from lab.paths import PROJECT_ROOT
    (tmp_path / "recipe.yml").write_text(
        (PROJECT_ROOT / "images" / "debian-bookworm.yaml").read_text())
    p = write(tmp_path, FULL)
    return p, load_job(p)


def test_every_field_of_a_job_file_reaches_the_job(tmp_path):
    from lab.job import (Job, KernelKind, KernelSpec, MachineOpts, MatrixSpec, NamedKernel,
                         Variant)
    p, job = full_job(tmp_path)
    quick = job.workload_sets[0]
    assert [(w.name, w.timeout, w.stall_threshold, w.options["size_mb"])
            for w in quick.workloads] == [("fio", 5.0, 4.0, 8), ("fio", 12.0, 4.0, 64)]
    assert job == Job(
        name="full", path=p, description="every field",
        kernels=(NamedKernel("base", KernelSpec(KernelKind.DISTRO, release="6.1.0-13-amd64")),
                 NamedKernel("new", KernelSpec(KernelKind.DISTRO, release="6.1.0-14-amd64"),
                             baseline="base")),
        image=str(tmp_path / "recipe.yml"),       # a recipe path is the job file's neighbour
        machine=MachineOpts(512, 1, 0, 16, "quiet", "tcg"),
        boot_timeout=11.0, workload_timeout=12.0, recovery_timeout=13.0,
        hung_task_timeout=0, stall_threshold=4.0, workload_sets=(quick,),
        variants=(Variant("plain"), Variant("frag", ("lab",), "x=1")),
        matrix=MatrixSpec(kernels=("new",), workloads=("quick",), include=(
            (("kernel", "base"), ("variant", "plain"), ("workloads", "quick")),)),
        repeat=100, declared=frozenset({"kernel", "variant", "workloads"}))
    assert job.kernel_named("new").baseline == "base"
    assert job.kernel_named("base").baseline is None


def test_what_a_job_file_leaves_out_takes_its_default(tmp_path):
    from lab.job import KernelKind, KernelSpec, MachineOpts, MatrixSpec, NamedKernel, Variant
    p = write(tmp_path, "kernel: distro\nimage: debian-bookworm\nworkloads: [fio]\n",
              name="mini.yaml")
    job = load_job(p)
    assert (job.name, job.path, job.description, job.image) == ("mini", p, "", "debian-bookworm")
    assert job.kernels == (NamedKernel("default", KernelSpec(KernelKind.DISTRO)),)
    assert (job.boot_timeout, job.workload_timeout, job.recovery_timeout) == (180, 600, 30)
    assert (job.hung_task_timeout, job.stall_threshold, job.repeat) == (20, 2.0, 1)
    assert (job.machine, job.variants, job.matrix) == (MachineOpts(), (Variant("default"),),
                                                       MatrixSpec())
    assert job.declared == {"kernel"} and job.workloads[0].timeout == 600


def test_with_kernel_is_the_job_on_that_kernel_alone(tmp_path):
    """lab test-patch: the job's workloads on the kernel it built, under the
    job's first kernel's name unless given one; everything else kept."""
    from lab.job import KernelKind, KernelSpec, MatrixSpec, NamedKernel
    _, job = full_job(tmp_path)
    k = KernelSpec(KernelKind.ARTIFACT, path=tmp_path)
    one = job.with_kernel(k)
    assert one.kernels == (NamedKernel("base", k),)
    assert one.matrix == MatrixSpec(workloads=("quick",))
    assert job.with_kernel(k, "patched").kernels == (NamedKernel("patched", k),)
    assert (one.image, one.machine, one.workload_sets, one.repeat) == (
        job.image, job.machine, job.workload_sets, job.repeat)


def test_an_artifact_kernel_is_a_directory_beside_the_job_file(tmp_path):
    from lab.job import KernelKind, KernelSpec
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "bzImage").write_bytes(b"")
    job = load_job(write(tmp_path, GOOD.replace("kernel: distro", "kernel: {artifact: art}")))
    assert job.kernel == KernelSpec(KernelKind.ARTIFACT, path=tmp_path / "art")
    p = write(tmp_path, GOOD.replace("kernel: distro", "kernel: {artifact: nope}"))
    with pytest.raises(UserError) as e:
        load_job(p)
    assert (e.value.file, e.value.field, e.value.bare) == (
        str(p), "kernel.artifact", f"{tmp_path}/nope is not a kernel artifact directory (no "
        "bzImage in it); valid: a directory printed by `lab build`")


def test_an_image_recipe_path_is_looked_up_beside_the_job_file(tmp_path):
    p = write(tmp_path, GOOD.replace("image: debian-bookworm", "image: nope.yaml"))
    with pytest.raises(UserError) as e:
        load_job(p)
    assert (e.value.file, e.value.field) == (str(p), "image")
    assert e.value.bare.startswith(f"no image recipe '{tmp_path}/nope.yaml'; valid: ")


def test_a_fragment_path_of_a_variant_is_the_job_files_neighbour(tmp_path):
    (tmp_path / "mine.config").write_text("CONFIG_X=y\n")
    job = load_job(write(tmp_path, GOOD + "variants: {v: {fragments: [lab, mine.config]}}\n"))
    assert job.variants[0].fragments == ("lab", str(tmp_path / "mine.config"))


def test_the_jobs_stall_threshold_reaches_a_list_of_workloads(tmp_path):
    job = load_job(write(tmp_path, GOOD + "stall_threshold: 3\n"))
    assert [w.stall_threshold for w in job.workloads] == [3.0, 3.0]
