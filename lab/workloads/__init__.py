"""The workload registry: name -> Workload class."""

from __future__ import annotations

from ..errors import UserError
from .base import Option, Workload, WorkloadContext

REGISTRY: dict[str, type[Workload]] = {}


def register(cls: type[Workload]) -> type[Workload]:
    REGISTRY[cls.name] = cls
    return cls


def lookup(name: str, *, file: str = "", field: str = "") -> type[Workload]:
    _load_builtin()
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown workload '{name}'; valid: {', '.join(sorted(REGISTRY))}",
                        file=file, field=field) from None


def _load_builtin() -> None:
    # Importing the modules registers them.
    from . import dax, fio, gup_test, kselftest, pinhold, rdma, shell  # noqa: F401


__all__ = ["Option", "Workload", "WorkloadContext", "REGISTRY", "register", "lookup"]
