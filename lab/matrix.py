"""Job -> cells (pure): the matrix of kernels x variants x workload sets,
with include/exclude, baselines, stable ids and shard selection.

A cell's id is made of names, never positions: `kernel.variant.workloads`,
leaving out a dimension the job file does not declare (a single-kernel job's
cell is just its kernel's name, `default`). So an id survives edits
elsewhere in the file, and `lab run JOB --cell ID` keeps meaning the same
cell. Each cell runs `repeat` times; a repeat is one boot, one testsuite.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .errors import UserError
from .job import Job, KernelKind, KernelSpec, NamedKernel, Variant, WorkloadSet


@dataclass(frozen=True)
class Cell:
    id: str
    kernel: NamedKernel
    variant: Variant
    workload_set: WorkloadSet
    baseline: str | None = None   # the baseline kernel's cell with this variant + workloads
    reference: bool = False       # this cell's kernel is another kernel's baseline

    @property
    def kernel_spec(self) -> KernelSpec:
        """The kernel to boot: a build takes the variant's fragments."""
        spec = self.kernel.spec
        if spec.kind is KernelKind.BUILD and self.variant.fragments is not None:
            return replace(spec, build=replace(spec.build, fragments=self.variant.fragments))
        return spec

    @property
    def workloads(self):
        return self.workload_set.workloads

    def to_dict(self, repeats: int) -> dict:
        return {"id": self.id, "kernel": self.kernel.name, "variant": self.variant.name,
                "workloads": self.workload_set.name, "kernel_kind": str(self.kernel.spec.kind),
                "baseline": self.baseline, "reference": self.reference, "repeats": repeats}


@dataclass(frozen=True)
class Unit:
    """One repeat of one cell: what the scheduler runs, one boot."""

    cell: Cell
    repeat: int                   # 1-based

    @property
    def id(self) -> str:
        return f"{self.cell.id}#{self.repeat}"


def cell_id(job: Job, kernel: str, variant: str, workloads: str) -> str:
    parts = [kernel]
    if "variant" in job.declared:
        parts.append(variant)
    if "workloads" in job.declared:
        parts.append(workloads)
    return ".".join(parts)


def _matches(pattern: tuple[tuple[str, str], ...], combo: dict[str, str]) -> bool:
    return all(combo[d] == v for d, v in pattern)


def expand(job: Job) -> list[Cell]:
    """Every cell of the job's matrix, in file order (kernels, then variants,
    then workload sets), includes after the product, without duplicates."""
    m = job.matrix
    kernels = [k for k in job.kernels if m.kernels is None or k.name in m.kernels]
    variants = [v for v in job.variants if m.variants is None or v.name in m.variants]
    sets = [w for w in job.workload_sets if m.workloads is None or w.name in m.workloads]
    combos = [{"kernel": k.name, "variant": v.name, "workloads": w.name}
              for k in kernels for v in variants for w in sets]
    combos = [c for c in combos if not any(_matches(x, c) for x in m.exclude)]
    for inc in m.include:
        c = {"kernel": job.kernels[0].name, "variant": job.variants[0].name,
             "workloads": job.workload_sets[0].name, **dict(inc)}
        if c not in combos:
            combos.append(c)
    ids = {cell_id(job, c["kernel"], c["variant"], c["workloads"]) for c in combos}
    baselines = {k.baseline for k in job.kernels if k.baseline}
    by_name = ({k.name: k for k in job.kernels}, {v.name: v for v in job.variants},
               {w.name: w for w in job.workload_sets})
    prebuilt = {(k, v): Path(d) for k, v, d in job.prebuilt}
    cells = []
    for c in combos:
        k = by_name[0][c["kernel"]]
        if (k.name, c["variant"]) in prebuilt and k.spec.kind is KernelKind.BUILD:
            # built once elsewhere (`lab hosts run`): boot that artifact
            k = replace(k, spec=KernelSpec(KernelKind.ARTIFACT,
                                           path=prebuilt[(k.name, c["variant"])]))
        base = (cell_id(job, k.baseline, c["variant"], c["workloads"])
                if k.baseline else None)
        cells.append(Cell(cell_id(job, c["kernel"], c["variant"], c["workloads"]), k,
                          by_name[1][c["variant"]], by_name[2][c["workloads"]],
                          baseline=base if base in ids else None,
                          reference=k.name in baselines))
    return cells


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 1 <= I <= N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"{text!r} is not a shard; valid: I/N with 1 <= I <= N, e.g. 1/4",
                        field="--shard") from None
    if not 1 <= i <= n:
        raise UserError(f"{text!r} is not a shard; valid: I/N with 1 <= I <= N, e.g. 1/4",
                        field="--shard")
    return i, n


def select(job: Job, cells: list[Cell], ids: list[str] | None = None,
           shard: tuple[int, int] | None = None) -> list[Cell]:
    """The cells to run: those named by `ids` (each must exist), then shard
    I of N (every N-th cell starting at the I-th, so shards are disjoint and
    cover the matrix)."""
    if ids:
        known = {c.id: c for c in cells}
        for i in ids:
            if i not in known:
                raise UserError(f"no cell {i!r} in this job; valid: {', '.join(known)}",
                                file=str(job.path), field="--cell")
        cells = [c for c in cells if c.id in set(ids)]
    if shard:
        i, n = shard
        cells = cells[i - 1::n]
    return cells


def units(job: Job, cells: list[Cell]) -> list[Unit]:
    """Repeat-major order: every cell's first boot before any second one, so
    a first answer for each cell comes early."""
    return [Unit(c, r) for r in range(1, job.repeat + 1) for c in cells]
