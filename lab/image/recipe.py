"""Image recipes: YAML -> a validated, frozen Recipe with a content key (pure)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import UserError
from ..paths import IMAGES

# Bump when the way an image is assembled changes, so caches are rebuilt.
BUILD_VERSION = "4"
INIT_SCRIPT = Path(__file__).with_name("lab-init.sh")

_FIELDS = {"name": str, "suite": str, "variant": str, "mirror": str, "size_mb": int,
           "packages": list}
_REQUIRED = ("name", "suite", "packages")
_VARIANTS = ("minbase", "essential", "apt", "required", "important", "standard")
_PKG = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@dataclass(frozen=True)
class Recipe:
    name: str
    suite: str
    packages: tuple[str, ...]
    path: Path
    variant: str = "minbase"
    mirror: str | None = None
    size_mb: int = 2048
    text: str = ""

    @property
    def key(self) -> str:
        """Content hash: the recipe text, lab's init script and the build version."""
        h = hashlib.sha256()
        h.update(BUILD_VERSION.encode())
        h.update(self.text.encode())
        h.update(INIT_SCRIPT.read_bytes())
        return h.hexdigest()[:16]


def find_recipe(name_or_path: str, *, file: str = "", field: str = "image") -> Path:
    """A recipe by path (NAME.yaml that exists) or by name, looked up in
    $LAB_IMAGES_DIR's directories, then lab's images."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    found = IMAGES.find(name_or_path)
    if found:
        return found
    raise UserError(f"no image recipe '{name_or_path}'; valid: "
                    f"{', '.join(IMAGES.names()) or '(none)'}, or a path to NAME.yaml "
                    f"(names are looked up in {IMAGES.where()})", file=file, field=field)


def load_recipe(name_or_path: str, *, file: str = "", field: str = "image") -> Recipe:
    path = find_recipe(name_or_path, file=file, field=field)
    text = path.read_text()
    f = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise UserError(f"not valid YAML: {getattr(e, 'problem', e)}", file=f,
                        line=line + 1 if line is not None else None) from None
    if not isinstance(data, dict):
        raise UserError("an image recipe must be a mapping", file=f)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise UserError(f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(_FIELDS)}",
                        file=f, field=unknown[0])
    for k in _REQUIRED:
        if k not in data:
            raise UserError("missing", file=f, field=k)
    for k, t in _FIELDS.items():
        if k in data and not isinstance(data[k], t):
            raise UserError(f"expected {t.__name__}, got {data[k]!r}", file=f, field=k)
    for p in data["packages"]:
        if not isinstance(p, str) or not _PKG.match(p):
            raise UserError(f"{p!r} is not a Debian package name", file=f, field="packages")
    variant = data.get("variant", "minbase")
    if variant not in _VARIANTS:
        raise UserError(f"{variant!r} is not valid; valid: {', '.join(_VARIANTS)}", file=f,
                        field="variant")
    size = data.get("size_mb", 2048)
    if size < 256:
        raise UserError(f"must be >= 256, got {size}", file=f, field="size_mb")
    return Recipe(name=data["name"], suite=data["suite"], packages=tuple(data["packages"]),
                  path=path, variant=variant, mirror=data.get("mirror"), size_mb=size,
                  text=text)
