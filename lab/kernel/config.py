"""Kernel configs: a base (defconfig + kvm_guest.config) merged with config
fragments (by name: $LAB_FRAGMENTS_DIR's, then lab's kernels/fragments; or
by path), completed by olddefconfig, then
checked: every symbol a fragment asks for must have the value it asked for,
and one that was dropped is reported by name, file and line.

Parsing, merging and checking are pure; `make_config` runs kbuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InfraError, UserError
from ..paths import FRAGMENTS, data_path
from .kbuild import KBuild

FRAGMENTS_DIR = FRAGMENTS.builtin    # lab's own fragments
# the base config: kbuild targets run in order before the fragments are merged
BASE_TARGETS = ("defconfig", "kvm_guest.config")
CONFIG_TIMEOUT = 900

_ASSIGN = re.compile(r'^CONFIG_([A-Za-z0-9_]+)=(.*)$')
_NOT_SET = re.compile(r'^# CONFIG_([A-Za-z0-9_]+) is not set\s*$')
_VALUE = re.compile(r'^(y|m|n|-?\d+|0x[0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$')


@dataclass(frozen=True)
class Assignment:
    symbol: str          # without CONFIG_
    value: str           # y, m, n (for "is not set"), a number, or a quoted string
    file: str
    line: int

    def render(self) -> str:
        if self.value == "n":
            return f"# CONFIG_{self.symbol} is not set"
        return f"CONFIG_{self.symbol}={self.value}"


@dataclass(frozen=True)
class Fragment:
    name: str
    path: Path
    text: str
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class Dropped:
    want: Assignment
    got: str             # the value in the final .config, "n" when not set / absent
    defined_in: str      # Kconfig file:line that defines the symbol, "" if unknown

    def describe(self) -> str:
        got = "not set" if self.got == "n" else self.got
        where = f" (see 'config {self.want.symbol}' in {self.defined_in}: its " \
                "dependencies are not met or it is selected otherwise)" if self.defined_in else ""
        return (f"{self.want.file}:{self.want.line}: CONFIG_{self.want.symbol}="
                f"{self.want.value} was dropped: the final .config has {got}{where}")


# --- pure -----------------------------------------------------------------

def parse_fragment(text: str, file: str) -> tuple[Assignment, ...]:
    """Lines of a config fragment; a syntax error is a UserError naming file:line."""
    out: dict[str, Assignment] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _NOT_SET.match(line)
        if m:
            a = Assignment(m.group(1), "n", file, n)
        elif line.startswith("#"):
            continue
        else:
            m = _ASSIGN.match(line)
            if not m:
                raise UserError(f"not a config line: {raw!r} (valid: CONFIG_FOO=y|m|n|<number>|"
                                "\"string\", '# CONFIG_FOO is not set', or a # comment)",
                                file=file, line=n)
            value = m.group(2).strip()
            if not _VALUE.match(value):
                raise UserError(f"bad value {value!r} for CONFIG_{m.group(1)} (valid: y, m, n, "
                                "a number, or a double-quoted string)", file=file, line=n)
            a = Assignment(m.group(1), value, file, n)
        prev = out.get(a.symbol)
        if prev and prev.value != a.value:
            raise UserError(f"CONFIG_{a.symbol} is set twice: {prev.value} at line {prev.line} "
                            f"and {a.value} here", file=file, line=n)
        out[a.symbol] = a
    return tuple(out.values())


def parse_config(text: str) -> dict[str, str]:
    """A .config as {symbol: value}; 'is not set' symbols map to 'n'."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _ASSIGN.match(line)
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = _NOT_SET.match(line)
        if m:
            out[m.group(1)] = "n"
    return out


def effective(fragments: list[Fragment]) -> dict[str, Assignment]:
    """What the fragments ask for, later fragments winning."""
    want: dict[str, Assignment] = {}
    for f in fragments:
        for a in f.assignments:
            want[a.symbol] = a
    return want


def merge(base: str, fragments: list[Fragment]) -> str:
    """The base .config with every fragment assignment applied."""
    want = effective(fragments)
    lines = []
    for line in base.splitlines():
        m = _ASSIGN.match(line) or _NOT_SET.match(line)
        if m and m.group(1) in want:
            continue
        lines.append(line)
    lines.append("# --- lab fragments: " + ", ".join(f.name for f in fragments))
    lines.extend(a.render() for a in want.values())
    return "\n".join(lines) + "\n"


def check(final: dict[str, str], fragments: list[Fragment],
          kconfig_locations: dict[str, str]) -> list[Dropped]:
    """Every requested symbol whose final value differs from the request.

    A request for m satisfied by y (something selects it) is not a drop."""
    dropped = []
    for a in effective(fragments).values():
        got = final.get(a.symbol, "n")
        if got == a.value or (a.value == "m" and got == "y"):
            continue
        dropped.append(Dropped(a, got, kconfig_locations.get(a.symbol, "")))
    return dropped


def unknown_symbols(fragments: list[Fragment], known: set[str]) -> list[Assignment]:
    return [a for f in fragments for a in f.assignments if a.symbol not in known]


def canonical(fragments: list[Fragment], base: tuple[str, ...] = BASE_TARGETS) -> str:
    """What a configuration is, independent of how its fragments were named or
    where their files live: the base targets, then every symbol the fragments
    ask for with the value that wins (a later fragment overrides an earlier
    one), sorted by symbol. Fragment order matters only where two fragments
    set one symbol differently, which is exactly where it changes the .config;
    comments, blank lines and restated values do not count."""
    lines = ["base " + "+".join(base)]
    lines += [f"CONFIG_{sym}={a.value}" for sym, a in sorted(effective(fragments).items())]
    return "\n".join(lines) + "\n"


def config_key(fragments: list[Fragment], base: tuple[str, ...] = BASE_TARGETS) -> str:
    """The configuration's identity: a hash of `canonical` (pure, reads no file)."""
    return hashlib.sha256(b"lab-config-v2\n" + canonical(fragments, base).encode()
                          ).hexdigest()[:16]


# --- fragments on disk -----------------------------------------------------

def available() -> list[str]:
    return FRAGMENTS.names()


def load_fragment(name: str, *, file: str = "", field: str = "fragments") -> Fragment:
    """A fragment by name ('lab' -> lab.config in $LAB_FRAGMENTS_DIR's
    directories, then in lab's kernels/fragments) or by path."""
    p = Path(name).expanduser()
    by_name = None
    if not (p.suffix == ".config" or os.sep in name) or not p.is_file():
        by_name = FRAGMENTS.find(name)
        if by_name:
            p = by_name
        elif not p.is_file():
            raise UserError(f"unknown config fragment '{name}' (valid: "
                            f"{', '.join(available())}, or a path to a .config fragment; "
                            f"names are looked up in {FRAGMENTS.where()})",
                            file=file or None, field=field)
    try:
        text = p.read_text()
    except OSError as e:
        raise UserError(f"cannot read config fragment {p}: {e.strerror}",
                        file=file or None, field=field) from e
    shown = display_path(p)
    return Fragment(name=p.stem if by_name or in_fragments_dir(p) else shown, path=p,
                    text=text, assignments=parse_fragment(text, shown))


def in_fragments_dir(p: Path) -> bool:
    """A file of lab's own kernels/fragments, however the path to it was
    spelled."""
    return p.resolve().parent == FRAGMENTS_DIR.resolve()


def load_fragments(names: tuple[str, ...] | list[str], **kw) -> list[Fragment]:
    return [load_fragment(n, **kw) for n in names]


def display_path(p: Path) -> str:
    """kernels/fragments/NAME.config for lab's own fragments (wherever lab is
    installed), the path as given for any other."""
    return data_path(p) or str(p)


# --- effects: kbuild --------------------------------------------------------

def kconfig_symbols(srctree: Path) -> dict[str, str]:
    """Every symbol some Kconfig file defines -> 'file:line' of its definition."""
    from .source import git
    r = git(srctree, "grep", "-n", "-E", r"^\s*(menu)?config\s+[A-Za-z0-9_]+\s*$",
            "--", "*Kconfig*", check=False)
    out: dict[str, str] = {}
    for line in r.stdout.splitlines():
        path, lineno, text = line.split(":", 2)
        sym = text.split()[-1]
        out.setdefault(sym, f"{path}:{lineno}")
    return out


def config_inputs_key(srctree: Path, fragments: list[Fragment]) -> str:
    """What the .config depends on: the fragments and every Kconfig/defconfig
    blob of the tree. Cheap (one git ls-tree), so an unchanged config is not
    regenerated and its mtime stays put."""
    from .source import git
    r = git(srctree, "ls-tree", "-r", "HEAD", check=False)
    h = hashlib.sha256(config_key(fragments).encode())
    for line in r.stdout.splitlines():
        meta, _, path = line.partition("\t")
        name = path.rsplit("/", 1)[-1]
        if (name.startswith("Kconfig") or path.startswith(("arch/x86/configs/", "kernel/configs/",
                                                           "scripts/kconfig/"))
                or path == "Makefile"):
            h.update(line.encode() + b"\n")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ConfigResult:
    path: Path               # <objtree>/.config
    sha: str                 # sha256 of the final .config
    regenerated: bool
    log: str


def make_config(kb: KBuild, fragments: list[Fragment], *, log: Path | None = None
                ) -> ConfigResult:
    """Generate <objtree>/.config; keep the old file (and its mtime) when the
    result is the same, so an unchanged config costs kbuild nothing."""
    dot = kb.objtree / ".config"
    state_file = kb.objtree / ".lab-config.json"
    key = config_inputs_key(kb.srctree, fragments)
    old = dot.read_bytes() if dot.exists() else None
    if old is not None and state_file.exists():
        state = json.loads(state_file.read_text())
        if state.get("inputs") == key and state.get("sha") == _sha(old):
            return ConfigResult(dot, _sha(old), False, "config inputs unchanged")
    old_times = (dot.stat().st_atime_ns, dot.stat().st_mtime_ns) if old is not None else None

    symbols = kconfig_symbols(kb.srctree)
    if symbols:
        unknown = unknown_symbols(fragments, set(symbols))
        if unknown:
            raise UserError("unknown config symbol(s), no Kconfig file in "
                            f"{kb.srctree} defines them:\n" + "\n".join(
                                f"  {a.file}:{a.line}: CONFIG_{a.symbol}" for a in unknown),
                            file=unknown[0].file, line=unknown[0].line)
    out = []
    for target in BASE_TARGETS:
        r = kb.run(target, log=log, parallel=False, timeout=CONFIG_TIMEOUT)
        out.append(r.stdout + r.stderr)
        if not r.ok:
            raise InfraError(f"make {target} failed in {kb.objtree}:\n{r.tail()}")
    dot.write_text(merge(dot.read_text(), fragments))
    r = kb.run("olddefconfig", log=log, parallel=False, timeout=CONFIG_TIMEOUT)
    out.append(r.stdout + r.stderr)
    if not r.ok:
        raise InfraError(f"make olddefconfig failed in {kb.objtree}:\n{r.tail()}")
    final = dot.read_bytes()
    dropped = check(parse_config(final.decode(errors="replace")), fragments, symbols)
    if dropped:
        raise UserError(f"{len(dropped)} config symbol(s) requested by the fragments did not "
                        "survive olddefconfig:\n" + "\n".join("  " + d.describe()
                                                              for d in dropped),
                        file=dropped[0].want.file, line=dropped[0].want.line)
    if old is not None and final == old and old_times:
        os.utime(dot, ns=old_times)
    state_file.write_text(json.dumps({"inputs": key, "sha": _sha(final)}) + "\n")
    return ConfigResult(dot, _sha(final), True, "".join(out))


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()
