"""A run's results as KernelCI's KCIDB JSON (schema v5; pure).

One checkout per kernel source state (base commit + patchset), one build
per kernel (a `lab build` artifact, or Debian's distro kernel as a build of
its own), one test per testcase of every boot. Ids start with the origin
("lab:" unless told otherwise) and are stable for a run: the checkout is
named by its commit and patchset hash, the build by its artifact key, a test
by the run id, the suite and the case's position in it.

    lab export kcidb RUN [-o FILE] [--origin NAME]

Statuses: passed -> PASS, failed -> FAIL, error -> ERROR, skipped -> SKIP.
A case lab did not run because an earlier failure left no guest (kind
not-run) is MISS. Test paths are dot-separated names KCIDB accepts:
"lab.<classname>.<case>", with every other character replaced by "_".
Files are given as file:// URLs into the run directory (KCIDB wants URLs;
a submitter that uploads the run directory rewrites the prefix).
"""

from __future__ import annotations

import re
from pathlib import Path

SCHEMA_VERSION = {"major": 5, "minor": 3}

STATUS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}
_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def path_part(text: str) -> str:
    """One element of a KCIDB test path (pure)."""
    return _BAD.sub("_", text).strip("_") or "_"


def case_path(classname: str, name: str) -> str:
    parts = ["lab"] + [path_part(p) for p in classname.split(".") if p]
    parts += [path_part(p) for p in name.split(".") if p] or ["_"]
    return ".".join(parts)


def _url(path: Path | str) -> str:
    return Path(path).resolve().as_uri()


def _file(name: str, path: Path) -> dict:
    return {"name": path_part(name) if "/" in name else name, "url": _url(path)}


def _origin_ok(origin: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+", origin):
        raise ValueError(f"KCIDB origin must be lowercase letters, digits and _: {origin!r}")
    return origin


def convert(summary: dict, run_dir: Path, origin: str = "lab") -> dict:
    """summary.json (format 2) + its run directory -> a KCIDB v5 report."""
    origin = _origin_ok(origin)
    run_dir = Path(run_dir)
    run_id = str(summary.get("run_id") or run_dir.name)
    checkouts: dict[str, dict] = {}
    builds: dict[str, dict] = {}
    tests: list[dict] = []
    single = len(summary.get("suites", [])) == 1
    for suite in summary.get("suites", []):
        props = suite.get("properties") or {}
        checkout_id = _checkout(checkouts, props, origin)
        build_id = _build(builds, props, origin, checkout_id)
        cell = props.get("cell", "")
        udir = run_dir if single else run_dir / cell / f"r{props.get('repeat', '1')}"
        env = {"comment": f"qemu {props.get('qemu_version', '?')} "
                          f"({props.get('accelerator', '?')}), image "
                          f"{props.get('image', '?')} {props.get('image_hash', '')}".strip(),
               "misc": {k: props[k] for k in ("cell", "repeat", "variant", "workloads",
                                              "kernel_cmdline", "boots") if k in props}}
        for i, case in enumerate(suite.get("cases", [])):
            tests.append(_test(case, i, suite, run_id, origin, build_id, env, udir))
    return {"version": dict(SCHEMA_VERSION), "checkouts": list(checkouts.values()),
            "builds": list(builds.values()), "tests": tests}


def _checkout(checkouts: dict, props: dict, origin: str) -> str:
    commit = props.get("kernel_commit", "")
    patchset = props.get("kernel_patchset_hash", "")
    series = props.get("kernel_series_hash", "")
    if commit:
        key = f"{commit}-{patchset or series or 'none'}"
    else:
        key = f"{props.get('kernel_tree', 'unknown')}-{props.get('kernel_release', 'unknown')}"
    cid = f"{origin}:{path_part(key)}"
    if cid in checkouts:
        return cid
    c: dict = {"id": cid, "origin": origin}
    tree = props.get("kernel_tree", "")
    if tree:
        c["tree_name"] = "debian" if tree == "debian" else Path(tree).name or tree
        if tree.startswith("https://"):      # KCIDB takes https:// repository URLs only
            c["git_repository_url"] = tree
        else:
            c.setdefault("misc", {})["tree"] = tree
    if re.fullmatch(r"[0-9a-f]{40}", commit):
        c["git_commit_hash"] = commit
    if props.get("kernel_commit_name"):
        c["git_commit_name"] = props["kernel_commit_name"]
    if re.fullmatch(r"[0-9a-f]{64}", patchset):
        c["patchset_hash"] = patchset
        art = props.get("kernel_origin", "")
        pdir = Path(art) / "patches" if art and art != "distro" else None
        if pdir is not None and pdir.is_dir():
            c["patchset_files"] = [_file(p.name, p) for p in sorted(pdir.glob("*.patch"))]
    elif commit and not series:
        c["patchset_hash"] = ""              # the base alone: no patches applied
    subjects = props.get("kernel_series_subjects", "")
    if subjects:
        c["comment"] = subjects.splitlines()[-1][:500]
        c.setdefault("misc", {}).update(series_hash=series, subjects=subjects.splitlines())
    c["valid"] = True
    checkouts[cid] = c
    return cid


def _build(builds: dict, props: dict, origin: str, checkout_id: str) -> str:
    key = props.get("kernel_artifact_key") or f"distro-{props.get('kernel_release', 'unknown')}"
    bid = f"{origin}:{path_part(key)}"
    if bid in builds:
        return bid
    b: dict = {"id": bid, "origin": origin, "checkout_id": checkout_id,
               "architecture": "x86_64", "status": "PASS"}
    if props.get("kernel_compiler"):
        b["compiler"] = props["kernel_compiler"]
    frags = props.get("kernel_fragments", "")
    if frags or props.get("kernel_config_key"):
        b["config_name"] = "+".join(frags.split(",")) if frags else props["kernel_config_key"]
    log = props.get("kernel_build_log", "")
    if log and Path(log).exists():
        b["log_url"] = _url(log)
    art = props.get("kernel_origin", "")
    if art and art != "distro" and Path(art).is_dir():
        b["output_files"] = [_file(n, Path(art) / n) for n in ("bzImage", "System.map",
                                                               "metadata.json")
                             if (Path(art) / n).exists()]
        if (Path(art) / ".config").exists():
            b["input_files"] = [_file("config", Path(art) / ".config")]
    if props.get("kernel_build_started"):
        b["start_time"] = _iso(props["kernel_build_started"])
    secs = props.get("kernel_build_s", "")
    try:
        b["duration"] = float(secs)
    except ValueError:
        pass
    b["misc"] = {"release": props.get("kernel_release", ""),
                 "config_key": props.get("kernel_config_key", "")}
    builds[bid] = b
    return bid


def _iso(stamp: str) -> str:
    """'2026-11-30T01:05:28+0000' -> '2026-11-30T01:05:28+00:00' (RFC 3339)."""
    m = re.fullmatch(r"(.*[T ]\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(\d\d)", stamp)
    return f"{m.group(1)}{m.group(2)}:{m.group(3)}" if m else stamp


def _test(case: dict, i: int, suite: dict, run_id: str, origin: str, build_id: str,
          env: dict, udir: Path) -> dict:
    status = "MISS" if case.get("kind") == "not-run" else STATUS.get(case.get("status"), "ERROR")
    t: dict = {"id": f"{origin}:{path_part(run_id)}.{path_part(suite.get('name', 's'))}.{i}",
               "origin": origin, "build_id": build_id,
               "path": case_path(case.get("classname", ""), case.get("name", "")),
               "status": status, "environment": env}
    if case.get("started"):
        t["start_time"] = case["started"]
    if isinstance(case.get("duration"), (int, float)):
        t["duration"] = float(case["duration"])
    msg = case.get("message") or ""
    if msg:
        t["log_excerpt"] = msg.replace("\0", "")[:16384]
    console = udir / "console.log"
    if console.exists():
        t["log_url"] = _url(console)
    files = []
    cls = case.get("classname", "")
    for wdir in sorted(udir.glob(f"[0-9][0-9]-{cls}")) if cls else []:
        for name in ("dmesg.txt", "commands.log", "timeout-evidence.txt", "resolution.txt"):
            if (wdir / name).exists():
                files.append(_file(f"{wdir.name}-{name}", wdir / name))
    if files:
        t["output_files"] = files
    misc = {"name": case.get("name", ""), "classname": cls, "kind": case.get("kind", "")}
    misc.update({k: v for k, v in (case.get("properties") or {}).items()
                 if isinstance(v, str) and len(v) < 4096})
    t["misc"] = misc
    return t
