"""Job files: YAML -> frozen dataclasses, validated with messages that name
the file, the line, the field and what would be valid.

A single-kernel job:

    name: smoke
    kernel: distro            # or {distro: RELEASE} | {artifact: DIR} | {build: {...}} | {tree: DIR}
                              # | {tree: DIR}: a kernel tree you built (or its O= dir),
                              #   booted as it is (its bzImage and modules)
    image: debian-bookworm    # a recipe in images/, or a path to one
    machine: {memory_mb: 2048, cpus: 2, nvme_mb: 1024, pmem_mb: 0, cmdline: "", accel: auto}
    timeouts: {boot: 180, workload: 600}
    hung_task_timeout: 20
    stall_threshold: 2        # seconds an operation a workload times may take (0: off)
    workloads:
      - fio: {size_mb: 64}            # shorthand
      - name: fio                     # long form
        timeout: 120
        stall_threshold: 5            # this workload's own bound
        options: {size_mb: 64}

A matrix (see lab/matrix.py for how it expands into cells):

    kernels:                  # named kernels instead of `kernel:`
      base: {build: {linux_source: true}}
      series: {build: {linux_source: true, series: ../kernels/series/gup-example},
               baseline: base}
    variants:                 # config variants: fragment sets (builds) and cmdline
      debug: {fragments: [lab, debug]}
      kasan: {fragments: [lab, debug, kasan], cmdline: "kasan.fault=panic"}
    workloads:                # a list (one set) or named workload sets
      all: [{fio: {}}, {rdma: {}}]
      quick: [{fio: {size_mb: 8}}]
    matrix:                   # default: every kernel x variant x workload set
      kernels: [base, series]
      exclude: [{kernel: base, variant: kasan}]
      include: [{kernel: series, variant: kasan, workloads: quick}]
    repeat: 2                 # boots per cell
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from . import validate
from .errors import UserError
from .image.recipe import find_recipe
from .latency import DEFAULT_BOUND_S
from .paths import JOBS, find_job
from .validate import show

TOP_KEYS = ("name", "description", "kernel", "kernels", "variants", "matrix", "repeat",
            "image", "machine", "timeouts", "hung_task_timeout", "stall_threshold",
            "workloads")
ENTRY_KEYS = ("name", "timeout", "stall_threshold", "options")
MACHINE_KEYS = {"memory_mb": int, "cpus": int, "nvme_mb": int, "pmem_mb": int,
                "cmdline": str, "accel": str}
TIMEOUT_KEYS = ("boot", "workload", "recovery")
ACCELS = ("auto", "kvm", "tcg")
VARIANT_KEYS = ("fragments", "cmdline")
MATRIX_KEYS = ("kernels", "variants", "workloads", "include", "exclude")
MATRIX_DIMS = ("kernel", "variant", "workloads")
# Names of kernels, variants and workload sets make cell ids and directory
# names: lab.validate.NAME_RE.
MAX_REPEAT = 100
MAX_HUNG_TASK = 3600           # seconds; the kernel's detector, 0 disables it
# seconds a timed operation may take before it is a stall (lab/latency.py
# says why 2); 0 turns the check off
DEFAULT_STALL_THRESHOLD = DEFAULT_BOUND_S
DEFAULT = "default"


class KernelKind(enum.StrEnum):
    DISTRO = "distro"              # Debian's installed kernel
    ARTIFACT = "artifact"          # a directory printed by `lab build`
    BUILD = "build"                # built by lab from a tree + series + fragments
    TREE = "tree"                  # built by the user in their tree, booted in place


@dataclass(frozen=True)
class KernelSpec:
    kind: KernelKind
    release: str | None = None     # distro: a specific installed release
    path: Path | None = None       # artifact: the directory; tree: the (build) tree
    build: Any = None              # build: lab.kernel.spec.BuildSpec


@dataclass(frozen=True)
class NamedKernel:
    name: str
    spec: KernelSpec
    baseline: str | None = None    # the kernel this one is compared against


@dataclass(frozen=True)
class Variant:
    """A configuration: the fragments a build uses (None: the build's own)
    and extra kernel command line (applies to every kind of kernel)."""

    name: str
    fragments: tuple[str, ...] | None = None
    cmdline: str = ""


@dataclass(frozen=True)
class MachineOpts:
    memory_mb: int = 2048
    cpus: int = 2
    nvme_mb: int = 1024
    pmem_mb: int = 0
    cmdline: str = ""
    accel: str = "auto"


@dataclass(frozen=True)
class WorkloadEntry:
    name: str
    options: dict
    timeout: float
    # seconds an operation the workload times may take (lab/latency.py): the
    # entry's own stall_threshold, else the job's; 0 is off
    stall_threshold: float = DEFAULT_STALL_THRESHOLD

    @property
    def case(self) -> str:
        """The testcase the runner names for this workload when the workload
        cannot name its own (the guest died under it, lab failed): a shell
        workload's configured `case`, so the failure lands on the testcase
        the job file and earlier runs know, else the workload's name."""
        return self.options.get("case") or self.name


@dataclass(frozen=True)
class WorkloadSet:
    name: str
    workloads: tuple[WorkloadEntry, ...]


@dataclass(frozen=True)
class MatrixSpec:
    """Which cells run: the chosen names of each dimension (None: all), then
    exclude (partial matches) and include (exact cells added)."""

    kernels: tuple[str, ...] | None = None
    variants: tuple[str, ...] | None = None
    workloads: tuple[str, ...] | None = None
    include: tuple[tuple[tuple[str, str], ...], ...] = ()
    exclude: tuple[tuple[tuple[str, str], ...], ...] = ()


@dataclass(frozen=True)
class Job:
    name: str
    path: Path
    kernels: tuple[NamedKernel, ...]
    image: str
    machine: MachineOpts = field(default_factory=MachineOpts)
    boot_timeout: float = 180.0
    workload_timeout: float = 600.0
    # seconds blocked tasks get to recover once a stuck workload's processes
    # are ended (lab/resolve.py): recovered -> stall, not -> deadlock
    recovery_timeout: float = 30.0
    hung_task_timeout: int = 20
    stall_threshold: float = DEFAULT_STALL_THRESHOLD   # each entry carries its own too
    workload_sets: tuple[WorkloadSet, ...] = ()
    variants: tuple[Variant, ...] = (Variant(DEFAULT),)
    matrix: MatrixSpec = field(default_factory=MatrixSpec)
    repeat: int = 1
    description: str = ""
    # which dimensions the file declared (an undeclared one is left out of ids)
    declared: frozenset[str] = frozenset({"kernel"})
    # (kernel, variant, artifact dir): kernels built elsewhere (`lab run
    # --prebuilt`, set by `lab hosts run`); never read from the job file
    prebuilt: tuple[tuple[str, str, str], ...] = ()

    @property
    def kernel(self) -> KernelSpec:
        """The first kernel (a single-kernel job's only one)."""
        return self.kernels[0].spec

    @property
    def workloads(self) -> tuple[WorkloadEntry, ...]:
        """The first workload set (a single-kernel job's only one)."""
        return self.workload_sets[0].workloads

    def with_kernel(self, kernel: KernelSpec, name: str | None = None) -> "Job":
        """This job with one kernel only (lab test-patch: the kernel it built)."""
        return replace(self, kernels=(NamedKernel(name or self.kernels[0].name, kernel),),
                       matrix=MatrixSpec(workloads=self.matrix.workloads))

    def kernel_named(self, name: str) -> NamedKernel:
        return next(k for k in self.kernels if k.name == name)


def _type_name(t) -> str:
    return {int: "an integer", float: "a number", str: "a string", dict: "a mapping",
            list: "a list", bool: "true or false"}.get(t, t.__name__)


def _expect(value, types, *, file, field_name):
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise UserError(f"expected {' or '.join(map(_type_name, types))}, got {show(value)}",
                        file=file, field=field_name)
    return value


def _given(value, default):
    """An optional field: absent or empty (YAML null) means the default, but
    a falsy value of another type (0, "", false) is kept, so it is rejected
    by its type check instead of passing as the default."""
    return default if value is None else value


def _timeout(value, *, file, field_name) -> float:
    return validate.seconds(value, file=file, field=field_name)


def _unknown(d: dict, valid, *, file, where: str) -> None:
    bad = sorted(set(map(str, d)) - set(valid))
    if bad:
        prefix = f"{where}." if where else ""
        raise UserError(f"unknown key {show(bad[0])}; valid: {', '.join(valid)}", file=file,
                        field=prefix + (bad[0] or "''"))


def _name(value, *, file, field_name) -> str:
    return validate.name(value, file=file, field=field_name)


def _named(raw, key: str, what: str, *, file):
    """(name, value, field path) of each entry of a non-empty mapping of
    names (kernels, variants, workload sets), each name a safe id part."""
    _expect(raw, dict, file=file, field_name=key)
    if not raw:
        raise UserError(f"must define at least one {what}", file=file, field=key)
    for name, val in raw.items():
        where = f"{key}.{name}"
        yield _name(name, file=file, field_name=where), val, where


def _names(raw, valid: list[str], *, file, field_name) -> tuple[str, ...]:
    """A list of names, each one of `valid`."""
    if isinstance(raw, str):
        raw = [raw]
    _expect(raw, list, file=file, field_name=field_name)
    if not raw:
        raise UserError(f"must name at least one; valid: {', '.join(valid)}", file=file,
                        field=field_name)
    for i, n in enumerate(raw):
        if n not in valid:
            raise UserError(f"{show(n)} is not defined; valid: {', '.join(valid)}", file=file,
                            field=f"{field_name}[{i}]")
    return tuple(raw)


def parse_kernel(raw, *, file: str, base: Path, field_name: str = "kernel") -> KernelSpec:
    valid = "'distro', {distro: RELEASE}, {artifact: DIR}, {build: {...}} or {tree: DIR}"
    if raw == "distro":
        return KernelSpec(KernelKind.DISTRO)
    if not isinstance(raw, dict) or len(raw) != 1:
        raise UserError(f"expected {valid}, got {show(raw)}", file=file, field=field_name)
    (kind, val), = raw.items()
    sub = f"{field_name}.{kind}"
    if kind == "distro":
        return KernelSpec(KernelKind.DISTRO, release=_expect(val, str, file=file,
                                                             field_name=sub))
    if kind == "artifact":
        p = (base / Path(validate.path_text(val, file=file, field=sub))).expanduser()
        if not (p / "bzImage").exists():
            raise UserError(f"{p} is not a kernel artifact directory (no bzImage in it); "
                            "valid: a directory printed by `lab build`", file=file, field=sub)
        return KernelSpec(KernelKind.ARTIFACT, path=p.resolve())
    if kind == "tree":
        from .kernel.tree import detect
        p = (base / Path(validate.path_text(val, file=file, field=sub))).expanduser()
        try:
            return KernelSpec(KernelKind.TREE, path=detect(p, field=sub).path)
        except UserError as e:
            raise UserError(e.bare, file=file, field=sub) from None
    if kind == "build":
        from .kernel.spec import BuildSpec
        return KernelSpec(KernelKind.BUILD, build=BuildSpec.from_dict(
            _expect(val, dict, file=file, field_name=sub), file=file, field=sub))
    raise UserError(f"unknown kernel kind '{kind}'; valid: {valid}", file=file,
                    field=field_name)


def parse_kernels(raw, *, file: str, base: Path) -> tuple[NamedKernel, ...]:
    """`kernels:` a mapping name -> a kernel (as `kernel:` takes) that may
    also say `baseline: NAME`."""
    out = []
    for name, val, where in _named(raw, "kernels", "kernel", file=file):
        baseline = None
        if isinstance(val, dict) and "baseline" in val:
            val = dict(val)
            baseline = _expect(val.pop("baseline"), str, file=file,
                               field_name=f"{where}.baseline")
        out.append(NamedKernel(name, parse_kernel(val, file=file, base=base,
                                                  field_name=where), baseline))
    names = [k.name for k in out]
    for k in out:
        if k.baseline is None:
            continue
        if k.baseline == k.name:
            raise UserError("a kernel cannot be its own baseline; valid: another kernel of "
                            f"this job ({', '.join(n for n in names if n != k.name) or 'none'})",
                            file=file, field=f"kernels.{k.name}.baseline")
        if k.baseline not in names:
            raise UserError(f"unknown kernel {k.baseline!r}; valid: "
                            f"{', '.join(n for n in names if n != k.name)}", file=file,
                            field=f"kernels.{k.name}.baseline")
    return tuple(out)


def parse_variants(raw, *, file: str, base: Path) -> tuple[Variant, ...]:
    out = []
    for name, val, where in _named(raw, "variants", "variant", file=file):
        if isinstance(val, list):          # shorthand: the fragment list
            val = {"fragments": val}
        val = _expect(_given(val, {}), dict, file=file, field_name=where)
        _unknown(val, VARIANT_KEYS, file=file, where=where)
        frags = None
        if "fragments" in val:
            from .kernel.spec import fragment_list
            frags = fragment_list(val["fragments"], file=file, field=f"{where}.fragments",
                                  base=base)
        cmdline = _expect(val.get("cmdline", ""), str, file=file, field_name=f"{where}.cmdline")
        out.append(Variant(name, frags, cmdline))
    return tuple(out)


def parse_workloads(raw, *, file: str, default_timeout: float,
                    where: str = "workloads",
                    default_stall: float = DEFAULT_STALL_THRESHOLD) -> tuple[WorkloadEntry, ...]:
    from .workloads import lookup
    _expect(raw, list, file=file, field_name=where)
    if not raw:
        raise UserError("at least one workload is needed", file=file, field=where)
    out = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        _expect(item, dict, file=file, field_name=at)
        if "name" in item:
            _unknown(item, ENTRY_KEYS, file=file, where=at)
            name = _expect(item["name"], str, file=file, field_name=f"{at}.name")
            opts_at, timeout_at = f"{at}.options", f"{at}.timeout"
            stall_at = f"{at}.stall_threshold"
            opts = _given(item.get("options"), {})
            timeout = item.get("timeout")
            stall = item.get("stall_threshold")
        elif len(item) == 1:                      # shorthand: {NAME: {options, timeout}}
            (name, opts), = item.items()
            opts_at = f"{at}.{name}"
            timeout_at = f"{opts_at}.timeout"
            opts = dict(_expect(_given(opts, {}), dict, file=file, field_name=opts_at))
            timeout = opts.pop("timeout", None)
            stall_at = f"{opts_at}.stall_threshold"
            stall = opts.pop("stall_threshold", None)
        else:
            raise UserError("expected {NAME: {options}} or {name: NAME, options: {...}}",
                            file=file, field=at)
        cls = lookup(name, file=file, field=f"{at}.name")
        _expect(opts, dict, file=file, field_name=opts_at)
        options = cls.parse_options(opts, file=file, where=opts_at)
        t = default_timeout if timeout is None else _timeout(timeout, file=file,
                                                              field_name=timeout_at)
        bound = default_stall if stall is None else validate.bound_seconds(
            stall, file=file, field=stall_at)
        out.append(WorkloadEntry(name=name, options=options, timeout=t, stall_threshold=bound))
    _check_case_names(out, file=file, where=where)
    return tuple(out)


def _check_case_names(entries: list[WorkloadEntry], *, file: str, where: str) -> None:
    """A shell workload's testcase is named by its `case`: two with the same
    one in a set would give two testcases one name."""
    seen: dict[str, int] = {}
    for i, e in enumerate(entries):
        if e.name != "shell":
            continue
        case = e.options["case"]
        if case in seen:
            raise UserError(f"duplicate case name {case!r} (also {where}[{seen[case]}]); "
                            "give each shell workload a distinct `case`", file=file,
                            field=f"{where}[{i}].case")
        seen[case] = i


def parse_workload_sets(raw, *, file: str, default_timeout: float,
                        default_stall: float = DEFAULT_STALL_THRESHOLD) -> tuple[WorkloadSet, ...]:
    if isinstance(raw, dict):
        return tuple(WorkloadSet(n, parse_workloads(v, file=file,
                                                    default_timeout=default_timeout,
                                                    where=where, default_stall=default_stall))
                     for n, v, where in _named(raw, "workloads", "workload set", file=file))
    return (WorkloadSet(DEFAULT, parse_workloads(raw, file=file,
                                                 default_timeout=default_timeout,
                                                 default_stall=default_stall)),)


def parse_matrix(raw, job_names: dict[str, list[str]], *, file: str) -> MatrixSpec:
    """`matrix:` {kernels, variants, workloads: [names]} and include/exclude
    lists of {kernel, variant, workloads} (exclude may give some of them)."""
    m = _expect(_given(raw, {}), dict, file=file, field_name="matrix")
    _unknown(m, MATRIX_KEYS, file=file, where="matrix")
    chosen = {}
    for dim, key in zip(MATRIX_DIMS, ("kernels", "variants", "workloads")):
        if key in m:
            chosen[key] = _names(m[key], job_names[dim], file=file, field_name=f"matrix.{key}")

    def cells(key: str, full: bool):
        lst = _expect(_given(m.get(key), []), list, file=file, field_name=f"matrix.{key}")
        out = []
        for i, c in enumerate(lst):
            at = f"matrix.{key}[{i}]"
            _expect(c, dict, file=file, field_name=at)
            _unknown(c, MATRIX_DIMS, file=file, where=at)
            if not c:
                raise UserError(f"give at least one of {', '.join(MATRIX_DIMS)}", file=file,
                                field=at)
            for dim in MATRIX_DIMS:
                if dim in c and c[dim] not in job_names[dim]:
                    raise UserError(f"{show(c[dim])} is not defined; valid: "
                                    f"{', '.join(job_names[dim])}", file=file,
                                    field=f"{at}.{dim}")
                if full and dim not in c and len(job_names[dim]) > 1:
                    raise UserError(f"an included cell names its {dim} (one of "
                                    f"{', '.join(job_names[dim])})", file=file, field=at)
            out.append(tuple(sorted((d, str(c.get(d, job_names[d][0]))) for d in MATRIX_DIMS
                                    if d in c or full)))
        return tuple(out)

    return MatrixSpec(kernels=chosen.get("kernels"), variants=chosen.get("variants"),
                      workloads=chosen.get("workloads"), include=cells("include", True),
                      exclude=cells("exclude", False))


def _machine(m, *, file) -> MachineOpts:
    m = _expect(_given(m, {}), dict, file=file, field_name="machine")
    _unknown(m, tuple(MACHINE_KEYS), file=file, where="machine")
    for k, t in MACHINE_KEYS.items():
        if k in m:
            if t is int:
                validate.machine_number(k, m[k], file=file, field=f"machine.{k}")
            else:
                _expect(m[k], t, file=file, field_name=f"machine.{k}")
    if m.get("accel", "auto") not in ACCELS:
        raise UserError(f"{m['accel']!r} is not valid; valid: {', '.join(ACCELS)}", file=file,
                        field="machine.accel")
    return MachineOpts(**m)


def parse_job(data, *, file: str, base: Path) -> Job:
    if not isinstance(data, dict):
        raise UserError("a job file must be a YAML mapping", file=file)
    _unknown(data, TOP_KEYS, file=file, where="")
    if "kernel" in data and "kernels" in data:
        raise UserError("give either kernel (one) or kernels (named), not both", file=file,
                        field="kernels")
    for req in ("image", "workloads"):
        if req not in data:
            raise UserError("missing (required)", file=file, field=req)
    if "kernel" not in data and "kernels" not in data:
        raise UserError("missing (required): kernel: K or kernels: {NAME: K, ...}",
                        file=file, field="kernel")
    name = _name(data.get("name", Path(file).stem), file=file, field_name="name")
    if "kernels" in data:
        kernels = parse_kernels(data["kernels"], file=file, base=base)
    else:
        kernels = (NamedKernel(DEFAULT, parse_kernel(data["kernel"], file=file, base=base)),)
    image = validate.path_text(data["image"], file=file, field="image")
    image_path = base / image if image.endswith((".yaml", ".yml")) else None
    find_recipe(str(image_path) if image_path else image, file=file, field="image")
    machine = _machine(data.get("machine"), file=file)
    t = _expect(_given(data.get("timeouts"), {}), dict, file=file, field_name="timeouts")
    _unknown(t, TIMEOUT_KEYS, file=file, where="timeouts")
    boot = _timeout(t.get("boot", 180), file=file, field_name="timeouts.boot")
    wl_t = _timeout(t.get("workload", 600), file=file, field_name="timeouts.workload")
    recovery = _timeout(t.get("recovery", 30), file=file, field_name="timeouts.recovery")
    hung = validate.integer(data.get("hung_task_timeout", 20), 0, MAX_HUNG_TASK, file=file,
                            field="hung_task_timeout", unit="seconds (0 disables)")
    stall = validate.bound_seconds(_given(data.get("stall_threshold"), DEFAULT_STALL_THRESHOLD),
                                   file=file, field="stall_threshold")
    sets = parse_workload_sets(data["workloads"], file=file, default_timeout=wl_t,
                               default_stall=stall)
    variants = (parse_variants(data["variants"], file=file, base=base)
                if "variants" in data else (Variant(DEFAULT),))
    names = {"kernel": [k.name for k in kernels], "variant": [v.name for v in variants],
             "workloads": [w.name for w in sets]}
    matrix = parse_matrix(data.get("matrix"), names, file=file)
    repeat = _expect(data.get("repeat", 1), int, file=file, field_name="repeat")
    if not 1 <= repeat <= MAX_REPEAT:
        raise UserError(f"must be 1..{MAX_REPEAT}, got {repeat}", file=file, field="repeat")
    declared = {"kernel"}
    if "variants" in data:
        declared.add("variant")
    if isinstance(data["workloads"], dict):
        declared.add("workloads")
    job = Job(name=name, path=Path(file), kernels=kernels,
              image=str(image_path) if image_path else image, machine=machine,
              boot_timeout=boot, workload_timeout=wl_t, recovery_timeout=recovery,
              hung_task_timeout=hung, stall_threshold=stall,
              workload_sets=sets, variants=variants, matrix=matrix, repeat=repeat,
              description=_expect(_given(data.get("description"), ""), str, file=file,
                                  field_name="description"),
              declared=frozenset(declared))
    from .matrix import expand
    if not expand(job):
        raise UserError("the matrix expands to no cell (every cell is excluded)", file=file,
                        field="matrix")
    return job


# --- YAML with line numbers ---------------------------------------------------

MAX_FILE_BYTES = 1 << 20       # a job file is a page or two of YAML
# A document's size with every alias expanded: its nodes plus the characters
# of its scalars. Aliases let a small file stand for a huge document (a
# "billion laughs"); anything that later walks or prints it would take that
# long, so the loader refuses it while composing, in bounded time and memory.
MAX_EXPANDED = 1 << 21
MAX_DEPTH = 64                 # nesting: the composer and the checks recurse


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and remembers each key's line,
    so an error about a field can name the line it is on; and that refuses
    documents nested deeper than MAX_DEPTH, aliases to a node being composed
    (a recursive document), and documents whose expansion exceeds MAX_EXPANDED."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            ev = self.peek_event()
            target = self.anchors.get(ev.anchor)
            if target is not None and not hasattr(target, "lab_size"):
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{ev.anchor} refers to a node that contains it",
                    ev.start_mark)
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} "
                                              "levels", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        node.lab_size = _expanded_size(node)
        if node.lab_size > MAX_EXPANDED:
            raise yaml.composer.ComposerError(
                None, None, f"the document expands (aliases included) to more than "
                            f"{MAX_EXPANDED} nodes and characters", mark)
        return node


def _expanded_size(node) -> int:
    """A node's size with aliases expanded, from its children's (each child
    was composed first and carries its own)."""
    if isinstance(node, yaml.ScalarNode):
        return 1 + len(node.value)
    children = (node.value if isinstance(node, yaml.SequenceNode)
                else [n for kv in node.value for n in kv])
    return 1 + sum(c.lab_size for c in children)


class LineDict(dict):
    lines: dict


class LineList(list):
    lines: list


def _construct_mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    out = LineDict()
    out.lines = {}
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a string or a number",
                knode.start_mark) from None
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (also on line "
                            f"{out.lines[key]})", knode.start_mark)
        out[key] = loader.construct_object(vnode, deep=True)
        out.lines[key] = knode.start_mark.line + 1
    return out


def _construct_sequence(loader, node, deep=False):
    out = LineList(loader.construct_object(n, deep=True) for n in node.value)
    out.lines = [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def line_of(data, field_path: str) -> int | None:
    """The line of the deepest part of `field_path` (a.b[2].c) found in data."""
    line = None
    node = data
    for key, idx in _FIELD_PART.findall(field_path):
        if idx:
            i = int(idx)
            if not isinstance(node, list) or i >= len(node):
                break
            line = getattr(node, "lines", [None] * len(node))[i] or line
            node = node[i]
        else:
            if not isinstance(node, dict):
                break
            k = next((k for k in node if str(k) == key), None)
            if k is None:
                break
            line = getattr(node, "lines", {}).get(k) or line
            node = node[k]
    return line


def _load_yaml(text: str, *, file: str):
    """The document, composed under _Loader's caps, then constructed."""
    loader = None
    try:
        loader = _Loader(text)           # the reader refuses control characters here
        node = loader.get_single_node()
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"not valid YAML: {getattr(e, 'problem', None) or e}", file=file,
                        line=mark.line + 1 if mark else None) from None
    except (ValueError, OverflowError, RecursionError) as e:
        # a scalar PyYAML resolves but cannot build: an int of 5000 digits,
        # a timestamp like 2001-13-45
        raise UserError(f"not valid YAML: a value cannot be read ({show(str(e), 120)})",
                        file=file) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_job(path: str | Path) -> Job:
    """A job file by path, or by name (`smoke`, `jobs/smoke.yaml` from any
    directory): $LAB_JOBS_DIR's jobs, then lab's (lab.paths.find_job)."""
    p = find_job(path)
    file = str(p)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise UserError(f"larger than {MAX_FILE_BYTES} bytes; valid: a job file of at "
                            "most 1 MiB", file=file)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"no such job file; valid: a path to one, or the name of a job in "
                        f"{JOBS.where()}: {', '.join(JOBS.names()) or '(none)'}",
                        file=file) from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise UserError(f"cannot read job file: {e}", file=file) from None
    data = _load_yaml(text, file=file)
    try:
        return parse_job(data, file=file, base=p.resolve().parent)
    except UserError as e:
        if e.line is None and e.field and e.file == file:
            line = line_of(data, e.field)
            if line is not None:
                raise UserError(e.bare, file=file, field=e.field, line=line) from None
        raise
