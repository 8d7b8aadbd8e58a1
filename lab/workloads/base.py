"""What a workload is: a name, a typed option schema, the devices it needs,
and a `run` that returns testcases. The runner adds the checks that apply
after every workload (kernel findings, pin balance) itself.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import UserError
from ..validate import is_int, show
from ..guest.base import Guest
from ..kernel.artifact import KernelArtifact
from ..results import CaseResult


TYPE_NAMES = {tuple: "a list", str: "a string", int: "an integer", float: "a number",
              bool: "true or false"}


@dataclass(frozen=True)
class Option:
    """One workload option: its type, default and a line of help, and what
    values are valid. A list option (type tuple) needs at least `min_items`
    items, each at most once; a number is finite and within minimum..maximum;
    `valid` checks a string further (lab.validate.name for anything that
    becomes a file name, lab.validate.matching for anything that reaches a
    command line)."""

    type: type
    default: Any
    help: str = ""
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_items: int = 1
    valid: Callable[..., Any] | None = None

    def check(self, value: Any, *, file: str, field_name: str) -> Any:
        if self.type is float and is_int(value):
            try:
                value = float(value)
            except OverflowError:      # then the range check below rejects it
                value = math.inf
        if self.type is tuple and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise UserError(f"expected {TYPE_NAMES.get(self.type, self.type.__name__)}, got "
                            f"{show(value)} ({self.help})",
                            file=file, field=field_name)
        if self.type is tuple:
            self._check_items(value, file=file, field_name=field_name)
        elif self.choices is not None and value not in self.choices:
            raise UserError(f"{show(value)} is not valid; valid: "
                            f"{', '.join(map(str, self.choices))}", file=file, field=field_name)
        if self.type in (int, float):
            lo = -math.inf if self.minimum is None else self.minimum
            hi = math.inf if self.maximum is None else self.maximum
            # ints are finite however long (float() of a 400-digit int overflows)
            finite = not isinstance(value, float) or math.isfinite(value)
            if not (finite and lo <= value <= hi):
                rng = (f"{lo:g}..{hi:g}" if self.maximum is not None and self.minimum is not None
                       else f">= {lo:g}" if self.minimum is not None else f"<= {hi:g}"
                       if self.maximum is not None else "finite")
                raise UserError(f"must be {rng}, got {show(value)} ({self.help})", file=file,
                                field=field_name)
        if self.valid is not None:
            self.valid(value, file=file, field=field_name)
        return value

    def _check_items(self, value: tuple, *, file: str, field_name: str) -> None:
        valid = f"; valid: {', '.join(map(str, self.choices))}" if self.choices else ""
        if len(value) < self.min_items:
            raise UserError(f"needs at least {self.min_items} item(s), got {show(value)}"
                            f"{valid}", file=file, field=field_name)
        for i, v in enumerate(value):
            if self.choices is not None and not any(v == c and type(v) is type(c)
                                                    for c in self.choices):
                raise UserError(f"{show(v)} is not valid{valid}", file=file,
                                field=f"{field_name}[{i}]")
            if v in value[:i]:
                raise UserError(f"{show(v)} is listed twice", file=file,
                                field=f"{field_name}[{i}]")

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
    scope: Any = None                  # lab.guest.scope.Scope: the workload's processes
    recovery: float = 30.0             # seconds blocked tasks get to recover (lab/resolve.py)

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
        unknown = sorted(map(str, set(raw) - set(cls.options)))
        if unknown:
            valid = ", ".join(sorted(cls.options)) or "(none)"
            raise UserError(f"unknown option(s) {', '.join(unknown)} for workload "
                            f"'{cls.name}'; valid: {valid}", file=file,
                            field=f"{where}.{unknown[0]}")
        out = {}
        for key, opt in cls.options.items():
            out[key] = (opt.check(raw[key], file=file, field_name=f"{where}.{key}")
                        if key in raw else opt.default)
        return out

    @abc.abstractmethod
    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        """Run in the guest; return this workload's testcases (at least one)."""
