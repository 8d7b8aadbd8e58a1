"""What to build: a source (git tree + ref, or Debian's linux-source tarball),
a patch series and config fragments. Validated from a job-file block:

    build: {tree: ~/linux, ref: v6.1, series: kernels/series/gup.mbox,
            fragments: [lab, debug]}
    build: {linux_source: true, fragments: [lab]}
    build: {linux_source: true, series: outgoing/, series_upto: 2}   # patches 1..2 only
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from pathlib import Path

from .. import validate
from ..errors import UserError

DEFAULT_FRAGMENTS = ("lab", "debug")
_KEYS = {
    "tree": "path of a kernel git repository",
    "ref": "branch, tag or commit of that repository (default HEAD)",
    "linux_source": "true: build Debian's linux-source tarball",
    "series": "mbox, directory of patches, patch file, git range A..B, or a list of these",
    "series_upto": "N: apply only patches 1..N of the series, on purpose (e.g. to bisect "
                   "inside it); the later ones may be absent",
    "fragments": "list of config fragments: names in kernels/fragments or paths",
}


@dataclass(frozen=True)
class BuildSpec:
    tree: Path | None = None
    ref: str | None = None
    linux_source: bool = False
    series: tuple[str, ...] = ()
    fragments: tuple[str, ...] = DEFAULT_FRAGMENTS
    series_upto: int | None = None
    # where series_upto was given (file or None, field), for its range error;
    # not part of the spec's identity
    upto_at: tuple[str | None, str] = dc_field(default=(None, "series_upto"), compare=False)

    def __post_init__(self):
        if self.tree is not None and self.linux_source:
            raise UserError("give either tree or linux_source, not both", field="tree")
        if self.tree is None and not self.linux_source:
            raise UserError("a build needs a source: tree: PATH or linux_source: true",
                            field="tree")
        if self.ref is not None and self.tree is None:
            raise UserError("ref needs tree (the linux-source tarball has no refs)",
                            field="ref")
        if self.series_upto is not None:
            if not self.series:
                raise UserError("series_upto needs a series (it says how many of its "
                                "patches to apply)", field="series_upto")
            check_upto(self.series_upto, file=None, field="series_upto")

    @classmethod
    def from_dict(cls, d: dict, *, file: str, field: str) -> "BuildSpec":
        if not isinstance(d, dict):
            raise UserError(f"must be a mapping with keys {', '.join(_KEYS)}", file=file,
                            field=field)
        unknown = sorted(map(str, set(d) - set(_KEYS)))
        if unknown:
            valid = "; ".join(f"{k} ({v})" for k, v in _KEYS.items())
            raise UserError(f"unknown key(s) {', '.join(map(str, unknown))}; valid: {valid}",
                            file=file, field=f"{field}.{unknown[0]}")

        def sub(k: str) -> str:
            return f"{field}.{k}"

        tree = d.get("tree")
        if tree is not None:
            validate.path_text(tree, file=file, field=sub("tree"))
        ref = d.get("ref")
        if ref is not None:
            if isinstance(ref, (int, float)) and not isinstance(ref, bool):
                ref = str(ref)
            if not isinstance(ref, str) or not ref:
                raise UserError("must be a branch, tag or commit (a string)", file=file,
                                field=sub("ref"))
        ls = d.get("linux_source", False)
        if not isinstance(ls, bool):
            raise UserError("must be true or false", file=file, field=sub("linux_source"))
        series = _str_list(d.get("series"), file, sub("series"))
        upto = d.get("series_upto")
        if upto is not None:
            check_upto(upto, file=file, field=sub("series_upto"))
        base = Path(file).parent if file else Path(".")
        fragments = (fragment_list(d["fragments"], file=file, field=sub("fragments"),
                                   base=base) if "fragments" in d else ())
        tree_path = _rel(tree, base) if tree else None
        series = tuple(s if ".." in s and not _rel(s, base).exists() else str(_rel(s, base))
                       for s in series)
        try:
            return cls(tree=tree_path, ref=ref, linux_source=ls, series=series,
                       fragments=fragments or DEFAULT_FRAGMENTS, series_upto=upto,
                       upto_at=(file or None, sub("series_upto")))
        except UserError as e:
            raise UserError(str(e).split(": ", 1)[-1], file=file,
                            field=f"{field}.{e.field}" if e.field else field) from None

    def describe(self) -> str:
        src = f"{self.tree}@{self.ref or 'HEAD'}" if self.tree else "linux-source"
        s = f" + {', '.join(self.series)}" if self.series else ""
        if self.series_upto is not None:
            s += f" (patches 1..{self.series_upto})"
        return f"{src}{s} [{', '.join(self.fragments)}]"


def check_upto(value, *, file: str | None, field: str) -> int:
    """series_upto / --series-upto: a whole number from 1 (the series' length,
    the upper bound, is checked when the series is read)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"must be a whole number N >= 1, got {value!r} (valid: 1..the number "
                        "of patches in the series: apply patches 1..N)", file=file, field=field)
    return value


def fragment_list(raw, *, file: str, field: str, base: Path) -> tuple[str, ...]:
    """Config fragments as a job names them: names in kernels/fragments, or
    paths (relative to the job file's directory when they exist there)."""
    fragments = _str_list(raw, file, field)
    if not fragments:
        raise UserError("must name at least one fragment (e.g. [lab])", file=file, field=field)
    return tuple(str(_rel(f, base)) if ("/" in f or f.endswith(".config")) else f
                 for f in fragments)


def _str_list(v, file: str, field: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (validate.path_text(v, file=file, field=field),)
    if isinstance(v, list) and all(isinstance(x, str) and x for x in v):
        for i, x in enumerate(v):
            validate.path_text(x, file=file, field=f"{field}[{i}]")
        return tuple(v)
    raise UserError("must be a string or a list of strings", file=file, field=field)


def _rel(p: str, base: Path) -> Path:
    """A relative path is taken from the job file's directory when it exists
    there, else from the current directory."""
    path = Path(p).expanduser()
    if path.is_absolute() or not (base / path).exists():
        return path
    return base / path
