"""Matrix expansion: cells, stable ids made of names, baselines, include /
exclude, --cell and --shard selection, and the bad input around them."""

import pytest

from lab.errors import UserError
from lab.job import load_job
from lab.matrix import expand, parse_shard, select, units

from .conftest import make_artifact

MATRIX = """
name: m
image: debian-bookworm
kernels:
  base: {{artifact: {base}}}
  series: {{artifact: {series}, baseline: base}}
  other: {{artifact: {base}}}
variants:
  debug: [lab, debug]
  kasan: {{fragments: [lab, debug, kasan], cmdline: "kasan.fault=panic"}}
workloads:
  quick: [{{shell: {{command: "true", case: q}}}}]
  full: [{{shell: {{command: "true", case: a}}}}, {{shell: {{command: "true", case: b}}}}]
{extra}
"""


def job(tmp_path, extra="", text=MATRIX):
    base = make_artifact(tmp_path / "base", "6.1-base")
    series = make_artifact(tmp_path / "series", "6.1-series")
    p = tmp_path / "m.yaml"
    p.write_text(text.format(base=base, series=series, extra=extra))
    return load_job(p)


def ids(j):
    return [c.id for c in expand(j)]


def test_full_product_in_file_order(tmp_path):
    assert ids(job(tmp_path)) == [
        f"{k}.{v}.{w}" for k in ("base", "series", "other") for v in ("debug", "kasan")
        for w in ("quick", "full")]


def test_single_kernel_job_is_one_cell_named_by_its_kernel(tmp_path):
    (tmp_path / "s.yaml").write_text("kernel: distro\nimage: debian-bookworm\n"
                                     "workloads: [{fio: {}}]\nrepeat: 3\n")
    j = load_job(tmp_path / "s.yaml")
    (cell,) = expand(j)
    assert cell.id == "default" and cell.baseline is None
    assert [u.id for u in units(j, [cell])] == ["default#1", "default#2", "default#3"]


def test_baseline_is_the_same_variant_and_workloads_of_the_base_kernel(tmp_path):
    cells = {c.id: c for c in expand(job(tmp_path))}
    assert cells["series.kasan.full"].baseline == "base.kasan.full"
    assert cells["base.kasan.full"].reference and not cells["series.kasan.full"].reference
    assert cells["other.debug.quick"].baseline is None
    assert not cells["other.debug.quick"].reference


def test_baseline_excluded_from_the_run_is_no_baseline(tmp_path):
    j = job(tmp_path, "matrix: {exclude: [{kernel: base, variant: kasan}]}")
    cells = {c.id: c for c in expand(j)}
    assert "base.kasan.full" not in cells
    assert cells["series.kasan.full"].baseline is None
    assert cells["series.debug.full"].baseline == "base.debug.full"


def test_matrix_chooses_then_excludes_then_includes(tmp_path):
    j = job(tmp_path, "matrix:\n  kernels: [series]\n  variants: [debug]\n"
                      "  exclude: [{workloads: full}]\n"
                      "  include: [{kernel: other, variant: kasan, workloads: full}]\n")
    assert ids(j) == ["series.debug.quick", "other.kasan.full"]


def test_ids_survive_edits_elsewhere_in_the_file(tmp_path):
    before = set(ids(job(tmp_path)))
    edited = MATRIX.replace("  other: {{artifact: {base}}}\n", "").replace(
        "variants:\n", "variants:\n  extra: [lab]\n")
    after = set(ids(job(tmp_path, text=edited)))
    assert before - after == {i for i in before if i.startswith("other.")}
    assert {i for i in after if not i.endswith(("extra.quick", "extra.full"))} <= before


def test_variant_fragments_apply_to_builds_only(tmp_path):
    text = MATRIX.replace("other: {{artifact: {base}}}",
                          "other: {{build: {{linux_source: true, fragments: [lab]}}}}")
    cells = {c.id: c for c in expand(job(tmp_path, text=text))}
    assert cells["other.kasan.quick"].kernel_spec.build.fragments == ("lab", "debug", "kasan")
    assert cells["other.debug.quick"].kernel_spec.build.fragments == ("lab", "debug")
    assert cells["base.kasan.quick"].kernel_spec.path.name == "base"
    assert cells["base.kasan.quick"].variant.cmdline == "kasan.fault=panic"


def test_cell_and_shard_selection(tmp_path):
    j = job(tmp_path)
    cells = expand(j)
    assert [c.id for c in select(j, cells, ["base.kasan.full", "other.debug.quick"])] == [
        "base.kasan.full", "other.debug.quick"]
    shards = [select(j, cells, None, (i, 5)) for i in range(1, 6)]
    seen = [c.id for s in shards for c in s]
    assert sorted(seen) == sorted(c.id for c in cells) and len(seen) == len(set(seen))
    assert all(abs(len(s) - len(cells) / 5) < 1 for s in shards)


@pytest.mark.parametrize("text", ["3/2", "0/4", "1/0", "a/b", "2", "-1/3"])
def test_bad_shards(text):
    with pytest.raises(UserError, match="I/N"):
        parse_shard(text)


def test_unknown_cell_names_the_valid_ones(tmp_path):
    j = job(tmp_path)
    with pytest.raises(UserError, match="base.debug.quick") as e:
        select(j, expand(j), ["base.nosuch.quick"])
    assert e.value.exit_code == 3 and str(j.path) in str(e.value)


def bad(tmp_path, extra="", text=MATRIX, *fragments):
    with pytest.raises(UserError) as e:
        job(tmp_path, extra, text)
    msg = str(e.value)
    assert str(tmp_path / "m.yaml") in msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_matrix_that_expands_to_nothing(tmp_path):
    bad(tmp_path, "matrix: {exclude: [{kernel: base}, {kernel: series}, {kernel: other}]}",
        MATRIX, "no cell", "field 'matrix'")


def test_baseline_unknown_or_itself_names_the_line(tmp_path):
    msg = bad(tmp_path, "", MATRIX.replace("baseline: base", "baseline: nosuch"),
              "kernels.series.baseline", "nosuch", "valid: base, other")
    assert "m.yaml:6:" in msg
    bad(tmp_path, "", MATRIX.replace("baseline: base", "baseline: series"),
        "own baseline")


def test_duplicate_kernel_name_names_both_lines(tmp_path):
    text = MATRIX.replace("  other:", "  base:")
    bad(tmp_path, "", text, "duplicate key 'base'", "also on line 5", "m.yaml:7")


def test_duplicate_case_name(tmp_path):
    text = MATRIX.replace("case: b", "case: a")
    bad(tmp_path, "", text, "workloads.full[1].case", "duplicate case name 'a'")


def test_names_must_be_safe_id_parts(tmp_path):
    bad(tmp_path, "", MATRIX.replace("  other:", "  ot.her:"), "kernels.ot.her",
        "not a valid name")
    bad(tmp_path, "", MATRIX.replace("  quick:", "  ../x:"), "not a valid name")


def test_matrix_names_must_exist(tmp_path):
    bad(tmp_path, "matrix: {variants: [debug, nope]}", MATRIX, "matrix.variants[1]",
        "valid: debug, kasan")
    bad(tmp_path, "matrix: {include: [{kernel: base, workloads: full}]}", MATRIX,
        "matrix.include[0]", "variant")


def test_repeat_bounds(tmp_path):
    bad(tmp_path, "repeat: 0", MATRIX, "field 'repeat'", "1..100")


def test_a_matrix_may_choose_workload_sets(tmp_path):
    j = job(tmp_path, extra="matrix:\n  kernels: [base]\n  variants: [kasan]\n"
                            "  workloads: [full]\n")
    [cell] = expand(j)
    assert cell.id == "base.kasan.full" and len(cell.workloads) == 2


KERNELS_ONLY = """
name: k
image: debian-bookworm
kernels:
  base: {{artifact: {base}}}
  series: {{artifact: {series}}}
workloads: [{{shell: {{command: "true", case: q}}}}]
{extra}
"""


def test_an_include_gets_the_default_of_each_undeclared_dimension(tmp_path):
    """A job that declares kernels only: an include names the kernel, and
    the cell gets the job's one variant and one workload list."""
    j = job(tmp_path, text=KERNELS_ONLY,
            extra="matrix:\n  kernels: [base]\n  include: [{kernel: series}]\n")
    cells = expand(j)
    assert [c.id for c in cells] == ["base", "series"]
    assert cells[1].kernel.name == "series"
    assert cells[1].variant is j.variants[0] and cells[1].workload_set is j.workload_sets[0]
    assert [w.case for w in cells[1].workloads] == ["q"]


def test_a_cell_as_summary_json_records_it(tmp_path):
    series = next(c for c in expand(job(tmp_path)) if c.id == "series.kasan.full")
    assert series.to_dict(2) == {
        "id": "series.kasan.full", "kernel": "series", "variant": "kasan", "workloads": "full",
        "kernel_kind": "artifact", "baseline": "base.kasan.full", "reference": False,
        "repeats": 2}
    base = next(c for c in expand(job(tmp_path)) if c.id == "base.kasan.full")
    assert base.to_dict(1)["reference"] is True and base.to_dict(1)["baseline"] is None


@pytest.mark.parametrize("text, shard", [("1/1", (1, 1)), ("1/3", (1, 3)), ("3/3", (3, 3))])
def test_shards_from_1_to_n(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "1/2/3", "a/b", "1-2", "", "-1/2"])
def test_a_shard_outside_1_to_n_is_bad_input_on_the_option(text):
    with pytest.raises(UserError) as e:
        parse_shard(text)
    assert e.value.field == "--shard" and e.value.exit_code == 3
    assert f"{text!r} is not a shard; valid: I/N with 1 <= I <= N, e.g. 1/4" in str(e.value)


def test_an_unknown_cell_names_every_valid_id(tmp_path):
    j = job(tmp_path, extra="matrix: {kernels: [base], variants: [debug]}\n")
    with pytest.raises(UserError) as e:
        select(j, expand(j), ["base.debug.nope"])
    assert e.value.field == "--cell" and e.value.file == str(j.path)
    assert "no cell 'base.debug.nope' in this job; valid: base.debug.quick, base.debug.full" \
        in str(e.value)
