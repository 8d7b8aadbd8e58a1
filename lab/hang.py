"""When a workload runs past its timeout: collect evidence before teardown
and tell a deadlock (tasks stuck in D state, reported by the hung-task
detector or a sysrq-w dump) from a slow-but-progressing timeout."""

from __future__ import annotations

import re
import time

from .errors import CommandTimeout
from .results import CaseResult, Status

BLOCKED = re.compile(r"INFO: task \S+ blocked for more than|task:\S+\s+state:D")


def investigate(ctx, exc: CommandTimeout, cursor: int, case_name: str) -> CaseResult:
    """Gather sysrq evidence over SSH if the guest answers, else via the serial
    console (QMP break + key), and classify the timeout."""
    machine, guest = ctx.machine, ctx.guest
    evidence = ""
    via = "ssh"
    if guest.alive(timeout=15):
        guest.run("echo w > /proc/sysrq-trigger", timeout=30)
        time.sleep(1)
        evidence, _ = guest.kmsg_since(cursor)
    elif machine is not None and machine.running:
        via = "serial console"
        before = machine.console_size()
        machine.sysrq("w")
        time.sleep(3)
        evidence = machine.console_text()[before:]
    else:
        via = "none (qemu gone)"
    ctx.save("timeout-evidence.txt", evidence)
    stuck = BLOCKED.findall(evidence)
    kind = "deadlock" if stuck else "timeout"
    msg = (f"{kind}: workload ran past {exc.timeout:g}s; "
           + (f"{len(stuck)} blocked task report(s) (evidence via {via})" if stuck
              else f"no task blocked in D state (evidence via {via}): slow, not stuck"))
    return CaseResult(case_name, Status.FAILED, exc.timeout, kind=kind, message=msg,
                      details=evidence[-20000:], output=exc.output_tail)
