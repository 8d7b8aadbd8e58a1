"""Job files: YAML -> frozen dataclasses, validated with messages that name
the file, the field and what would be valid.

    name: smoke
    kernel: distro            # or {distro: RELEASE} | {artifact: DIR} | {build: {...}}
    image: debian-bookworm    # a recipe in images/, or a path to one
    machine: {memory_mb: 2048, cpus: 2, nvme_mb: 1024, pmem_mb: 0, cmdline: "", accel: auto}
    timeouts: {boot: 180, workload: 600}
    hung_task_timeout: 20
    workloads:
      - fio: {size_mb: 64}            # shorthand
      - name: fio                     # long form
        timeout: 120
        options: {size_mb: 64}
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .image.recipe import find_recipe

TOP_KEYS = ("name", "description", "kernel", "image", "machine", "timeouts",
            "hung_task_timeout", "workloads")
MACHINE_KEYS = {"memory_mb": int, "cpus": int, "nvme_mb": int, "pmem_mb": int,
                "cmdline": str, "accel": str}
TIMEOUT_KEYS = ("boot", "workload")
ACCELS = ("auto", "kvm", "tcg")


class KernelKind(enum.StrEnum):
    DISTRO = "distro"              # Debian's installed kernel
    ARTIFACT = "artifact"          # a directory printed by `lab build`
    BUILD = "build"                # built by lab from a tree + series + fragments


@dataclass(frozen=True)
class KernelSpec:
    kind: KernelKind
    release: str | None = None     # distro: a specific installed release
    path: Path | None = None       # artifact: the directory
    build: Any = None              # build: lab.kernel.spec.BuildSpec


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


@dataclass(frozen=True)
class Job:
    name: str
    path: Path
    kernel: KernelSpec
    image: str
    machine: MachineOpts = field(default_factory=MachineOpts)
    boot_timeout: float = 180.0
    workload_timeout: float = 600.0
    hung_task_timeout: int = 20
    workloads: tuple[WorkloadEntry, ...] = ()
    description: str = ""

    def with_kernel(self, kernel: KernelSpec) -> "Job":
        return replace(self, kernel=kernel)


def _type_name(t) -> str:
    return {int: "an integer", float: "a number", str: "a string", dict: "a mapping",
            list: "a list", bool: "true or false"}.get(t, t.__name__)


def _expect(value, types, *, file, field_name):
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise UserError(f"expected {' or '.join(map(_type_name, types))}, got {value!r}",
                        file=file, field=field_name)
    return value


def _timeout(value, *, file, field_name) -> float:
    _expect(value, (int, float), file=file, field_name=field_name)
    if value <= 0:
        raise UserError(f"must be a positive number of seconds, got {value!r}",
                        file=file, field=field_name)
    return float(value)


def _unknown(d: dict, valid, *, file, where: str) -> None:
    bad = sorted(set(d) - set(valid))
    if bad:
        prefix = f"{where}." if where else ""
        raise UserError(f"unknown key '{bad[0]}'; valid: {', '.join(valid)}", file=file,
                        field=prefix + bad[0])


def parse_kernel(raw, *, file: str, base: Path) -> KernelSpec:
    valid = "'distro', {distro: RELEASE}, {artifact: DIR} or {build: {...}}"
    if raw == "distro":
        return KernelSpec(KernelKind.DISTRO)
    if not isinstance(raw, dict) or len(raw) != 1:
        raise UserError(f"expected {valid}, got {raw!r}", file=file, field="kernel")
    (kind, val), = raw.items()
    if kind == "distro":
        return KernelSpec(KernelKind.DISTRO, release=_expect(val, str, file=file, field_name="kernel.distro"))
    if kind == "artifact":
        p = (base / Path(_expect(val, str, file=file, field_name="kernel.artifact"))
             .expanduser())
        if not (p / "bzImage").exists():
            raise UserError(f"{p} is not a kernel artifact directory (no bzImage in it); "
                            "valid: a directory printed by `lab build`", file=file,
                            field="kernel.artifact")
        return KernelSpec(KernelKind.ARTIFACT, path=p.resolve())
    if kind == "build":
        from .kernel.spec import BuildSpec
        return KernelSpec(KernelKind.BUILD, build=BuildSpec.from_dict(
            _expect(val, dict, file=file, field_name="kernel.build"), file=file,
            field="kernel.build"))
    raise UserError(f"unknown kernel kind '{kind}'; valid: {valid}", file=file, field="kernel")


def parse_workloads(raw, *, file: str, default_timeout: float) -> tuple[WorkloadEntry, ...]:
    from .workloads import lookup
    _expect(raw, list, file=file, field_name="workloads")
    out = []
    for i, item in enumerate(raw):
        where = f"workloads[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        _expect(item, dict, file=file, field_name=where)
        if "name" in item:
            _unknown(item, ("name", "timeout", "options"), file=file, where=where)
            name = _expect(item["name"], str, file=file, field_name=f"{where}.name")
            opts = item.get("options") or {}
            timeout = item.get("timeout")
        elif len(item) == 1:
            (name, opts), = item.items()
            opts = dict(opts or {})
            timeout = opts.pop("timeout", None)
        else:
            raise UserError("expected {NAME: {options}} or {name: NAME, options: {...}}",
                            file=file, field=where)
        cls = lookup(name, file=file, field=f"{where}.name")
        _expect(opts, dict, file=file, field_name=f"{where}.options")
        options = cls.parse_options(opts, file=file, where=f"{where}.options")
        t = default_timeout if timeout is None else _timeout(timeout, file=file,
                                                              field_name=f"{where}.timeout")
        out.append(WorkloadEntry(name=name, options=options, timeout=t))
    return tuple(out)


def parse_job(data, *, file: str, base: Path) -> Job:
    if not isinstance(data, dict):
        raise UserError("a job file must be a YAML mapping", file=file)
    _unknown(data, TOP_KEYS, file=file, where="")
    for req in ("kernel", "image", "workloads"):
        if req not in data:
            raise UserError("missing (required)", file=file, field=req)
    name = _expect(data.get("name", Path(file).stem), str, file=file, field_name="name")
    kernel = parse_kernel(data["kernel"], file=file, base=base)
    image = _expect(data["image"], str, file=file, field_name="image")
    image_path = base / image if image.endswith((".yaml", ".yml")) else None
    find_recipe(str(image_path) if image_path else image, file=file, field="image")
    m = _expect(data.get("machine") or {}, dict, file=file, field_name="machine")
    _unknown(m, tuple(MACHINE_KEYS), file=file, where="machine")
    for k, t in MACHINE_KEYS.items():
        if k in m:
            _expect(m[k], t, file=file, field_name=f"machine.{k}")
            if t is int and m[k] < (1 if k in ("memory_mb", "cpus") else 0):
                raise UserError(f"must be >= {1 if k in ('memory_mb', 'cpus') else 0}, "
                                f"got {m[k]}", file=file, field=f"machine.{k}")
    if m.get("accel", "auto") not in ACCELS:
        raise UserError(f"{m['accel']!r} is not valid; valid: {', '.join(ACCELS)}", file=file,
                        field="machine.accel")
    machine = MachineOpts(**m)
    t = _expect(data.get("timeouts") or {}, dict, file=file, field_name="timeouts")
    _unknown(t, TIMEOUT_KEYS, file=file, where="timeouts")
    boot = _timeout(t.get("boot", 180), file=file, field_name="timeouts.boot")
    wl_t = _timeout(t.get("workload", 600), file=file, field_name="timeouts.workload")
    hung = _expect(data.get("hung_task_timeout", 20), int, file=file,
                   field_name="hung_task_timeout")
    if hung < 0:
        raise UserError(f"must be >= 0 (0 disables), got {hung}", file=file,
                        field="hung_task_timeout")
    workloads = parse_workloads(data["workloads"], file=file, default_timeout=wl_t)
    if not workloads:
        raise UserError("at least one workload is needed", file=file, field="workloads")
    return Job(name=name, path=Path(file), kernel=kernel,
               image=str(image_path) if image_path else image, machine=machine,
               boot_timeout=boot, workload_timeout=wl_t, hung_task_timeout=hung,
               workloads=workloads,
               description=str(data.get("description", "")))


def load_job(path: str | Path) -> Job:
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise UserError("no such job file", file=file) from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read job file: {e}", file=file) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"not valid YAML: {getattr(e, 'problem', None) or e}", file=file,
                        line=mark.line + 1 if mark else None) from None
    return parse_job(data, file=file, base=p.resolve().parent)
