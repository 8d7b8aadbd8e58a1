"""Reproducers of issue 10 (items 2, 3 and 6): each bad job file is a
UserError (exit 3) naming the file and the field, never a traceback, a hang
or a write outside the run directory."""

import time

import pytest

from lab import validate
from lab.errors import UserError
from lab.job import load_job

HEAD = "name: t\nkernel: distro\nimage: debian-bookworm\n"
WL = "workloads: [{fio: {}}]\n"


def rejected(tmp_path, text, field, *fragments):
    p = tmp_path / "job.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as e:
        load_job(p)
    assert e.value.file == str(p) and e.value.exit_code == 3
    assert e.value.field == field, str(e.value)
    for f in fragments:
        assert f in str(e.value), str(e.value)
    return e.value


@pytest.mark.parametrize("text, field", [
    ("machine: {memory_mb: 10000000000}\n", "machine.memory_mb"),    # 10 TB
    ("machine: {cpus: 100000}\n", "machine.cpus"),
    ("machine: {memory_mb: 32}\n", "machine.memory_mb"),
    ("machine: {memory_mb: 0}\n", "machine.memory_mb"),     # a guest needs 64 MiB at least
    ("machine: {cpus: 0}\n", "machine.cpus"),               # ... and one cpu
    ("machine: {cpus: -2}\n", "machine.cpus"),
    ("machine: {nvme_mb: -1}\n", "machine.nvme_mb"),
    ("machine: {pmem_mb: 2000000000}\n", "machine.pmem_mb"),
    ("machine: {cpus: 1.5}\n", "machine.cpus"),
    ("machine: 0\n", "machine"),
])
def test_machine_sizes_are_bounded_by_the_host(tmp_path, text, field):
    rejected(tmp_path, HEAD + WL + text, field)


@pytest.mark.parametrize("value", [".inf", ".nan", "-1", "0", "1e400", "10" * 200, "'60'"])
def test_timeouts_are_positive_and_finite(tmp_path, value):
    rejected(tmp_path, HEAD + WL + f"timeouts: {{boot: {value}}}\n", "timeouts.boot")
    rejected(tmp_path, HEAD + f"workloads: [{{fio: {{timeout: {value}}}}}]\n",
             "workloads[0].fio.timeout")


def test_hung_task_timeout_is_bounded(tmp_path):
    rejected(tmp_path, HEAD + WL + "hung_task_timeout: 99999999\n", "hung_task_timeout")


@pytest.mark.parametrize("value", ["-1", "-20", "1.5", "'20'"])
def test_hung_task_timeout_is_a_whole_number_of_seconds_not_negative(tmp_path, value):
    """The kernel's detector takes 0 (off) or a number of seconds; a negative
    one is a mistake, not 'off'."""
    rejected(tmp_path, HEAD + WL + f"hung_task_timeout: {value}\n", "hung_task_timeout")


def test_hung_task_timeout_zero_turns_the_detector_off(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text(HEAD + WL + "hung_task_timeout: 0\n")
    assert load_job(p).hung_task_timeout == 0


@pytest.mark.parametrize("name", ["a/b", "../../../x", ".hidden", "x" * 300, ""])
def test_shell_case_is_a_safe_file_name(tmp_path, name):
    rejected(tmp_path, HEAD + f"workloads: [{{shell: {{command: 'true', case: '{name}'}}}}]\n",
             "workloads[0].shell.case", "valid:")


@pytest.mark.parametrize("name", ["../x", "x" * 300])
def test_job_name_is_a_safe_path_component(tmp_path, name):
    rejected(tmp_path, HEAD.replace("name: t", f"name: '{name}'") + WL, "name")


@pytest.mark.parametrize("opts, field", [
    ("{fio: {targets: []}}", "workloads[0].fio.targets"),
    ("{fio: {engines: []}}", "workloads[0].fio.engines"),
    ("{fio: {targets: [nvme, nvme]}}", "workloads[0].fio.targets[1]"),
    ("{gup_test: {variants: []}}", "workloads[0].gup_test.variants"),
    ("{gup_test: {backings: []}}", "workloads[0].gup_test.backings"),
    ("{fio: {bs: '4k;x'}}", "workloads[0].fio.bs"),
    ("{fio: {bs: 4k -x}}", "workloads[0].fio.bs"),
    ("{dax: {stuck_after: .inf}}", "workloads[0].dax.stuck_after"),
    ("{rdma: {netdev: 'eth0; reboot'}}", "workloads[0].rdma.netdev"),
    ("{fio: abc}", "workloads[0].fio"),
])
def test_workload_options(tmp_path, opts, field):
    e = rejected(tmp_path, HEAD + f"workloads: [{opts}]\n", field)
    if field.endswith(".bs"):
        assert "[0-9]+[kKmM]?" in str(e)


def test_fio_bs_accepts_sizes(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text(HEAD + "workloads: [{fio: {bs: 64k}}, {fio: {bs: '512'}}]\n")
    assert [w.options["bs"] for w in load_job(p).workloads] == ["64k", "512"]


BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
               for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("where", ["description: *i\n", "workloads: [{shell: {command: *i}}]\n"])
def test_alias_bomb_is_refused_at_once(tmp_path, where):
    text = HEAD + "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + BOMB + where
    t = time.monotonic()
    p = tmp_path / "job.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match="expands") as e:
        load_job(p)
    assert time.monotonic() - t < 1 and e.value.file == str(p)


@pytest.mark.parametrize("text, what", [
    ("a: &a [*a]\n", "refers to a node that contains it"),
    ("[" * 500 + "]" * 500 + "\n", "nested deeper"),
    ("x: 1" + "0" * 5000 + "\n", "cannot be read"),
    ("x: 2001-13-45\n", "cannot be read"),
])
def test_yaml_that_cannot_be_built(tmp_path, text, what):
    p = tmp_path / "job.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match=what):
        load_job(p)


@pytest.mark.parametrize("text, field", [
    ('image: "a\\0b"\n', "image"),
    ('kernel: {build: {tree: "~nosuchuser/linux"}}\n', "kernel.build.tree"),
    ('kernel: {build: {linux_source: true, series: [3]}}\n', "kernel.build.series"),
    ("'': 1\n", "''"),
])
def test_found_by_the_fuzzer(tmp_path, text, field):
    head = "".join(line for line in HEAD.splitlines(keepends=True)
                   if not text.startswith(line.split(":")[0]))
    rejected(tmp_path, head + WL + text, field)


def test_control_characters(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text(HEAD + WL + "description: \x1f\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_job(p)


def test_file_size_is_capped(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text(HEAD + WL + "description: '" + "x" * (2 << 20) + "'\n")
    with pytest.raises(UserError, match="larger than"):
        load_job(p)


def test_machine_bounds_come_from_the_host(monkeypatch):
    monkeypatch.setattr(validate, "host_cpus", lambda: 4)
    monkeypatch.setattr(validate, "host_memory_mb", lambda: 8192)
    assert validate.machine_number("cpus", 4, field="cpus") == 4
    with pytest.raises(UserError, match=r"1\.\.4"):
        validate.machine_number("cpus", 5, field="cpus")
    with pytest.raises(UserError, match=r"64\.\.8192"):
        validate.machine_number("memory_mb", 8193, field="--memory")


# --- the command line: the same bounds, and -o checked before anything runs ---

@pytest.mark.parametrize("args, field", [
    (["--memory", "-1"], "--memory"), (["--cpus", "0"], "--cpus"),
    (["--timeout", "-1"], "--timeout"), (["--timeout", "inf"], "--timeout"),
    (["--pmem", "-5"], "--pmem"), (["--nvme", "-1"], "--nvme"),
    (["-o", "/etc/hostname"], "-o"),
])
def test_lab_boot_numbers_and_output(capsys, args, field):
    from lab.cli import main
    assert main(["boot", "--dry-run", *args]) == 3
    err = capsys.readouterr().err
    assert f"field '{field}'" in err and ("must be" in err or "valid:" in err), err


def test_output_that_is_a_file_or_cannot_be_made(tmp_path):
    from lab.store import prepare_output
    f = tmp_path / "file"
    f.write_text("")
    for bad in (f, f / "sub"):
        with pytest.raises(UserError, match="valid: a new or existing directory"):
            prepare_output(bad)
    assert prepare_output(tmp_path / "a" / "b").is_dir()


def test_output_on_a_read_only_filesystem_is_the_hosts_fault(tmp_path, monkeypatch):
    import errno
    from pathlib import Path
    from lab.errors import InfraError
    from lab.store import RunStore

    def rofs(self, *a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(Path, "mkdir", rofs)
    with pytest.raises(InfraError, match="Read-only file system") as e:
        RunStore(tmp_path / "run", {})
    assert e.value.exit_code == 2


def test_an_integer_too_large_for_a_float_is_bad_input_not_a_crash(tmp_path):
    """Found by bench/fuzz_jobs.py: a 4001-digit size_mb overflowed in float()."""
    from lab.errors import UserError
    from lab.job import load_job
    p = tmp_path / "big.yaml"
    p.write_text("kernel: distro\nimage: debian-bookworm\nworkloads:\n- fio:\n"
                 "    size_mb: 1" + "0" * 4000 + "\n")
    with pytest.raises(UserError, match=r"workloads\[0\]\.fio\.size_mb"):
        load_job(p)


def test_a_float_option_given_a_huge_integer_is_bad_input(tmp_path):
    from lab.errors import UserError
    from lab.job import load_job
    p = tmp_path / "big.yaml"
    p.write_text("kernel: distro\nimage: debian-bookworm\nworkloads:\n- dax:\n"
                 "    stuck_after: 1" + "0" * 400 + "\n")
    with pytest.raises(UserError, match=r"workloads\[0\]\.dax\.stuck_after"):
        load_job(p)


@pytest.mark.parametrize("value", [".inf", ".nan", "-1", "1e400", "'2'", "true", "[2]",
                                   "10" * 200])
def test_stall_threshold_is_a_finite_number_of_seconds(tmp_path, value):
    """Top level and per workload (long form and shorthand): the field is
    named, with the line it is on, and what is valid."""
    e = rejected(tmp_path, HEAD + WL + f"stall_threshold: {value}\n", "stall_threshold",
                 "seconds")
    assert e.line == 5
    rejected(tmp_path, HEAD + f"workloads: [{{fio: {{stall_threshold: {value}}}}}]\n",
             "workloads[0].fio.stall_threshold", "seconds")
    rejected(tmp_path, HEAD + f"workloads:\n  - name: fio\n    stall_threshold: {value}\n",
             "workloads[0].stall_threshold", "seconds")


def test_a_bad_stall_threshold_exits_3_naming_the_field(tmp_path, capsys):
    from lab.cli import main
    p = tmp_path / "job.yaml"
    p.write_text(HEAD + WL + "stall_threshold: -2\n")
    assert main(["run", str(p)]) == 3
    err = capsys.readouterr().err
    assert "stall_threshold" in err and "0..604800" in err and "Traceback" not in err


# --- the file and its YAML: refused at the limits, word for word, with the line ---

def refused_file(p, bare, line=None):
    with pytest.raises(UserError) as e:
        load_job(p)
    assert (e.value.file, e.value.field, e.value.bare, e.value.line) == (str(p), None, bare,
                                                                         line)


def test_a_job_file_of_1_mib_loads_and_one_byte_more_is_refused(tmp_path):
    from lab.job import MAX_FILE_BYTES
    p = tmp_path / "job.yaml"
    head = HEAD + WL + "description: '"
    p.write_text(head + "x" * (MAX_FILE_BYTES - len(head) - 2) + "'\n")
    assert p.stat().st_size == MAX_FILE_BYTES and len(load_job(p).description) > 1000
    p.write_text(head + "x" * (MAX_FILE_BYTES - len(head) - 1) + "'\n")
    refused_file(p, "larger than 1048576 bytes; valid: a job file of at most 1 MiB")


def test_a_job_path_that_never_ends_is_read_up_to_the_cap_only():
    """/dev/zero (or a FIFO a program keeps writing): refused after 1 MiB,
    not read until memory runs out."""
    refused_file("/dev/zero", "larger than 1048576 bytes; valid: a job file of at most 1 MiB")


def test_a_job_file_that_is_not_text_or_not_a_file(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_bytes(HEAD.encode() + b"description: \xff\n")
    with pytest.raises(UserError) as e:
        load_job(p)
    assert e.value.file == str(p) and e.value.bare.startswith(
        "cannot read job file: 'utf-8' codec can't decode byte 0xff in position 59")
    refused_file(tmp_path, f"cannot read job file: [Errno 21] Is a directory: '{tmp_path}'")


def test_no_such_job_file_names_the_jobs_there_are(tmp_path, monkeypatch):
    from lab.paths import JOBS
    p = tmp_path / "nope.yaml"
    refused_file(p, "no such job file; valid: a path to one, or the name of a job in "
                    f"{JOBS.where()}: {', '.join(JOBS.names())}")
    monkeypatch.setattr(type(JOBS), "names", lambda self: [])
    refused_file(p, "no such job file; valid: a path to one, or the name of a job in "
                    f"{JOBS.where()}: (none)")


def test_a_value_yaml_cannot_build_is_named_in_the_message(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("x: 2001-13-45\n")
    refused_file(p, "not valid YAML: a value cannot be read ('month must be in 1..12')")
    p.write_text("x: 1" + "0" * 5000 + "\n")          # Python's message, cut to 120
    with pytest.raises(UserError) as e:
        load_job(p)
    inner = e.value.bare.removeprefix("not valid YAML: a value cannot be read (")[:-1]
    assert e.value.file == str(p) and len(inner) == 120 and inner.startswith("'Exceeds the")
    assert inner.endswith("...")


def test_a_mapping_key_that_is_a_list_is_refused_on_its_line(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("a: 1\n? [x]\n: 1\n")
    refused_file(p, "not valid YAML: a mapping key must be a string or a number", 2)


def test_an_alias_inside_its_own_anchor_is_refused_on_its_line(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("a: 1\nb: &b [1, *b]\n")
    refused_file(p, "not valid YAML: alias *b refers to a node that contains it", 2)


def test_nesting_of_64_levels_loads_and_65_is_refused_on_its_line(tmp_path):
    """Counted along each branch: siblings before the deep branch (closed
    nodes, scalars) do not change its depth."""
    from lab.job import MAX_DEPTH
    p = tmp_path / "job.yaml"

    def nested(levels):     # a list holding 0, then lists nested to `levels` in all
        return "[[0, " + "[" * (levels - 2) + "]" * (levels - 2) + "]]"
    p.write_text("a: [[1], 2]\nb: " + nested(MAX_DEPTH - 1) + "\n")   # the mapping is one
    with pytest.raises(UserError) as e:
        load_job(p)
    assert e.value.field is not None            # loaded: refused later, for its content
    p.write_text("a: [[1], 2]\nb: " + nested(MAX_DEPTH) + "\n")
    refused_file(p, "not valid YAML: nested deeper than 64 levels", 2)


def test_a_document_expanding_to_the_cap_loads_and_one_more_is_refused(tmp_path):
    """MAX_EXPANDED counts every node (1 each) and every scalar's characters,
    aliases expanded."""
    from lab.job import MAX_EXPANDED
    p = tmp_path / "job.yaml"
    # {a: S, b: [*a x 1022], c: T}: the mapping 1, keys 2 each, S and each
    # alias 1 + 2047, the list 1, T 1 + len(T)
    fixed = 1 + 3 * 2 + 1023 * 2048 + 1 + 1

    def doc(size):
        return ("a: &a " + "s" * 2047 + "\nb: [" + ", ".join(["*a"] * 1022) + "]\n"
                "c: " + "t" * (size - fixed) + "\n")
    p.write_text(doc(MAX_EXPANDED))
    with pytest.raises(UserError) as e:
        load_job(p)
    assert e.value.field is not None            # loaded: refused later, for its content
    p.write_text(doc(MAX_EXPANDED + 1))
    refused_file(p, "not valid YAML: the document expands (aliases included) to more than "
                    "2097152 nodes and characters", 1)
