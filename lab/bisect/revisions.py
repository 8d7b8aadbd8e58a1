"""The revisions a bisection walks: commits of a user's tree between
--good and --bad, or the prefixes of a series on a base. Read-only on the
user's repository (rev-parse, merge-base, rev-list, log): every build of a
revision happens in lab's own clone (lab/kernel/source.py)."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .. import proc
from ..errors import UserError
from ..kernel import source as ksource
from ..kernel.spec import BuildSpec

MAX_REVISIONS = 100_000
_FROM_LINE = re.compile(rb"^From ([0-9a-f]{40}) ")


@dataclass(frozen=True)
class Revision:
    index: int               # 0 the good endpoint ... n the bad one
    id: str                  # a commit id (tree), or "3/8" / "base" (series)
    label: str               # short, for tables and directory names
    subject: str
    author: str
    commit: str = ""         # the user's commit (tree), the patch's own commit if it says
    upto: int | None = None  # series: how many patches (0: the base)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Revision":
        return cls(**d)


@dataclass(frozen=True)
class Revisions:
    """What to build for each index: `spec(i)`."""

    mode: str                          # "tree" or "series"
    items: tuple[Revision, ...]
    base: BuildSpec                    # the source and fragments, no series
    series: tuple[str, ...] = ()
    series_hash: str = ""
    of: int = 0                        # the series' length

    @property
    def n(self) -> int:
        return len(self.items) - 1

    def spec(self, i: int) -> BuildSpec:
        r = self.items[i]
        if self.mode == "tree":
            return replace(self.base, ref=r.commit)
        if not r.upto:
            return self.base
        return replace(self.base, series=self.series, series_upto=r.upto)


def _git(repo: Path, *args: str) -> proc.Result:
    return proc.run(["git", "-C", str(repo), *args], timeout=ksource.GIT_TIMEOUT,
                    env=ksource.git_env())


def _rev(repo: Path, rev: str, field: str) -> str:
    r = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if not r.ok:
        raise UserError(f"revision {rev!r} does not exist in {repo} (valid: a branch, tag or "
                        "commit id of that repository)", field=field)
    return r.stdout.strip()


def _ancestor(repo: Path, a: str, b: str) -> bool:
    return _git(repo, "merge-base", "--is-ancestor", a, b).returncode == 0


def from_tree(tree: Path, good: str, bad: str, fragments: tuple[str, ...]) -> Revisions:
    """The first-parent line from --good (exclusive of what it contains) to
    --bad: index 0 is good, n is bad. Bad input (a revision that does not
    exist, good and bad swapped or unrelated, good off bad's first-parent
    line) is a UserError before anything is built."""
    top = ksource.resolve_git(tree, None).origin
    repo = Path(top)
    g, b = _rev(repo, good, "--good"), _rev(repo, bad, "--bad")
    if g == b:
        raise UserError(f"--good {good} and --bad {bad} are the same commit ({g[:12]})",
                        field="--bad")
    if not _ancestor(repo, g, b):
        if _ancestor(repo, b, g):
            raise UserError(f"--good {good} and --bad {bad} are swapped: {bad} ({b[:12]}) is "
                            f"an ancestor of {good} ({g[:12]}); --good must be the older "
                            f"revision (try --good {bad} --bad {good})", field="--good")
        mb = _git(repo, "merge-base", g, b).stdout.strip()
        raise UserError(f"--good {good} ({g[:12]}) is not an ancestor of --bad {bad} "
                        f"({b[:12]}): unrelated revisions"
                        + (f" (their merge base is {mb[:12]})" if mb else " (no common history)"),
                        field="--good")
    r = _git(repo, "log", "--first-parent", "--format=%H%x00%s%x00%an <%ae>",
             f"--max-count={MAX_REVISIONS + 1}", f"{g}..{b}")
    if not r.ok:
        raise UserError(f"cannot list the commits {g[:12]}..{b[:12]} of {repo}: {r.tail(3)}",
                        field="--bad")
    rows = [line.split("\x00") for line in r.stdout.splitlines() if line]
    if len(rows) > MAX_REVISIONS:
        raise UserError(f"more than {MAX_REVISIONS} commits between --good and --bad",
                        field="--good")
    rows.reverse()
    first_parent = _git(repo, "rev-parse", f"{rows[0][0]}^").stdout.strip()
    if first_parent != g:
        raise UserError(f"--good {good} ({g[:12]}) is not on the first-parent line of --bad "
                        f"{bad}: it is on a branch merged into it. Give a --good of that line "
                        f"(e.g. {first_parent[:12]}), or bisect the branch with its tip as "
                        "--bad", field="--good")
    head = _git(repo, "log", "-1", "--format=%s%x00%an <%ae>", g).stdout.rstrip("\n")
    subj, _, author = head.partition("\x00")
    items = [Revision(0, g, g[:12], subj, author, g)]
    items += [Revision(i, h, h[:12], s, a, h) for i, (h, s, a) in enumerate(rows, 1)]
    base = BuildSpec(tree=repo, ref=g, fragments=fragments)
    return Revisions("tree", tuple(items), base)


def _author(raw: bytes) -> str:
    body = raw.split(b"\n", 1)[1] if raw.startswith(b"From ") else raw
    msg = email.message_from_bytes(body, policy=email.policy.default)
    return str(msg.get("From", "") or "")


def from_series(base: BuildSpec, series: tuple[str, ...], good: str | None,
                bad: str | None) -> Revisions:
    """Prefixes of the series on `base`: index 0 is --good (default 0, the
    base without the series), n is --bad (default the whole series)."""
    from ..kernel.api import plan
    p = plan(replace(base, series=series))
    s = p.series
    total = len(s.patches)
    lo = _prefix(good, total, "--good", 0)
    hi = _prefix(bad, total, "--bad", total)
    if lo >= hi:
        raise UserError(f"--good {lo} must be a shorter prefix than --bad {hi} (patches "
                        f"1..{lo} are good, 1..{hi} bad; 0 is the base)", field="--good")
    items = []
    for k in range(lo, hi + 1):
        if k == 0:
            items.append(Revision(0, "base", "base", f"the base: {p.tree.describe()}", "",
                                  p.tree.base, 0))
            continue
        patch = s.patches[k - 1]
        m = _FROM_LINE.match(patch.raw)
        own = m.group(1).decode() if m and set(m.group(1)) != {ord("0")} else ""
        items.append(Revision(k - lo, f"{k}/{total}", f"{k}of{total}", patch.title,
                              _author(patch.raw), own, k))
    return Revisions("series", tuple(items), replace(base, series=(), series_upto=None),
                     tuple(series), s.hash, total)


def _prefix(value: str | None, total: int, field: str, default: int) -> int:
    if value is None:
        return default
    if not str(value).isdigit() or int(value) > total:
        raise UserError(f"{value!r} is not a prefix of the series; valid: 0..{total} (the "
                        "number of patches applied; 0 is the base)", field=field)
    return int(value)
