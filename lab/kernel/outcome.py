"""What making a kernel says about itself: one StepResult per step (apply
the series, build), plain data. lab/kernel returns these, never JUnit cases
or exit codes: the runner turns them into testcases, the CLI into an exit
status."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Step(enum.StrEnum):
    APPLY = "apply"
    BUILD = "build"


class StepState(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"        # the series does not apply, the kernel does not build
    SKIPPED = "skipped"      # an earlier step failed


@dataclass(frozen=True)
class StepResult:
    step: Step
    state: StepState
    seconds: float = 0.0
    message: str = ""        # one line
    details: str = ""        # the failed hunks, the compiler's errors
    output: str = ""         # e.g. the series' subjects
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state is StepState.OK
