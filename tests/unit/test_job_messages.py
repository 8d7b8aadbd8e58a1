"""Every way a job file is refused, word for word: the field, the line and
what would be valid (lab/job.py, lab/validate.py)."""

import pytest

from lab.errors import UserError
from lab.job import load_job

HEAD = "name: t\nkernel: distro\nimage: debian-bookworm\n"
WL = "workloads: [{fio: {}}]\n"
KS = "name: t\nimage: debian-bookworm\n"

REFUSED = [
    (HEAD + 'workloads: {}\n',
     'workloads', 'must define at least one workload set', 4),
    (HEAD + WL + 'bogus: 1\n',
     'bogus', "unknown key 'bogus'; valid: name, description, kernel, kernels, variants, "
              "matrix, repeat, image, machine, timeouts, hung_task_timeout, stall_threshold, "
              "workloads", 5),
    (HEAD + WL + 'machine: {memory_mb: true}\n',
     'machine.memory_mb', 'expected an integer, got True', 5),
    (HEAD + WL + 'machine: {cmdline: 5}\n',
     'machine.cmdline', 'expected a string, got 5', 5),
    (HEAD + WL + 'machine: {accel: hvf}\n',
     'machine.accel', "'hvf' is not valid; valid: auto, kvm, tcg", 5),
    (HEAD + WL + 'timeouts: {boot: 10, nope: 1}\n',
     'timeouts.nope', "unknown key 'nope'; valid: boot, workload, recovery", 5),
    (HEAD + WL + 'repeat: 0\n',
     'repeat', 'must be 1..100, got 0', 5),
    (HEAD + WL + 'repeat: true\n',
     'repeat', 'expected an integer, got True', 5),
    ('name: t\nimage: debian-bookworm\nkernels: {}\n' + WL,
     'kernels', 'must define at least one kernel', 3),
    ('name: t\nimage: debian-bookworm\nkernels: {a: distro}\nvariants: {v: {}}\nmatrix: '
     '{variants: []}\n' + WL,
     'matrix.variants', 'must name at least one; valid: v', 5),
    ('name: t\nimage: debian-bookworm\nkernels: {a: distro}\nmatrix: {kernels: b}\n' + WL,
     'matrix.kernels[0]', "'b' is not defined; valid: a", 4),
    ('name: t\nimage: debian-bookworm\nkernels: {a: distro}\n'
     'matrix: {kernels: [a], nope: 1}\n' + WL,
     'matrix.nope', "unknown key 'nope'; valid: kernels, variants, workloads, include, exclude", 4),
    (HEAD + 'workloads: [{fio: {}, shell: {}}]\n',
     'workloads[0]', 'expected {NAME: {options}} or {name: NAME, options: {...}}', 4),
    (HEAD + 'workloads: [{name: fio, bogus: 1}]\n',
     'workloads[0].bogus', "unknown key 'bogus'; valid: name, timeout, stall_threshold, "
                           "options", 4),
    (HEAD + 'workloads: [{nosuch: {}}]\n',
     'workloads[0].name', "unknown workload 'nosuch'; valid: dax, fio, gup_test, kselftest, "
                          "pinhold, rdma, shell", 4),
    (HEAD + 'workloads: [5]\n',
     'workloads[0]', 'expected a mapping, got 5', 4),
    (HEAD + 'workloads: []\n',
     'workloads', 'at least one workload is needed', 4),
    (HEAD + 'workloads: [{shell: {command: a, case: x}}, {shell: {command: b, case: x}}]\n',
     'workloads[1].case', "duplicate case name 'x' (also workloads[0]); give each shell "
                          "workload a distinct `case`", 4),
    ('name: t\nkernel: {distro: 5}\nimage: debian-bookworm\n' + WL,
     'kernel.distro', 'expected a string, got 5', 2),
    ('name: t\nkernel: {foo: 1}\nimage: debian-bookworm\n' + WL,
     'kernel', "unknown kernel kind 'foo'; valid: 'distro', {distro: RELEASE}, {artifact: "
               "DIR}, {build: {...}} or {tree: DIR}", 2),
    ('name: t\nkernel: [1]\nimage: debian-bookworm\n' + WL,
     'kernel', "expected 'distro', {distro: RELEASE}, {artifact: DIR}, {build: {...}} or "
               "{tree: DIR}, got [1]", 2),
    ('name: t\nkernel: distro\nkernels: {a: distro}\nimage: debian-bookworm\n' + WL,
     'kernels', 'give either kernel (one) or kernels (named), not both', 3),
    ('name: t\nimage: debian-bookworm\n' + WL,
     'kernel', 'missing (required): kernel: K or kernels: {NAME: K, ...}', None),
    ('- a\n- b\n',
     None, 'a job file must be a YAML mapping', None),
    ('a: [\n',
     None, "not valid YAML: expected the node content, but found '<stream end>'", 2),
    ('',
     None, 'a job file must be a YAML mapping', None),
    (HEAD + WL + 'stall_threshold: -1\n',
     'stall_threshold', 'must be a finite number of seconds in 0..604800 (0: off), got -1', 5),
    (HEAD + 'workloads: [{fio: {timeout: 5, stall_threshold: x}}]\n',
     'workloads[0].fio.stall_threshold', "expected a number of seconds (0: off), got 'x'", 4),
    # the top level: each field's own check
    ('name: t\nkernel: distro\n' + WL,
     'image', 'missing (required)', None),
    (HEAD + 'timeouts: 5\n' + WL, 'timeouts', 'expected a mapping, got 5', 4),
    (HEAD + 'timeouts: {workload: 0}\n' + WL, 'timeouts.workload',
     'must be a positive, finite number of seconds up to 604800, got 0', 4),
    (HEAD + 'timeouts: {recovery: 0}\n' + WL, 'timeouts.recovery',
     'must be a positive, finite number of seconds up to 604800, got 0', 4),
    (HEAD + 'hung_task_timeout: 3601\n' + WL, 'hung_task_timeout',
     'must be 0..3600 seconds (0 disables), got 3601', 4),
    (HEAD + WL + 'repeat: 101\n', 'repeat', 'must be 1..100, got 101', 5),
    (HEAD + WL + 'description: 5\n', 'description', 'expected a string, got 5', 5),
    (HEAD + WL + 'repeat: 1.5\n', 'repeat', 'expected an integer, got 1.5', 5),
    (HEAD + 'workloads: [fio, {shell: {command: a, case: x}}, {shell: {command: b, case: x}}]\n',
     'workloads[2].case', "duplicate case name 'x' (also workloads[1]); give each shell "
                          "workload a distinct `case`", 4),
    (KS + 'kernels: {a: distro}\nvariants: {v: {}, w: {}}\nmatrix: {variants: []}\n' + WL,
     'matrix.variants', 'must name at least one; valid: v, w', 5),
    # the line of the entry at fault, in block style, however deep
    (HEAD + 'workloads:\n  - fio: {}\n  - name: fio\n    options:\n      bogus: 1\n',
     'workloads[1].options.bogus', "unknown option(s) bogus for workload 'fio'; valid: bs, "
                                   "engines, fsync, iodepth, size_mb, targets", 8),
    (HEAD + 'workloads:\n  - fio: {}\n  - 5\n', 'workloads[1]', 'expected a mapping, got 5', 6),
    # a list YAML builds without lines (!!omap): the line of the nearest key
    (HEAD + 'workloads: !!omap\n  - fio: {}\n', 'workloads[0]',
     "expected a mapping, got ('fio', {})", 4),
    # kernels
    ('name: t\nkernel: {artifact: ""}\nimage: debian-bookworm\n' + WL,
     'kernel.artifact', "expected a path string (not empty), got ''", 2),
    ('name: t\nkernel: {build: 5}\nimage: debian-bookworm\n' + WL,
     'kernel.build', 'expected a mapping, got 5', 2),
    (KS + 'kernels: 5\n' + WL, 'kernels', 'expected a mapping, got 5', 3),
    (KS + 'kernels: {a: [1]}\n' + WL, 'kernels.a',
     "expected 'distro', {distro: RELEASE}, {artifact: DIR}, {build: {...}} or {tree: DIR}, got [1]", 3),
    (KS + 'kernels: {a: {distro: x, baseline: 5}}\n' + WL,
     'kernels.a.baseline', 'expected a string, got 5', 3),
    (KS + 'kernels: {a: {distro: x, baseline: a}}\n' + WL,
     'kernels.a.baseline', 'a kernel cannot be its own baseline; valid: another kernel of '
                           'this job (none)', 3),
    (KS + 'kernels: {a: {distro: x, baseline: a}, b: distro, c: distro}\n' + WL,
     'kernels.a.baseline', 'a kernel cannot be its own baseline; valid: another kernel of '
                           'this job (b, c)', 3),
    (KS + 'kernels: {a: {distro: x, baseline: z}, b: distro, c: distro}\n' + WL,
     'kernels.a.baseline', "unknown kernel 'z'; valid: b, c", 3),
    # variants
    (HEAD + WL + 'variants: {}\n', 'variants', 'must define at least one variant', 5),
    (HEAD + WL + 'variants: {v: 5}\n', 'variants.v', 'expected a mapping, got 5', 5),
    (HEAD + WL + 'variants: {v: {bogus: 1}}\n', 'variants.v.bogus',
     "unknown key 'bogus'; valid: fragments, cmdline", 5),
    (HEAD + WL + 'variants: {v: {cmdline: 5}}\n', 'variants.v.cmdline',
     'expected a string, got 5', 5),
    (HEAD + WL + 'variants: {v: {fragments: []}}\n', 'variants.v.fragments',
     'must name at least one fragment (e.g. [lab])', 5),
    # workloads
    (HEAD + 'workloads: 5\n', 'workloads', 'expected a list, got 5', 4),
    (HEAD + 'workloads: {s: 5}\n', 'workloads.s', 'expected a list, got 5', 4),
    (HEAD + 'workloads: [{name: 5}]\n', 'workloads[0].name', 'expected a string, got 5', 4),
    (HEAD + 'workloads: [{name: fio, options: 5}]\n', 'workloads[0].options',
     'expected a mapping, got 5', 4),
    (HEAD + 'workloads: [{name: fio, timeout: 0}]\n', 'workloads[0].timeout',
     'must be a positive, finite number of seconds up to 604800, got 0', 4),
    # matrix
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: 5\n' + WL,
     'matrix', 'expected a mapping, got 5', 4),
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: {kernels: 5}\n' + WL,
     'matrix.kernels', 'expected a list, got 5', 4),
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: {include: 5}\n' + WL,
     'matrix.include', 'expected a list, got 5', 4),
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: {include: [5]}\n' + WL,
     'matrix.include[0]', 'expected a mapping, got 5', 4),
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: {exclude: [{}]}\n' + WL,
     'matrix.exclude[0]', 'give at least one of kernel, variant, workloads', 4),
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: {exclude: [{x: a}]}\n' + WL,
     'matrix.exclude[0].x', "unknown key 'x'; valid: kernel, variant, workloads", 4),
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: {exclude: [{kernel: z}]}\n'
     + WL, 'matrix.exclude[0].kernel', "'z' is not defined; valid: a, b", 4),
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: {include: [{variant: default}]}\n'
     + WL, 'matrix.include[0]', "an included cell names its kernel (one of a, b)", 4),
    (KS + 'kernels: {a: distro, b: distro}\nmatrix: {exclude: [{kernel: a}, {kernel: b}]}\n'
     + WL, 'matrix', "the matrix expands to no cell (every cell is excluded)", 4),
]


@pytest.mark.parametrize("text, field, message, line", REFUSED)
def test_a_refused_job_names_field_line_and_what_is_valid(tmp_path, text, field, message, line):
    p = tmp_path / "j.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as e:
        load_job(p)
    assert (e.value.field, e.value.bare, e.value.line) == (field, message, line)
    assert e.value.file == str(p) and e.value.exit_code == 3
