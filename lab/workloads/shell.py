"""Run one shell command in the guest with the workload's timeout: for ad-hoc
checks, setup the other workloads do not do, and driving a scenario (such as
a frozen filesystem) through the real runner path. Hung-task aware: if the
kernel reports a hung task and the command does not finish soon after, the
runner's deadlock investigation takes over."""

from __future__ import annotations

from typing import Any

from .. import hang, validate
from ..errors import CommandTimeout, UserError
from ..results import CaseResult, Status
from . import register
from .base import Option, Workload, WorkloadContext
from .common import logged


@register
class Shell(Workload):
    name = "shell"
    description = "a shell command in the guest; passes on the expected exit status"
    options = {
        "command": Option(str, "", "the command line, run by the guest's /bin/sh (required)"),
        "expect_exit": Option(int, 0, "the exit status that passes", minimum=0, maximum=255),
        "case": Option(str, "shell", "the testcase name (and its output files' name)",
                       valid=validate.name),
    }

    @classmethod
    def parse_options(cls, raw, *, file: str, where: str) -> dict[str, Any]:
        opts = super().parse_options(raw, file=file, where=where)
        if not opts["command"].strip():
            raise UserError("the shell workload needs a command", file=file,
                            field=f"{where}.command")
        return opts

    def run(self, ctx: WorkloadContext) -> list[CaseResult]:
        g = logged(ctx)
        cmd, name = self.opts["command"], self.opts["case"]
        try:
            r = g.run(cmd, timeout=ctx.timeout, watch=True)
        except CommandTimeout as e:
            raise hang.tag(e, name)
        ctx.save(f"{name}.out", r.stdout)
        ctx.save(f"{name}.err", r.stderr)
        props = {"command": cmd, "exit_status": str(r.returncode)}
        if r.returncode == self.opts["expect_exit"]:
            return [CaseResult(name, Status.PASSED, r.duration, output=r.stdout[-4000:],
                               properties=props)]
        return [CaseResult(name, Status.FAILED, r.duration, output=r.stdout[-4000:],
                           message=f"exit status {r.returncode}, expected "
                                   f"{self.opts['expect_exit']}",
                           details=r.stderr[-4000:], properties=props)]
