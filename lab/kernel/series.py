"""Patch series: parsed by their subjects, checked, hashed, applied.

A series comes from an mbox file, a directory of `git format-patch` files,
a list of patch files, or a git range (`base..tip` in the source repository).
Its patches are ordered by the `n/m` of their subjects (`[PATCH v5 2/3] ...`);
a cover letter (0/m) is dropped; missing and duplicate patches are errors,
unless a prefix is asked for on purpose (`upto`: patches 1..N of the series,
as bisecting inside a series needs; the later ones may then be absent).
A series is identified by a hash of its patches (subject and diff), not by a
file name, so a resend with new dates is the same series.

Parsing is pure (`parse_messages`, `check`); `load_series` reads files and
`apply_series` commits the patches in lab's own repository (as git am would,
but in a temporary index: see `commit_series`) and checks the result out.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .. import proc
from ..errors import InfraError, UserError
from .outcome import Step, StepResult, StepState
from . import source

# the "From " line git format-patch and mail archives put before each message
_FROM_LINE = re.compile(rb"^From \S+ +\w{3} \w{3} +\d+ \d+:\d+:\d+ \d{4}\s*$", re.M)
_PREFIX = re.compile(r"^\s*\[([^\]]*)\]\s*")
_NUM = re.compile(r"^(\d+)/(\d+)$")
_VERSION = re.compile(r"^[vV](\d+)$")
_DIFF_START = re.compile(rb"^(diff --git |--- \S|Index: )", re.M)
PATCH_SUFFIXES = (".patch", ".diff", ".mbox", ".mbx", ".eml")


@dataclass(frozen=True)
class Patch:
    subject: str         # the full Subject: header
    title: str           # the subject without its [PATCH ...] prefix
    number: int | None   # n of n/m, None when unnumbered
    total: int | None    # m of n/m
    version: int         # vN, 1 when absent
    origin: str          # "file" or "file#k" (k-th message of an mbox)
    raw: bytes           # the message as git am reads it (with a From line)
    diff: bytes          # the diff part

    @property
    def label(self) -> str:
        n = f" {self.number}/{self.total}" if self.number is not None else ""
        v = f" v{self.version}" if self.version > 1 else ""
        return f"[PATCH{v}{n}] {self.title}"


@dataclass(frozen=True)
class Series:
    patches: tuple[Patch, ...]
    sources: tuple[str, ...]
    hash: str
    cover: str = ""      # the cover letter's title, if any
    of: int = 0          # the whole series' length when `patches` is a prefix of it

    @property
    def subjects(self) -> list[str]:
        return [p.label for p in self.patches]

    @property
    def patchset_hash(self) -> str:
        """KernelCI's (KCIDB) patchset hash: the sha256 of the newline-terminated
        sha256 hex digests of each patch as applied, in order
        (`sha256sum *.patch | cut -c-64 | sha256sum`)."""
        lines = "".join(hashlib.sha256(p.raw).hexdigest() + "\n" for p in self.patches)
        return hashlib.sha256(lines.encode()).hexdigest()

    @property
    def prefix(self) -> str:
        """'patches 1..2 of 4' when only a prefix is applied, else ''."""
        if self.of > len(self.patches):
            return f"patches 1..{len(self.patches)} of {self.of}"
        return ""

    @property
    def name(self) -> str:
        if self.cover:
            return self.cover
        first = self.patches[0]
        more = f" (+{len(self.patches) - 1} more)" if len(self.patches) > 1 else ""
        return first.title + more


# --- pure -------------------------------------------------------------------

def split_mbox(data: bytes) -> list[bytes]:
    """Messages of an mbox; a file without From lines is one message."""
    starts = [m.start() for m in _FROM_LINE.finditer(data)]
    if not starts:
        return [data] if data.strip() else []
    if data[:starts[0]].strip():
        starts.insert(0, 0)
    ends = starts[1:] + [len(data)]
    return [data[s:e] for s, e in zip(starts, ends) if data[s:e].strip()]


def parse_subject(subject: str) -> tuple[str, int | None, int | None, int, bool]:
    """'[RFC][PATCH v5 2/3] mm: x' -> ('mm: x', 2, 3, 5, is_patch_prefix)."""
    subject = " ".join(subject.split())
    number = total = None
    version = 1
    tagged = False
    rest = subject
    while True:
        m = _PREFIX.match(rest)
        if not m:
            break
        for tok in m.group(1).replace(",", " ").split():
            if tok.upper() in ("PATCH", "RFC", "RESEND") or tok.upper().startswith("PATCH"):
                tagged = True
            if (n := _NUM.match(tok)):
                number, total = int(n.group(1)), int(n.group(2))
            elif (v := _VERSION.match(tok)):
                version = int(v.group(1))
        rest = rest[m.end():]
    return rest.strip(), number, total, version, tagged


def parse_message(raw: bytes, origin: str) -> Patch | None:
    """One message -> a Patch, or None for a message with no diff (cover letter)."""
    body_start = raw.find(b"\n") + 1 if raw.startswith(b"From ") else 0
    msg = email.message_from_bytes(raw[body_start:], policy=email.policy.default)
    subject = str(msg.get("Subject", "") or "").strip()
    dm = _DIFF_START.search(raw)
    if dm is None:
        return None
    diff = raw[dm.start():]
    # drop the trailing "-- \n2.39.5" signature git format-patch adds
    diff = re.split(rb"^-- \n", diff, maxsplit=1, flags=re.M)[0].rstrip(b"\n") + b"\n"
    title, number, total, version, _ = parse_subject(subject)
    if not raw.startswith(b"From "):
        raw = b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n" + raw
    if not subject:
        title = origin
    return Patch(subject=subject, title=title, number=number, total=total, version=version,
                 origin=origin, raw=raw, diff=diff)


def series_hash(patches: list[Patch] | tuple[Patch, ...]) -> str:
    h = hashlib.sha256(b"lab-series-v1\n")
    for p in patches:
        h.update(p.title.encode() + b"\n")
        h.update(hashlib.sha256(p.diff).digest())
    return h.hexdigest()[:16]


def check(patches: list[Patch], covers: list[tuple[str, str]], where: str, *,
          upto: int | None = None,
          upto_at: tuple[str | None, str] = (None, "series_upto")) -> Series:
    """Order by n/m, refuse missing or duplicate patches or mixed versions.

    With `upto` N only patches 1..N are the series (and must all be there);
    `upto_at` is the (file, field) that gave N, for the error when N is out
    of range."""
    if not patches:
        raise UserError("holds no patch (no message with a diff)", file=where)
    versions = sorted({p.version for p in patches})
    if len(versions) > 1:
        raise UserError("mixes versions " + ", ".join(f"v{v}" for v in versions)
                        + " of a series (give one version)", file=where)
    numbered = [p for p in patches if p.number is not None]
    if numbered:
        if len(numbered) != len(patches):
            loose = [p.origin for p in patches if p.number is None]
            raise UserError("mixes numbered and unnumbered patches (unnumbered: "
                            + ", ".join(loose) + ")", file=where)
        totals = sorted({p.total for p in numbered})
        if len(totals) > 1:
            raise UserError("patches belong to series of different lengths (" +
                            ", ".join(f"n/{t}" for t in totals) + ")", file=where)
        total = totals[0]
        _check_upto(upto, total, where, upto_at)
        want = upto or total
        seen: dict[int, Patch] = {}
        problems = []
        for p in numbered:
            if p.number in seen:
                problems.append(f"duplicate patch {p.number}/{total}: '{seen[p.number].title}' "
                                f"({seen[p.number].origin}) and '{p.title}' ({p.origin})")
            elif p.number < 1 or p.number > total:
                problems.append(f"patch number {p.number}/{total} out of range ({p.origin})")
            else:
                seen[p.number] = p
        missing = [n for n in range(1, want + 1) if n not in seen]
        if missing:
            problems.append("missing patch(es) " + ", ".join(f"{n}/{total}" for n in missing)
                            + _missing_hint(missing[0] - 1, total, upto))
        if problems:
            raise UserError("; ".join(problems), file=where)
        ordered = [seen[n] for n in range(1, want + 1)]
    else:
        total = len(patches)
        _check_upto(upto, total, where, upto_at)
        ordered = list(patches)
        byhash: dict[bytes, Patch] = {}
        for p in ordered:
            k = hashlib.sha256(p.diff).digest()
            if k in byhash:
                raise UserError(f"duplicate patch: '{p.title}' ({p.origin}) has the same diff "
                                f"as '{byhash[k].title}' ({byhash[k].origin})", file=where)
            byhash[k] = p
        ordered = ordered[:upto or total]
    cover = covers[0][0] if covers else ""
    return Series(patches=tuple(ordered), sources=(), hash=series_hash(ordered), cover=cover,
                  of=total)


def _check_upto(upto: int | None, total: int, where: str,
                at: tuple[str | None, str]) -> None:
    if upto is not None and not 1 <= upto <= total:
        file, field = at
        raise UserError(f"is {upto}, but the series ({where}) has {total} patch(es); "
                        f"valid: 1..{total} (apply patches 1..N of it)", file=file,
                        field=field)


def _missing_hint(have: int, total: int, upto: int | None) -> str:
    """How to say 'this prefix on purpose', when patches 1..have are there."""
    if upto is not None:
        return f" (patches 1..{upto} were asked for, so each of them must be there)"
    if have < 1:
        return ""
    return (f" (to apply only patches 1..{have} of {total} on purpose, e.g. to bisect inside "
            f"the series: --series-upto {have}, or series_upto: {have} in a job's build "
            "block)")


def parse_messages(messages: list[tuple[bytes, str]], where: str, **upto) -> Series:
    patches, covers = [], []
    for raw, origin in messages:
        p = parse_message(raw, origin)
        if p is not None:
            patches.append(p)
        else:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            subj = str(msg.get("Subject", "") or "")
            title, number, _, _, _ = parse_subject(subj)
            if number == 0 or subj:
                covers.append((title, origin))
    return check(patches, covers, where, **upto)


# --- reading series ---------------------------------------------------------

def is_range(s: str) -> bool:
    return ".." in s and not Path(s).exists()


def _read_file(p: Path, where: str) -> list[tuple[bytes, str]]:
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read series file {p}: {e.strerror}", file=where) from e
    msgs = split_mbox(data)
    if len(msgs) == 1:
        return [(msgs[0], str(p))]
    return [(m, f"{p}#{i}") for i, m in enumerate(msgs, 1)]


def messages_of(entry: str, repo: Path | None, *, file: str = "",
                field: str = "series") -> list[tuple[bytes, str]]:
    """The messages one series entry (file, directory or git range) holds."""
    where = file or entry
    if is_range(entry):
        if repo is None:
            raise UserError(f"'{entry}' looks like a git range, but the source is not a git "
                            "tree (valid: an mbox, a directory of patches, patch files)",
                            file=file or None, field=field)
        r = source.git(repo, "format-patch", "--stdout", "--no-signature", entry, check=False)
        if not r.ok:
            raise UserError(f"git range '{entry}' is not valid in {repo}: {r.tail(3)}",
                            file=file or None, field=field)
        return [(m, f"{entry}#{i}") for i, m in enumerate(split_mbox(r.stdout.encode()), 1)]
    p = Path(entry).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in PATCH_SUFFIXES)
        if not files:
            raise UserError(f"directory {p} holds no patch file ({', '.join(PATCH_SUFFIXES)})",
                            file=file or str(p), field=field if file else None)
        out = []
        for f in files:
            out.extend(_read_file(f, where))
        return out
    if not p.exists():
        raise UserError(f"series {p} does not exist (valid: an mbox file, a directory of "
                        "git format-patch files, patch files, or a git range A..B)",
                        file=file or None, field=field)
    return _read_file(p, where)


def load_series(entries: tuple[str, ...] | list[str], repo: Path | None = None, *,
                file: str = "", field: str = "series", upto: int | None = None,
                upto_at: tuple[str | None, str] = (None, "series_upto")) -> Series | None:
    """All entries together form one series (a list of patch files, an mbox,
    a directory, a range); None when there are none. With `upto` N, patches
    1..N of it (see `check`)."""
    if not entries:
        return None
    messages = []
    for e in entries:
        got = messages_of(e, repo, file=file, field=field)
        if not any(_DIFF_START.search(raw) for raw, _ in got):
            what = f"series entry {e} holds" if file else "holds"
            raise UserError(f"{what} no patch (no message with a diff)",
                            file=file or e, field=field if file else None)
        messages.extend(got)
    where = file or (entries[0] if len(entries) == 1 else ", ".join(entries))
    s = parse_messages(messages, where, upto=upto, upto_at=upto_at)
    return replace(s, sources=tuple(entries))


# --- applying ---------------------------------------------------------------

def applied_ref(base: str, series: Series) -> str:
    return prefix_ref(base, series.hash)


def prefix_ref(base: str, series_hash_: str) -> str:
    return f"refs/lab/applied/{base[:16]}-{series_hash_}"


# the committer of the commits lab makes of a series: fixed, so applying the
# same patches on the same base always gives the same commit ids
_COMMITTER = {"GIT_COMMITTER_NAME": "lab", "GIT_COMMITTER_EMAIL": "lab@localhost",
              "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}


def _recorded(repo: Path, ref: str) -> str:
    r = source.git(repo, "rev-parse", "--verify", "--quiet", ref, check=False)
    return r.stdout.strip() if r.ok else ""


def _mailinfo(repo: Path, patch: Patch, td: Path) -> tuple[dict[str, str], Path, Path]:
    """`git mailinfo` of one message, as git am runs it: the author, the
    commit message (the subject without its [PATCH] prefix, then the body)
    and the diff, in files under `td`."""
    raw = patch.raw.split(b"\n", 1)[1] if patch.raw.startswith(b"From ") else patch.raw
    try:
        text, exact = raw.decode("utf-8"), True
    except UnicodeDecodeError:     # proc.run speaks text: keep the bytes for git apply
        text, exact = raw.decode("latin-1"), False
    msg, diff = td / "msg", td / "patch"
    r = proc.run(["git", "-C", str(repo), "mailinfo", "-u", str(msg), str(diff)],
                 timeout=source.GIT_TIMEOUT, env=source.git_env(), input=text)
    if not r.ok:
        raise InfraError(f"git mailinfo failed on {patch.origin} (exit {r.returncode}):\n"
                         + r.tail())
    info = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    body = msg.read_text(errors="replace").strip()
    message = td / "message"
    message.write_text(info.get("Subject", patch.title) + ("\n\n" + body if body else "")
                       + "\n")
    env = {"GIT_AUTHOR_NAME": info.get("Author") or "unknown",
           "GIT_AUTHOR_EMAIL": info.get("Email") or "unknown",
           **({"GIT_AUTHOR_DATE": info["Date"]} if info.get("Date") else {})}
    if not exact:
        diff.write_bytes(raw)      # git apply finds the diff inside the message
    return env, message, diff


def commit_series(repo: Path, base: str, series: Series) -> tuple[str, int, str]:
    """The commit of base + each patch of `series`, made without touching the
    working tree: each patch is applied to a temporary index (`git apply
    --cached`), written as a tree and committed with its author, date and
    message (`git commit-tree`), as git am would. The commit of every prefix
    is recorded under refs/lab/applied/, and the longest prefix already
    recorded is where it starts, so a bisection's steps apply each patch once.

    Returns (commit, -1, "") or, when patch i (0-based) does not apply,
    (the commit of patches 1..i, i, what git apply said)."""
    refs = [prefix_ref(base, series_hash(series.patches[:k]))
            for k in range(1, len(series.patches) + 1)]
    done, parent = 0, base
    for k in range(len(refs), 0, -1):
        found = _recorded(repo, refs[k - 1])
        if found:
            done, parent = k, found
            break
    if done == len(refs):
        return parent, -1, ""
    with tempfile.TemporaryDirectory(prefix="lab-series-") as tdn:
        td = Path(tdn)
        index = {"GIT_INDEX_FILE": str(td / "index")}
        source.git(repo, "read-tree", parent, env=index)
        for i in range(done, len(refs)):
            patch = series.patches[i]
            author, message, diff = _mailinfo(repo, patch, td)
            r = source.git(repo, "apply", "--cached", "--whitespace=nowarn", str(diff),
                           env=index, check=False)
            if not r.ok:
                why = source.git(repo, "apply", "--cached", "--check", "--verbose",
                                 str(diff), env=index, check=False)
                return parent, i, (why.stdout + why.stderr).strip() or r.tail()
            tree = source.git(repo, "write-tree", env=index).stdout.strip()
            parent = source.git(repo, "commit-tree", tree, "-p", parent, "-F", str(message),
                                env={**index, **author, **_COMMITTER}).stdout.strip()
            source.git(repo, "update-ref", refs[i], parent)
    return parent, -1, ""


def apply_series(repo: Path, base: str, series: Series | None) -> tuple[StepResult, str]:
    """Move lab's working tree to base + `series`.

    The commit is made first, without touching the working tree
    (`commit_series`); then one checkout moves the tree from wherever the
    previous build left it, rewriting only the files that differ. So moving
    between two prefixes of a series, or between two series on one base,
    gives only the files that really changed a new mtime, and kbuild
    recompiles only what depends on them. A patch that does not apply leaves
    the working tree as it was.

    Returns the apply step's result and the resulting commit."""
    start = time.monotonic()
    if series is None:
        source.checkout(repo, base)
        return StepResult(Step.APPLY, StepState.OK, time.monotonic() - start,
                          message="no series: base tree"), base
    props = {"series_hash": series.hash, "patches": str(len(series.patches))}
    if series.prefix:
        props["series_prefix"] = series.prefix
    applied = f"{len(series.patches)} patch(es) applied" + (f" ({series.prefix})"
                                                             if series.prefix else "")
    recorded = bool(_recorded(repo, applied_ref(base, series)))
    commit, failed_at, said = commit_series(repo, base, series)
    if failed_at < 0:
        source.checkout(repo, commit)
        return StepResult(Step.APPLY, StepState.OK, time.monotonic() - start,
                          message=applied + (" (recorded)" if recorded else ""),
                          output="\n".join(series.subjects), properties=props), commit
    failed = series.patches[failed_at]
    onto = base[:12] + (f" + patches 1..{failed_at}" if failed_at else "")
    props["failed_patch"] = failed.label
    details = (f"{failed.label} ({failed.origin}) does not apply to {onto}\n\n"
               f"git apply --cached --check --verbose said:\n{_hunk_report(said)}")
    return StepResult(Step.APPLY, StepState.FAILED, time.monotonic() - start,
                      message=f"patch {failed_at + 1}/{series.of or len(series.patches)} does "
                              f"not apply: {failed.label}",
                      details=details, properties=props), ""


def _hunk_report(text: str) -> str:
    """git apply --check --verbose output -> which hunks failed and the
    context git searched for."""
    keep, searching = [], False
    for line in text.splitlines():
        if line.startswith("error: while searching for:"):
            searching = True
            keep.append(line)
            continue
        if re.match(r"(Checking patch|Applying patch|Rejected hunk|Hunk #|error:)", line):
            searching = False
            keep.append(line)
        elif searching:
            keep.append("    | " + line)
    return "\n".join("  " + line for line in keep) or "  (git apply gave no hunk details)"
