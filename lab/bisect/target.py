"""What a bisection looks for, and the verdict of one run (pure).

A run is one `run_job` of one revision: its summary.json (format 2) is read
here. The verdict, in this order:

- bad: a testcase shows the target (a kernel finding whose title or
  signature matches, any finding, a pin leak, a deadlock, a named testcase
  that failed);
- infra: lab or the host could not carry the run out (an `infra` or
  `interrupted` case): retried, never counted;
- skip: the revision cannot say: its series does not apply, it does not
  build, it does not boot, or something else stopped the workloads before
  they finished (a panic, a dead guest, an Oops, a deadlock or a timeout
  that is not the target, workloads not run, the named testcase absent);
- good: the workloads ran to their end without the target. Other failures
  (another warning, a leak when bisecting a warning) are listed, not counted.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from ..errors import UserError
from .search import Verdict


class TargetKind(enum.StrEnum):
    FINDING = "finding"            # --finding TEXT
    ANY_FINDING = "any-finding"    # --any-finding
    PIN_LEAK = "pin-leak"          # --pin-leak
    DEADLOCK = "deadlock"          # --deadlock
    CASE = "case"                  # --case NAME


# kinds of case that end a run's workloads early: the target may not have
# had its chance, so a run without the target but with one of these is a skip
# (a kernel finding of kind panic or oops too: the kernel died, or killed the
# task; a "BUG: sleeping function called from invalid context" goes on)
STOPPERS = {"boot", "panic", "oops", "unreachable", "not-run", "deadlock", "timeout",
            "lost-wakeup"}
UNTESTABLE = {"apply", "build"}
INFRA = {"infra", "interrupted"}
FAILED = {"failed", "error"}


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    pattern: str = ""

    def __post_init__(self):
        if self.kind in (TargetKind.FINDING, TargetKind.CASE) and not self.pattern.strip():
            raise UserError(f"--{self.kind} needs a non-empty text", field=f"--{self.kind}")
        if self.kind is TargetKind.FINDING and self.pattern.startswith("re:"):
            try:
                re.compile(self.pattern[3:])
            except re.error as e:
                raise UserError(f"{self.pattern[3:]!r} is not a valid regular expression: {e}",
                                field="--finding") from None

    def describe(self) -> str:
        return {TargetKind.FINDING: f"a kernel finding matching {self.pattern!r}",
                TargetKind.ANY_FINDING: "any kernel finding",
                TargetKind.PIN_LEAK: "a pin leak",
                TargetKind.DEADLOCK: "a deadlock",
                TargetKind.CASE: f"testcase {self.pattern!r} failing"}[self.kind]

    def to_dict(self) -> dict:
        return {"kind": str(self.kind), "pattern": self.pattern}

    @classmethod
    def from_dict(cls, d: dict) -> "Target":
        return cls(TargetKind(d["kind"]), d.get("pattern", ""))

    def matches(self, case: dict) -> bool:
        status, kind = case.get("status"), str(case.get("kind") or "")
        props = case.get("properties") if isinstance(case.get("properties"), dict) else {}
        if status not in FAILED:
            return False
        if self.kind is TargetKind.PIN_LEAK:
            return kind == "pin-leak"
        if self.kind is TargetKind.DEADLOCK:
            return kind == "deadlock"
        if self.kind is TargetKind.CASE:
            return status == "failed" and self.pattern in _names(case)
        signature = props.get("signature")
        if not signature:
            return False
        if self.kind is TargetKind.ANY_FINDING:
            return True
        texts = (str(case.get("name", "")), str(signature))
        if self.pattern.startswith("re:"):
            rx = re.compile(self.pattern[3:], re.I)
            return any(rx.search(t) for t in texts)
        return any(self.pattern.lower() in t.lower() for t in texts)


def _names(case: dict) -> set[str]:
    """How --case may name a testcase: its name, classname.name, classname/name."""
    name, cls = str(case.get("name", "")), str(case.get("classname", ""))
    return {name, f"{cls}.{name}", f"{cls}/{name}"} if cls else {name}


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str = ""                  # one line: what made it bad / skip / infra
    evidence: tuple[str, ...] = ()    # the matching cases' messages (bad)
    signature: str = ""               # the matching finding's signature, if any
    others: tuple[str, ...] = ()      # other failures, noted only
    cases: tuple[str, ...] = field(default=(), compare=False)   # every testcase seen


def _cases(summary: dict) -> list[dict]:
    out = []
    for s in summary.get("suites") or []:
        if isinstance(s, dict):
            out += [c for c in s.get("cases") or [] if isinstance(c, dict)]
    return out


def _line(c: dict) -> str:
    msg = str(c.get("message") or "").splitlines()
    return f"{c.get('name')}: {msg[0]}" if msg and msg[0] else str(c.get("name"))


def judge(summary: dict, target: Target) -> Judgement:
    """One run's verdict from its summary.json (see the module's docstring)."""
    cases = _cases(summary)
    names = tuple(str(c.get("name")) for c in cases)
    hits = [c for c in cases if target.matches(c)]
    failed = [c for c in cases if c.get("status") in FAILED and c not in hits]
    others = tuple(_line(c) for c in failed)
    if hits:
        sig = next((str(c["properties"]["signature"]) for c in hits
                    if isinstance(c.get("properties"), dict)
                    and c["properties"].get("signature")), "")
        return Judgement(Verdict.BAD, _line(hits[0]), tuple(_line(c) for c in hits), sig,
                         others, names)
    for c in failed:
        if str(c.get("kind")) in UNTESTABLE:
            return Judgement(Verdict.SKIP, f"{c.get('kind')}: {c.get('message') or 'failed'}",
                             others=others, cases=names)
    for c in cases:
        if str(c.get("kind")) in INFRA and c.get("status") == "error":
            return Judgement(Verdict.INFRA, _line(c), others=others, cases=names)
    for c in cases:
        kind = str(c.get("kind"))
        if kind in STOPPERS and (c.get("status") in FAILED or kind == "not-run"):
            return Judgement(Verdict.SKIP, f"a different failure stopped the run: {kind}: "
                             + _line(c), others=others, cases=names)
    if not cases:
        return Judgement(Verdict.INFRA, "the run recorded no testcase", cases=names)
    if target.kind is TargetKind.CASE and not any(target.pattern in _names(c) for c in cases):
        shown = ", ".join(dict.fromkeys(names))
        return Judgement(Verdict.SKIP, f"no testcase {target.pattern!r} ran (ran: {shown})",
                         others=others, cases=names)
    return Judgement(Verdict.GOOD, "target absent" + (f"; other failures: {len(others)}"
                                                       if others else ""),
                     others=others, cases=names)
