"""A matrix across lab hosts (pure): which host runs which cells, the
kernels each host is sent, and the results of cells a host never returned.

Hosts come from an ansible inventory; `lab hosts probe` on each says its
cores, memory and qemu. A host's share of the matrix is weighted by how many
of the job's guests it can run at once (its cores over the guest's vCPUs,
its memory over the guest's memory plus qemu's), so a 4-core host gets
twice the cells of a 2-core one. A cell and the cells that name it as
their baseline go to one host together: each host's own run then judges
pre-existing failures right, and its junit.xml needs no rewriting. An
inventory may instead pin shards to hosts (`lab_shard: I/N` host
variables, `lab run --shard` semantics); those must cover the matrix
exactly, each shard on one host.

The effects (ansible, copying, fetching, merging) are in lab/hostrun.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .job import Job, KernelKind, KernelSpec
from .matrix import Cell, parse_shard, select
from .results import CaseKind, CaseResult, Status, SuiteResult
from .schedule import HOST_RESERVE_MB, QEMU_OVERHEAD_MB


@dataclass(frozen=True)
class Host:
    """One inventory host and the variables lab reads from it."""

    name: str
    vars: dict = field(default_factory=dict, compare=False)

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host") or self.name)

    @property
    def shard(self) -> str | None:
        s = self.vars.get("lab_shard")
        return str(s) if s is not None else None

    def label(self) -> str:
        return self.name if self.address == self.name else f"{self.name} ({self.address})"


@dataclass(frozen=True)
class Probe:
    """What `lab hosts probe` said about a host, or why it could not say."""

    cores: int = 0
    memory_mb: int = 0
    qemu: str | None = None
    accels: tuple[str, ...] = ()
    error: str = ""          # unreachable, lab missing, ...: the host is not used

    @classmethod
    def parse(cls, text: str) -> "Probe":
        try:
            data = json.loads(text.strip().splitlines()[-1])
            return cls(int(data["cores"]), int(data["memory_mb"]), data.get("qemu"),
                       tuple(data.get("accels") or ()))
        except (ValueError, KeyError, IndexError, TypeError):
            return cls(error=f"`lab hosts probe` printed no probe: {text.strip()[-300:]!r}")

    def problem(self) -> str:
        """Why lab cannot boot guests there ('' when it can)."""
        if self.error:
            return self.error
        if not self.qemu:
            return ("no qemu-system-x86_64 (apt-get install qemu-system-x86, or provision "
                    "the host with ansible/lab-host.yml)")
        if not {"kvm", "tcg"} & set(self.accels):
            return (f"{self.qemu} offers neither KVM nor TCG (accelerators: "
                    f"{', '.join(self.accels) or 'none'})")
        return ""


def capacity(probe: Probe, job: Job) -> int:
    """How many of the job's guests the host runs at once (at least 1)."""
    m = job.machine
    by_cores = probe.cores // max(1, m.cpus)
    by_memory = (probe.memory_mb - HOST_RESERVE_MB) // (m.memory_mb + QEMU_OVERHEAD_MB)
    return max(1, min(by_cores, by_memory))


def groups(cells: list[Cell]) -> list[list[Cell]]:
    """Cells that must run on one host: a baseline cell with the cells
    compared against it; every other cell alone. In matrix order."""
    ids = {c.id for c in cells}
    out: dict[str, list[Cell]] = {}
    for c in cells:
        out.setdefault(c.baseline if c.baseline in ids else c.id, []).append(c)
    return list(out.values())


def assign(cells: list[Cell], weights: dict[str, int]) -> dict[str, list[str]]:
    """Cell ids per host, weighted: the largest groups first, each to the
    host whose load per weight stays lowest (ties: inventory order)."""
    if not weights:
        raise UserError("no host to run on")
    load = {h: 0 for h in weights}
    out: dict[str, list[str]] = {h: [] for h in weights}
    order = {c.id: i for i, c in enumerate(cells)}
    for g in sorted(groups(cells), key=len, reverse=True):
        host = min(weights, key=lambda h: ((load[h] + len(g)) / weights[h],
                                           list(weights).index(h)))
        load[host] += len(g)
        out[host].extend(c.id for c in g)
    return {h: sorted(ids, key=order.__getitem__) for h, ids in out.items()}


def pinned(job: Job, cells: list[Cell], hosts: list[Host], inventory: str) -> dict[str, list[str]]:
    """The cells of hosts whose inventory pins a shard (`lab_shard: I/N`);
    {} when none does. Shards must all be of one N, one host each, and
    cover 1..N: a matrix left partly on no host is bad input."""
    given = [h for h in hosts if h.shard is not None]
    if not given:
        return {}
    if len(given) != len(hosts):
        raise UserError(f"lab_shard is set on {', '.join(h.name for h in given)} but not on "
                        f"{', '.join(h.name for h in hosts if h.shard is None)}; valid: on "
                        "every host, or on none (then lab weighs the hosts itself)",
                        file=inventory, field="lab_shard")
    shards: dict[int, Host] = {}
    total = None
    for h in given:
        try:
            i, n = parse_shard(h.shard)
        except UserError as e:
            raise UserError(f"host {h.name}: {e.bare}", file=inventory, field="lab_shard") \
                from None
        if total not in (None, n):
            raise UserError(f"host {h.name} has shard {h.shard} but another host's is of "
                            f"{total}; valid: I/{total} on every host", file=inventory,
                            field="lab_shard")
        total = n
        if i in shards:
            raise UserError(f"hosts {shards[i].name} and {h.name} both have shard {i}/{n}; "
                            "valid: each shard on one host", file=inventory, field="lab_shard")
        shards[i] = h
    missing = [i for i in range(1, total + 1) if i not in shards]
    if missing:
        lost = [c.id for i in missing for c in select(job, cells, shard=(i, total))]
        raise UserError(f"the hosts' shards do not cover the matrix: shard(s) "
                        f"{', '.join(f'{i}/{total}' for i in missing)} (cells "
                        f"{', '.join(lost) or 'none'}) are on no host; valid: shards 1/{total} "
                        f"to {total}/{total}, one a host", file=inventory, field="lab_shard")
    return {h.name: [c.id for c in select(job, cells, shard=(i, total))]
            for i, h in sorted(shards.items())}


def prebuilt_key(cell: Cell) -> str:
    return f"{cell.kernel.name}/{cell.variant.name}"


def build_specs(cells: list[Cell]) -> dict[str, KernelSpec]:
    """The kernels to build once, on the controller: `kernel/variant` ->
    spec, for every cell whose kernel is a build."""
    return {prebuilt_key(c): c.kernel_spec for c in cells
            if c.kernel_spec.kind is KernelKind.BUILD}


def load_prebuilt(path: Path) -> tuple[tuple[str, str, str], ...]:
    """`lab run --prebuilt MAP.json`: {"kernel/variant": ARTIFACT_DIR}, the
    kernels built elsewhere (the controller of `lab hosts run`); a relative
    directory is relative to the map file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read it: {e}", file=str(path), field="--prebuilt") from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and k.count("/") == 1 and isinstance(v, str)
            for k, v in data.items()):
        raise UserError('expected {"KERNEL/VARIANT": "ARTIFACT_DIR", ...}', file=str(path),
                        field="--prebuilt")
    base = Path(path).resolve().parent     # a relative directory is the map's neighbour
    out = []
    for k, v in sorted(data.items()):
        d = (base / v).resolve()
        if not (d / "bzImage").exists():
            raise UserError(f"{k}: {d} is not a kernel artifact directory (no bzImage in it)",
                            file=str(path), field="--prebuilt")
        out.append((*k.split("/"), str(d)))
    return tuple(out)


# --- cells a host never returned -------------------------------------------

def lost_suites(job: Job, cells: list[Cell], got: set[str], host: Host,
                reason: str) -> list[SuiteResult]:
    """An error suite for every unit of `cells` (cell x repeat) with no suite
    in what the host returned: the host is named, and why."""
    out = []
    for r in range(1, job.repeat + 1):
        for c in cells:
            name = f"{c.id}#{r}"
            if name in got:
                continue
            case = CaseResult("host", Status.ERROR, classname="lab.hosts",
                              message=f"host {host.label()}: {reason}",
                              kind=CaseKind.INFRA, properties={"host": host.name})
            out.append(SuiteResult(name, {"cell": c.id, "repeat": str(r), "host": host.name,
                                          "kernel": c.kernel.name, "variant": c.variant.name,
                                          "workloads": c.workload_set.name}, [case]))
    return out
