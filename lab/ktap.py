"""KTAP / TAP text -> a tree of test results (pure: no I/O, no lab imports).

What it reads (Documentation/dev-tools/ktap.rst, TAP 13 and the TAP 14
draft, tools/testing/selftests/kselftest.h and kselftest/runner.sh):

- a version line, `KTAP version 1`, `TAP version 13` or `TAP version 14`;
- a plan `1..N` before or after the results, `1..0 # SKIP reason` for a
  program that skipped everything (kselftest's ksft_exit_skip);
- results `ok|not ok [N] [- ][description][ # [DIRECTIVE] [reason]]`, the
  directive SKIP (also SKIPPED...), TODO, XFAIL, TIMEOUT or ERROR in any case
  (kselftest prints `ok 3 # SKIP why` with no description and `not ok 4 #
  error why`); an unknown directive is diagnostic data (`# exit=1`);
- diagnostics `# text`, kept with the result that follows them (the KTAP
  rule: diagnostics about a test come before its result);
- nested tests, which come before their parent's result line: KTAP style, an
  indented block starting with its own version line (or TAP 14's `# Subtest:
  NAME`, or a plan); kselftest runner style, the program's whole output with
  each line prefixed by `# ` (runner.sh's tap_prefix), recognised by a
  `# TAP version 13` line. The two nest into each other;
- `Bail out! reason`: the block ends there and its missing results say so;
- anything else (kernel messages on a console, a program's own prints) is an
  unknown line: kept, never a result; so is a plan above MAX_PLAN or a
  nesting deeper than MAX_DEPTH. A line of the parent's level that is a
  result, plan or version line ends a nested block; so does a less indented
  diagnostic once the nested plan is complete.

Results the plan promised but the text never gave (a crash, a bail out, a
timeout) are added as results with `missing` set and Outcome.MISSING, which
counts as a failure. render() writes a tree back as KTAP; parse(render(t))
gives t again (tests/unit/test_ktap.py checks that with hypothesis).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Iterator

VERSION_RE = re.compile(r"^(?:KTAP version \d+|TAP version \d+)$")
PLAN_RE = re.compile(r"^1\.\.(\d+)(?:\s*#\s*(.*))?$")
RESULT_RE = re.compile(r"^(not ok|ok)(?=\s|$)(?:\s+(\d+)(?=\s|$))?\s*(.*)$")
BAIL_RE = re.compile(r"^Bail out!\s*(.*)$", re.I)
SUBTEST_RE = re.compile(r"^#\s*Subtest:\s*(.*)$")
DIRECTIVE_RE = re.compile(r"^(skip\w*|todo|xfail|timeout|error)(?!\w)[:\s]*(.*)$", re.I | re.S)
ANY_VERSION_RE = re.compile(r"^\s*(?:KTAP|TAP) version \d+\s*$", re.M)
RUNNER_PREFIX = "# "          # kselftest/runner.sh: each line of a test's output
MAX_DEPTH = 32                # deeper "nested" lines are unknown: no recursion blow-up
MAX_PLAN = 10_000             # a larger "plan" is noise, not tests to report missing
INDENT = "  "                 # one KTAP nesting level


class Directive(enum.StrEnum):
    SKIP = "SKIP"
    TODO = "TODO"
    XFAIL = "XFAIL"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"


class Outcome(enum.StrEnum):
    """What a result means, from ok/not ok and its directive."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"          # SKIP, whether ok or not ok
    TODO = "todo"          # known broken: not a failure either way
    XFAIL = "xfail"        # failed as expected
    TIMEOUT = "timeout"
    ERROR = "error"        # the test could not run (kselftest's ksft_test_result_error)
    MISSING = "missing"    # the plan promised it, the text never gave it

    @property
    def failed(self) -> bool:
        return self in (Outcome.FAIL, Outcome.TIMEOUT, Outcome.ERROR, Outcome.MISSING)


@dataclass
class Plan:
    count: int
    skip: str | None = None    # `1..0 # SKIP reason`: the reason ('' when none given)


@dataclass
class Result:
    ok: bool
    number: int
    description: str = ""
    directive: Directive | None = None
    reason: str = ""                 # after '#': the directive's reason, or diagnostic data
    diagnostics: list[str] = field(default_factory=list)    # `# ...` lines before it
    subtests: Block | None = None
    missing: bool = False

    @property
    def outcome(self) -> Outcome:
        if self.missing:
            return Outcome.MISSING
        if self.directive is not None:
            return Outcome(self.directive.value.lower())
        return Outcome.PASS if self.ok else Outcome.FAIL

    @property
    def name(self) -> str:
        """The description; kselftest's `ok 3 # SKIP why` has none, so then
        the reason, else `test N`."""
        if self.description:
            return self.description
        if self.reason and self.directive is not None:
            return self.reason
        return f"test {self.number}"


@dataclass
class Block:
    """One level: a version line, a plan, results (each with its subtests)."""

    version: str = ""
    name: str = ""                   # TAP 14's `# Subtest: NAME`
    plan: Plan | None = None
    results: list[Result] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)    # after the last result
    bail_out: str | None = None
    unknown: list[str] = field(default_factory=list, compare=False)

    @property
    def skipped(self) -> str | None:
        """The reason of a `1..0 # SKIP` plan, else None."""
        return self.plan.skip if self.plan is not None and self.plan.count == 0 else None

    def walk(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Result]]:
        """Every result at every depth with the names of its parents, parents after
        their subtests (the order of the text)."""
        for r in self.results:
            if r.subtests is not None:
                yield from r.subtests.walk(path + (r.name,))
            yield path, r

    def counts(self) -> dict[str, int]:
        """Results of this level by outcome."""
        out = {o.value: 0 for o in Outcome}
        for r in self.results:
            out[r.outcome.value] += 1
        return out


def has_ktap(text: str) -> bool:
    """Whether `text` holds a (K)TAP version line."""
    return bool(ANY_VERSION_RE.search(text))


def parse(text: str) -> Block:
    """The results in `text`; lines before the first version line are unknown."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if VERSION_RE.match(line.strip())
                  and not line[:1].isspace()), None)
    p = _Parser(lines)
    head: list[str] = []
    if start is not None:
        head = [line for line in lines[:start] if line.strip()]
        p.i = start
    top = p.block("")
    top.unknown[:0] = head
    top.unknown += [line for line in lines[p.i:] if line.strip()]
    return top


def _split_result(rest: str) -> tuple[str, Directive | None, str]:
    """`desc # DIRECTIVE reason` -> (description, directive, reason)."""
    m = re.search(r"(?<!\\)#", rest)
    desc, tail = (rest[:m.start()], rest[m.end():]) if m else (rest, None)
    desc = desc.strip()
    if desc.startswith("- ") or desc == "-":
        desc = desc[2:].strip()
    desc = desc.replace("\\#", "#")
    if tail is None:
        return desc, None, ""
    tail = tail.strip()
    d = DIRECTIVE_RE.match(tail)
    if d is None:
        return desc, None, tail
    word = d.group(1).upper()
    directive = Directive.SKIP if word.startswith("SKIP") else Directive(word)
    return desc, directive, d.group(2).strip()


def _nested_prefix(rest: str) -> str | None:
    """The extra prefix of a nested block starting at this line, if one does:
    an indented version / `# Subtest:` / plan line, or a runner-prefixed
    version line."""
    m = re.match(r"^([ \t]+)(\S.*)$", rest)
    if m:
        body = m.group(2).rstrip()
        if VERSION_RE.match(body) or SUBTEST_RE.match(body) or PLAN_RE.match(body):
            return m.group(1)
        return None
    if rest.startswith(RUNNER_PREFIX) and VERSION_RE.match(rest[len(RUNNER_PREFIX):].rstrip()):
        return RUNNER_PREFIX
    return None


def _structural(bare: str) -> bool:
    return bool(RESULT_RE.match(bare) or PLAN_RE.match(bare) or VERSION_RE.match(bare)
                or BAIL_RE.match(bare))


class _Parser:
    def __init__(self, lines: list[str]):
        self.lines = lines
        self.i = 0

    def block(self, prefix: str, parents: tuple[str, ...] = ()) -> Block:
        """The block whose lines start with `prefix`, inside blocks of the
        `parents` prefixes (outermost first; none for the top level)."""
        nested = bool(parents)
        b = Block()
        diags: list[str] = []
        sub: Block | None = None          # a nested block waiting for its result line
        last = 0
        while self.i < len(self.lines):
            line = self.lines[self.i].rstrip()
            if nested and not line.startswith(prefix):
                outer = max((p for p in parents if line.startswith(p)), key=len, default=None)
                bare = line[len(outer):].lstrip(" \t") if outer is not None else ""
                if outer is not None and (_structural(bare) or (bare.startswith("#")
                                                                and _complete(b, sub))):
                    break                 # an enclosing block's line
                if line.strip():
                    b.unknown.append(line)
                self.i += 1
                continue
            rest = line[len(prefix):]
            more = _nested_prefix(rest) if len(parents) < MAX_DEPTH else None
            if more is not None:
                if sub is not None:       # two nested blocks in a row: the first lost its result
                    last += 1
                    b.results.append(_orphan(sub, last, diags))
                    diags = []
                sub = self.block(prefix + more, parents + (prefix,))
                continue
            self.i += 1
            if VERSION_RE.match(rest):
                if not b.version and not b.results and b.plan is None:
                    b.version = rest
                else:
                    b.unknown.append(line)
            elif (m := PLAN_RE.match(rest)) is not None:
                if b.plan is None and int(m.group(1)) <= MAX_PLAN:
                    skip = None
                    if m.group(2) is not None:
                        d = DIRECTIVE_RE.match(m.group(2).strip())
                        if d and d.group(1).upper().startswith("SKIP"):
                            skip = d.group(2).strip()
                    b.plan = Plan(int(m.group(1)), skip)
                else:
                    b.unknown.append(line)
            elif (m := RESULT_RE.match(rest)) is not None:
                desc, directive, reason = _split_result(m.group(3))
                last = int(m.group(2)) if m.group(2) else last + 1
                b.results.append(Result(m.group(1) == "ok", last, desc, directive, reason,
                                        diags, sub))
                diags, sub = [], None
            elif (m := BAIL_RE.match(rest)) is not None:
                b.bail_out = m.group(1).strip()
                break
            elif (m := SUBTEST_RE.match(rest)) is not None and not b.name and not b.results:
                b.name = m.group(1).strip()
            elif rest.startswith("#"):
                diags.append(rest[2:] if rest.startswith("# ") else rest[1:])
            elif rest.strip():
                b.unknown.append(line)
        if sub is not None:
            last += 1
            b.results.append(_orphan(sub, last, diags))
            diags = []
        b.diagnostics = diags
        _add_missing(b)
        return b


def _complete(b: Block, sub: Block | None) -> bool:
    return sub is None and b.plan is not None and len(b.results) >= b.plan.count


def _orphan(sub: Block, number: int, diags: list[str]) -> Result:
    return Result(False, number, sub.name, None, "no result line after its subtests", diags,
                  sub, missing=True)


def _add_missing(b: Block) -> None:
    if b.plan is None:
        return
    seen = {r.number for r in b.results}
    why = (f"bailed out: {b.bail_out}" if b.bail_out is not None
           else f"no result line (plan 1..{b.plan.count})")
    b.results += [Result(False, n, "", None, why, missing=True)
                  for n in range(1, b.plan.count + 1) if n not in seen]


# --- rendering ---------------------------------------------------------------

def result_line(r: Result) -> str:
    out = f"{'ok' if r.ok else 'not ok'} {r.number}"
    if r.description:
        out += " " + r.description.replace("#", "\\#")
    if r.directive is not None:
        out += f" # {r.directive.value}" + (f" {r.reason}" if r.reason else "")
    elif r.reason:
        out += f" # {r.reason}"
    return out


def render(b: Block, prefix: str = "", indent: str = INDENT) -> str:
    """The block as KTAP text, each nesting level prefixed by `indent` (two
    spaces; RUNNER_PREFIX gives kselftest runner style). Missing results are
    left out: they were never in any text."""
    return "\n".join(_render(b, prefix, indent)) + "\n"


def _render(b: Block, prefix: str, indent: str) -> list[str]:
    out = [prefix + b.version] if b.version else []
    if b.name:
        out.append(f"{prefix}# Subtest: {b.name}")
    if b.plan is not None:
        skip = b.plan.skip
        out.append(f"{prefix}1..{b.plan.count}"
                   + ("" if skip is None else " # SKIP" + (f" {skip}" if skip else "")))
    for r in b.results:
        if r.missing:
            continue
        # diagnostics first: after a nested block, a `# ` line would read as
        # the nested block's in runner style (runner.sh prints its own there too)
        out += [f"{prefix}# {d}".rstrip() for d in r.diagnostics]
        if r.subtests is not None:
            out += _render(r.subtests, prefix + indent, indent)
        out.append(prefix + result_line(r))
    out += [f"{prefix}# {d}".rstrip() for d in b.diagnostics]
    if b.bail_out is not None:
        out.append(f"{prefix}Bail out! {b.bail_out}".rstrip())
    return out
