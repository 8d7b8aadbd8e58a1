"""olddefconfig for the fake tree: symbols from every Kconfig file, values
from .config (last assignment wins) or their default, dependencies enforced
(a symbol whose 'depends on' is not y/m is not set)."""
import pathlib
import re
import sys

src, dot = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
syms, order = {}, []
for kc in sorted(src.rglob("Kconfig*")):
    cur = None
    for line in kc.read_text().splitlines():
        m = re.match(r"^\s*config\s+(\w+)\s*$", line)
        if m:
            cur = {"deps": [], "default": "n", "type": "bool"}
            syms[m.group(1)] = cur
            order.append(m.group(1))
        elif cur is not None and (m := re.match(r"^\s*depends on\s+(\w+)", line)):
            cur["deps"].append(m.group(1))
        elif cur is not None and (m := re.match(r"^\s*default\s+(.+)$", line)):
            cur["default"] = m.group(1).strip()
        elif cur is not None and (m := re.match(r"^\s*(bool|tristate|string|int|hex)\b", line)):
            cur["type"] = m.group(1)
vals = {}
for line in (dot.read_text().splitlines() if dot.exists() else []):
    m = re.match(r"^CONFIG_(\w+)=(.*)$", line)
    if m:
        vals[m.group(1)] = m.group(2)
    m = re.match(r"^# CONFIG_(\w+) is not set", line)
    if m:
        vals[m.group(1)] = "n"
for s in order:
    vals.setdefault(s, syms[s]["default"])
changed = True
while changed:
    changed = False
    for s in order:
        if vals[s] not in ("n", '""') and any(vals.get(d, "n") not in ("y", "m")
                                              for d in syms[s]["deps"]):
            vals[s] = "n"
            changed = True
out = ["# fake kernel configuration"]
for s in order:
    v = vals[s]
    if syms[s]["type"] == "string" and not v.startswith('"'):
        v = f'"{v}"'
    out.append(f"# CONFIG_{s} is not set" if v == "n" else f"CONFIG_{s}={v}")
dot.write_text("\n".join(out) + "\n")
