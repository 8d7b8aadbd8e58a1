"""What a workload is: a name, a typed option schema, the devices it needs,
and a `run` that returns testcases. The runner adds the checks that apply
after every workload (kernel findings, pin balance) itself.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import UserError
from ..guest.base import Guest
from ..kernel.artifact import KernelArtifact
from ..results import CaseResult


@dataclass(frozen=True)
class Option:
    """One workload option: its type, default and a line of help."""

    type: type
    default: Any
    help: str = ""
    choices: tuple | None = None
    minimum: float | None = None

    def check(self, value: Any, *, file: str, field_name: str) -> Any:
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is tuple and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise UserError(f"expected {self.type.__name__}, got {value!r} ({self.help})",
                            file=file, field=field_name)
        if self.choices is not None:
            vals = value if isinstance(value, tuple) else (value,)
            for v in vals:
                if v not in self.choices:
                    raise UserError(f"{v!r} is not valid; valid: {', '.join(map(str, self.choices))}",
                                    file=file, field=field_name)
        if self.minimum is not None and value < self.minimum:
            raise UserError(f"must be >= {self.minimum:g}, got {value!r}", file=file,
                            field=field_name)
        return value


@dataclass
class WorkloadContext:
    """What a running workload may use."""

    guest: Guest
    outdir: Path                       # this workload's directory under runs/<id>/
    timeout: float                     # the workload's budget in seconds
    helpers_dir: Path | None = None    # host dir with lab's compiled guest helpers
    machine: Any = None                # lab.vm.machine.Machine: QMP, console, sysrq
    log: Callable[[str], None] = print
    kernel: KernelArtifact | None = None   # the booted kernel (artifact dir: gup_test, .config)

    def save(self, name: str, text: str) -> Path:
        self.outdir.mkdir(parents=True, exist_ok=True)
        p = self.outdir / name
        p.write_text(text, encoding="utf-8", errors="replace")
        return p


class Workload(abc.ABC):
    """Subclasses set `name`, `options` and `needs`, and implement `run`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}
    # machine features the workload needs: "nvme", "pmem", "rdma"
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, opts: dict[str, Any]):
        self.opts = opts

    @classmethod
    def parse_options(cls, raw: dict | None, *, file: str, where: str) -> dict[str, Any]:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(cls.options))
        if unknown:
            valid = ", ".join(sorted(cls.options)) or "(none)"
            raise UserError(f"unknown option(s) {', '.join(unknown)} for workload "
                            f"'{cls.name}'; valid: {valid}", file=file, field=where)
        out = {}
        for key, opt in cls.options.items():
            out[key] = (opt.check(raw[key], file=file, field_name=f"{where}.{key}")
                        if key in raw else opt.default)
        return out

    @abc.abstractmethod
    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        """Run in the guest; return this workload's testcases (at least one)."""
