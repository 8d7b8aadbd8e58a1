"""`lab hosts run JOB --inventory INV`: a job's matrix across lab hosts,
driven through ansible (ansible/hosts-probe.yml, ansible/hosts-run.yml);
and `lab hosts probe`, what a host says about itself.

1. The inventory's hosts (ansible-inventory), pinned shards checked
   (lab/fanout.py) before anything runs.
2. Each host probed: cores, memory, qemu, accelerators. A host that does
   not answer, lacks lab or qemu is left out, named, and its share goes to
   the others (a pinned shard cannot move: its cells become errors).
3. Every kernel the matrix builds is built once, here, packed, and copied
   to the hosts that boot it (content-keyed: a host keeps it for the next
   run). Hosts never build kernels.
4. The playbook runs each host's cells with `lab run` and fetches its run
   directory, host by host as each finishes.
5. The hosts' results are merged (lab/shards.py, lab/junit.py) into one
   run directory: junit.xml and summary.json, each suite carrying its host;
   a planned cell a host never returned (the host died, its lab crashed) is
   an error suite naming the host and why. The run is recorded in the
   history store, and the report printed. Exit code: the merged run's
   (0, 1, 2: a lost host's cells are errors); 2 instead of 0 when a host
   was left out.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import sys
import tarfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from . import proc
from .errors import EXIT_INFRA, InfraError, LabError, UserError
from .fanout import (Host, Probe, assign, build_specs, capacity, lost_suites, pinned,
                     prebuilt_key)
from .job import Job, load_job
from .junit import merge as merge_junit, render as render_junit
from .matrix import Cell, expand
from .paths import DATA_DIR, cache_dir
from .results import RunState
from .shards import merge_summaries
from .store import prepare_output, write_atomic

# lab's playbooks: ansible/ of a checkout, reached through lab/data/ansible
# (a symlink, like lab's other data) so a wheel carries them too; resolved,
# so that lab-host.yml's playbook_dir is the checkout's ansible/ it packs
ANSIBLE_DIR = (DATA_DIR / "ansible").resolve()
PROBE_TIMEOUT = 300.0


def log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


# --- the host's side -----------------------------------------------------------

def probe_here() -> dict:
    """What this host offers lab: cores (as this process may use them),
    available memory, qemu and the accelerators it was built with."""
    from .schedule import host_cores, host_memory_mb
    qemu = shutil.which("qemu-system-x86_64")
    accels: list[str] = []
    version = ""
    if qemu:
        r = proc.run([qemu, "-accel", "help"], timeout=60)
        accels = [w.strip() for w in r.stdout.splitlines()[1:] if w.strip()]
        version = proc.run([qemu, "--version"], timeout=60).stdout.split("\n")[0]
    return {"cores": host_cores(), "memory_mb": host_memory_mb(), "qemu": qemu,
            "qemu_version": version, "accels": accels}


# --- ansible -------------------------------------------------------------------

def _ansible_bin(name: str) -> str:
    """ansible's commands, from lab's own venv first (the test extra has
    ansible-core), else PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise InfraError(f"{name} not found: install ansible-core (pip install "
                         "'lab[hosts]', or apt-get install ansible-core) on this controller")
    return found


def read_inventory(inventory: str) -> list[Host]:
    """The inventory's hosts with their variables, as ansible reads it."""
    if not Path(inventory).exists() and "," not in inventory:
        raise UserError("no such inventory file", file=inventory, field="--inventory")
    r = proc.run([_ansible_bin("ansible-inventory"), "-i", inventory, "--list"],
                 timeout=120, env=_env())
    try:
        data = json.loads(r.stdout)
    except ValueError:
        raise UserError(f"ansible-inventory could not read it: {r.tail(5)}", file=inventory,
                        field="--inventory") from None
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    names: list[str] = []

    def walk(group: str) -> None:
        g = data.get(group) or {}
        for h in g.get("hosts") or []:
            if h not in names:
                names.append(h)
        for child in g.get("children") or []:
            walk(child)
    walk("all")
    if not names:
        raise UserError("the inventory has no hosts; valid: an ansible inventory naming at "
                        "least one lab host (e.g. `h1 ansible_host=10.0.0.5`)", file=inventory,
                        field="--inventory")
    return [Host(n, dict(hostvars.get(n) or {})) for n in names]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="False",
               ANSIBLE_CALLBACK_PLUGINS=str(ANSIBLE_DIR / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="lab_events", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@dataclass
class Events:
    """What the lab_events callback wrote: one dict a task result."""

    path: Path
    seen: int = 0

    def read(self) -> list[dict]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def new(self) -> list[dict]:
        events = self.read()
        fresh, self.seen = events[self.seen:], len(events)
        return fresh


def playbook(name: str, inventory: str, hosts: list[str], out: Path, tag: str,
             extra: dict | None = None, timeout: float = PROBE_TIMEOUT,
             on_event=None) -> list[dict]:
    """Run one of lab's playbooks on `hosts`; returns its events. ansible's
    own output goes to OUT/ansible-TAG.log."""
    events = Events(out / f"ansible-{tag}.events")
    events.path.unlink(missing_ok=True)
    argv = [_ansible_bin("ansible-playbook"), "-i", inventory, "--limit", ",".join(hosts),
            "--forks", str(max(5, len(hosts)))]
    if extra is not None:
        vars_file = out / f"ansible-{tag}.vars.json"
        vars_file.write_text(json.dumps(extra, indent=1))
        argv += ["-e", f"@{vars_file}"]
    book = ANSIBLE_DIR / name
    if not book.is_file():
        raise InfraError(f"lab's playbook {book} is missing: lab is installed without its "
                         "ansible/ data; reinstall it (pip install of a wheel built from a "
                         "checkout, or ansible/bootstrap.sh)")
    argv.append(str(book))
    done = threading.Event()

    def follow():
        while not done.wait(1.0):
            for e in events.new():
                on_event(e)
    t = threading.Thread(target=follow, daemon=True) if on_event else None
    if t:
        t.start()
    log = out / f"ansible-{tag}.log"
    try:
        res = proc.run(argv, timeout=timeout, env=_env(LAB_EVENTS=str(events.path)), log=log)
    finally:
        done.set()
        if t:
            t.join()
            for e in events.new():
                on_event(e)
    found = events.read()
    if not found and res.returncode != 0:
        # no host got as far as a task: the playbook itself failed (ansible's
        # own error, not a host's); its last lines say why
        tail = [ln.strip() for ln in (res.stdout + "\n" + res.stderr).splitlines()
                if ln.strip()][-3:]
        raise InfraError(f"ansible-playbook {name} failed (exit {res.returncode}) before any "
                         f"host ran a task: {' / '.join(tail) or 'no output'}; log: {log}")
    return found


def _why(e: dict) -> str:
    msg = str(e.get("msg") or "").strip()
    err = str(e.get("stderr") or "").strip()
    text = " ".join(x for x in (msg, err[-400:]) if x) or "no message"
    return " ".join(text.split())[:600]


def probe(hosts: list[Host], inventory: str, out: Path) -> dict[str, Probe]:
    events = playbook("hosts-probe.yml", inventory, [h.name for h in hosts], out, "probe")
    found: dict[str, Probe] = {}
    for e in events:
        h = e.get("host")
        if e["status"] == "ok":
            found[h] = Probe.parse(str(e.get("stdout") or ""))
        elif e["status"] == "unreachable":
            found[h] = Probe(error=f"unreachable: {_why(e)}")
        elif e["status"] == "failed":
            rc = e.get("rc")
            hint = (" (is lab installed there? provision it with ansible/lab-host.yml, or "
                    "set lab_command)") if rc == 127 else ""
            found[h] = Probe(error=f"`lab hosts probe` failed (exit {rc}): {_why(e)}{hint}")
    return {h.name: found.get(h.name, Probe(error="ansible reported nothing for it"))
            for h in hosts}


# --- the run -------------------------------------------------------------------

class HostState(enum.StrEnum):
    PLANNED = "planned"          # probed, given cells, not back yet
    DONE = "done"                # its results came back
    LOST = "lost"                # it stopped answering, or a step on it failed
    LEFT_OUT = "left-out"        # the probe found it unusable: never given cells


@dataclass
class HostRun:
    host: Host
    cells: list[str]
    probe: Probe
    state: HostState = HostState.PLANNED
    reason: str = ""
    exit_code: int | None = None
    fetched: Path | None = None
    started: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict:
        return {"name": self.host.name, "address": self.host.address, "cells": self.cells,
                "state": str(self.state), "reason": self.reason, "exit_code": self.exit_code,
                "cores": self.probe.cores, "memory_mb": self.probe.memory_mb,
                "seconds": None if self.seconds is None else round(self.seconds, 1)}


@dataclass
class Options:
    timeout: float = 6 * 3600.0   # a host's whole share
    poll: float = 10.0


@dataclass
class Kernels:
    """The kernels built here for the hosts: per cell key, its packed tar."""

    tars: dict[str, tuple[str, Path]] = field(default_factory=dict)   # kv -> (key, tar)
    failed: dict[str, list] = field(default_factory=dict)             # kv -> cases


def build_kernels(cells: list[Cell]) -> Kernels:
    """Build (or find) each kernel the cells need, once, here, and pack it."""
    from .runner import resolve_kernel
    from .schedule import Resources
    k = Kernels()
    for kv, spec in build_specs(cells).items():
        log(f"kernel {kv}: building or finding it here (the hosts never build)")
        outcome = resolve_kernel(spec, Resources(), progress=True)
        if outcome.artifact is None:
            k.failed[kv] = outcome.cases
            continue
        src = Path(outcome.artifact.origin)
        tar = cache_dir() / "kernel-packs" / f"{src.name}.tar"   # content-keyed, kept
        if not tar.exists():
            tar.parent.mkdir(parents=True, exist_ok=True)
            tmp = tar.with_suffix(f".{os.getpid()}.tmp")
            with tarfile.open(tmp, "w") as t:
                t.add(src, arcname=src.name, filter=_portable)
            os.replace(tmp, tar)
        k.tars[kv] = (src.name, tar)
    return k


def _portable(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """An artifact as another host gets it: without modules' `build` and
    `source` links (they point into this host's build directory)."""
    parts = info.name.split("/")
    if info.issym() and parts[-1] in ("build", "source") and "modules" in parts:
        return None
    return info


def run_hosts(job_path: str, inventory: str, out: Path | None = None,
              opts: Options = Options()) -> int:
    job = load_job(job_path)
    cells = expand(job)
    hosts = read_inventory(inventory)
    pins = pinned(job, cells, hosts, inventory)
    from .runner import new_run_dir
    out = prepare_output(Path(out) if out else new_run_dir(f"{job.name}-hosts"))
    t0 = time.monotonic()
    log(f"{len(cells)} cell(s) x repeat {job.repeat} on {len(hosts)} host(s); results in {out}")

    probes = probe(hosts, inventory, out)
    runs: dict[str, HostRun] = {}
    for h in hosts:
        p = probes[h.name]
        runs[h.name] = HostRun(h, [], p)
        if p.problem():
            runs[h.name].state, runs[h.name].reason = HostState.LEFT_OUT, p.problem()
            log(f"host {h.label()}: left out: {p.problem()}")
        else:
            log(f"host {h.label()}: {p.cores} cores, {p.memory_mb} MiB, "
                f"qemu with {', '.join(p.accels)}; {capacity(p, job)} guest(s) at once")
    usable = {n: capacity(r.probe, job) for n, r in runs.items() if r.state != HostState.LEFT_OUT}
    if not usable:
        raise InfraError("no host can run the job: " + "; ".join(
            f"{r.host.label()}: {r.reason}" for r in runs.values()))

    kernels = build_kernels(cells)
    runnable = [c for c in cells if prebuilt_key(c) not in kernels.failed]
    plan = pins or assign(runnable, usable)
    for name, ids in plan.items():
        runs[name].cells = [i for i in ids if i in {c.id for c in runnable}]
    by_id = {c.id: c for c in cells}
    active = [n for n, r in runs.items() if r.state != HostState.LEFT_OUT and r.cells]
    for n in active:
        log(f"host {runs[n].host.label()}: {len(runs[n].cells)} cell(s): "
            f"{', '.join(runs[n].cells)}")

    if active:
        _run_playbook(job, job_path, inventory, out, runs, active, kernels, by_id, opts)
    code = _merge(job, cells, out, runs, kernels, by_id)
    log(f"{len(active)} host(s), {time.monotonic() - t0:.0f}s in all -> {out}")
    return code


def _run_playbook(job: Job, job_path: str, inventory: str, out: Path,
                  runs: dict[str, HostRun], active: list[str], kernels: Kernels,
                  by_id: dict[str, Cell], opts: Options) -> None:
    fetch = out / "hosts"
    fetch.mkdir(exist_ok=True)
    lab_plan = {}
    for n in active:
        kvs = sorted({prebuilt_key(by_id[c]) for c in runs[n].cells} & set(kernels.tars))
        lab_plan[n] = {
            "cells": runs[n].cells,
            "kernels": [{"key": kernels.tars[kv][0], "tar": str(kernels.tars[kv][1])}
                        for kv in kvs],
            "prebuilt": {kv: f"../../kernels/{kernels.tars[kv][0]}" for kv in kvs}}
    extra = {"lab_run_id": out.name, "lab_job_file": str(Path(job_path).resolve()),
             "lab_fetch_dir": str(fetch), "lab_timeout": int(opts.timeout),
             "lab_poll": max(1, int(opts.poll)), "lab_plan": lab_plan}

    def on_event(e: dict) -> None:
        r = runs.get(e.get("host"))
        if r is None:
            return
        task, status = e.get("task"), e.get("status")
        if status == "unreachable" and r.state != HostState.LOST:
            r.state, r.reason = HostState.LOST, f"lost mid-run, unreachable: {_why(e)}"
            log(f"host {r.host.label()}: {r.reason}")
        elif status == "failed" and r.state == HostState.PLANNED:
            r.state, r.reason = HostState.LOST, f"task '{task}' failed: {_why(e)}"
            log(f"host {r.host.label()}: {r.reason}")
        elif task == "lab run" and status == "ok":
            r.started = e.get("time")
            log(f"host {r.host.label()}: lab run started ({len(r.cells)} cell(s))")
        elif task == "Wait for lab run" and status == "ok" and e.get("finished"):
            r.exit_code = e.get("rc")
            if r.started:
                r.seconds = float(e["time"]) - float(r.started)
            log(f"host {r.host.label()}: lab run exited {r.exit_code}"
                + (f" after {r.seconds:.0f}s" if r.seconds else ""))
        elif task == "Fetch the results" and status == "ok":
            r.state, r.fetched = HostState.DONE, fetch / f"{r.host.name}.tgz"
            log(f"host {r.host.label()}: results fetched")

    try:
        playbook("hosts-run.yml", inventory, active, out, "run", extra,
                 timeout=opts.timeout + 900, on_event=on_event)
    except LabError as e:          # ansible itself died or timed out: keep what came back
        log(f"ansible-playbook: {e}")
    for n in active:
        r = runs[n]
        if r.state == HostState.PLANNED:
            r.state, r.reason = HostState.LOST, (f"returned no results (see {out}/ansible-run.log)"
                                         if not r.reason else r.reason)


def extract_results(t: tarfile.TarFile, dest: Path) -> None:
    """Unpack a host's results archive into `dest`, refusing what would land
    outside it: tarfile's filter="data" where this Python has it (3.11.4 and
    later), else the same rules checked here (Debian bookworm's Python is
    3.11.2): regular files, directories and symlinks only, every path and
    symlink target inside `dest`, no absolute names."""
    if hasattr(tarfile, "data_filter"):
        t.extractall(dest, filter="data")
        return
    root = dest.resolve()
    members = []
    for m in t.getmembers():
        if not (m.isfile() or m.isdir() or m.issym()):
            raise tarfile.TarError(f"{m.name}: not a file, directory or symlink")
        path = (root / m.name).resolve()
        if m.name.startswith("/") or not path.is_relative_to(root):
            raise tarfile.TarError(f"{m.name}: outside the destination")
        if m.issym() and (m.linkname.startswith("/") or not (
                (root / m.name).parent / m.linkname).resolve().is_relative_to(root)):
            raise tarfile.TarError(f"{m.name}: links outside the destination "
                                   f"({m.linkname})")
        m.mode &= 0o755
        m.uid = m.gid = 0
        m.uname = m.gname = ""
        members.append(m)
    t.extractall(dest, members=members)


def _unpack(r: HostRun, out: Path) -> Path | None:
    """The host's run directory, unpacked under OUT/hosts/<host>/."""
    if r.fetched is None or not r.fetched.exists():
        return None
    dest = out / "hosts" / r.host.name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        with tarfile.open(r.fetched) as t:
            extract_results(t, dest)
    except (tarfile.TarError, OSError) as e:
        r.reason = f"its results could not be unpacked: {e}"
        return None
    r.fetched.unlink()
    return dest / "results"


def _tag_junit(text: str, host: str) -> str:
    """The host's junit.xml with a `host` property on every suite; a suite
    with no testcase (its lab died first) is dropped, as from the summary."""
    root = ET.fromstring(text)
    if root.tag == "testsuites":
        for suite in [x for x in root if x.find("testcase") is None]:
            root.remove(suite)
    for suite in ([root] if root.tag == "testsuite" else list(root)):
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        ET.SubElement(props, "property", name="host", value=host)
    return ET.tostring(root, encoding="unicode")


def _merge(job: Job, cells: list[Cell], out: Path, runs: dict[str, HostRun],
           kernels: Kernels, by_id: dict[str, Cell]) -> int:
    from .results import SuiteResult
    summaries, junits, names = [], [], []
    lost: list[SuiteResult] = []
    lost_cells: set[str] = set()
    for r in runs.values():
        if not r.cells:
            continue
        results = _unpack(r, out)
        got: set[str] = set()
        if results is not None and (results / "summary.json").exists():
            s = json.loads((results / "summary.json").read_text())
            if s.get("state") == RunState.RUNNING:      # its lab died there
                s.update(state=str(RunState.CRASHED), exit_code=EXIT_INFRA)
            # a suite with no case: its lab died before the unit said anything
            s["suites"] = [x for x in s.get("suites") or [] if x.get("cases")]
            for suite in s["suites"]:
                suite.setdefault("properties", {})["host"] = r.host.name
                got.add(str(suite.get("name")))
            summaries.append(s)
            names.append(str(results))
            if (results / "junit.xml").exists():
                junits.append(_tag_junit((results / "junit.xml").read_text(), r.host.name))
        if r.state == HostState.DONE and r.exit_code not in (0, 1) and not r.reason:
            tail = ""
            logf = out / "hosts" / r.host.name / "lab.log"
            if logf.exists():
                tail = " ".join(logf.read_text(errors="replace").strip().splitlines()[-2:])
            r.reason = f"lab run exited {r.exit_code}: {tail[-400:]}"
        reason = r.reason or ("its lab run did not finish in time (--timeout)"
                              if r.state == HostState.DONE and r.exit_code is None
                              else "returned no result for it")
        if r.state == HostState.LEFT_OUT:
            reason = f"left out before the run: {r.reason}"
        missing = lost_suites(job, [by_id[c] for c in r.cells], got, r.host, reason)
        lost += missing
        lost_cells |= {s.properties["cell"] for s in missing}
    for kv, cases in kernels.failed.items():      # the kernel did not build here
        for c in cells:
            if prebuilt_key(c) == kv:
                lost_cells.add(c.id)
                lost += [SuiteResult(f"{c.id}#{i}", {"cell": c.id, "repeat": str(i)},
                                     list(cases)) for i in range(1, job.repeat + 1)]
    if lost:
        summaries.append({"format": 2, "run_id": out.name, "name": job.name,
                          "job": str(job.path), "state": str(RunState.FINISHED),
                          "cells": [by_id[c].to_dict(job.repeat) for c in sorted(lost_cells)],
                          "suites": [s.to_dict() for s in lost]})
        names.append("lost cells")
        junits.append(render_junit(lost))
    if not summaries:
        raise InfraError("no host returned results: " + "; ".join(
            f"{r.host.label()}: {r.reason}" for r in runs.values()))
    merged = merge_summaries(summaries, names)
    merged.update(run_id=out.name, name=job.name, job=str(job.path), argv=sys.argv,
                  shards=[n for n, r in runs.items() if r.cells],
                  state=str(RunState.FINISHED),
                  hosts=[r.to_dict() for r in runs.values()])
    if any(r.state in (HostState.LOST, HostState.LEFT_OUT) for r in runs.values()):
        merged["exit_code"] = merged["exit_code"] or EXIT_INFRA
    write_atomic(out / "summary.json", json.dumps(merged, indent=1))
    write_atomic(out / "junit.xml", merge_junit(junits, names[:len(junits)]))
    _record_and_report(merged, out)
    return int(merged["exit_code"])


def _record_and_report(merged: dict, out: Path) -> None:
    from .history import History, default_path
    from .report import classify, render
    previous = {}
    try:
        history = History(default_path())
        history.record(merged, out)
        previous = history.previous_for(merged, out)
    except LabError as e:
        log(f"history not used: {e}")
    report = classify(merged, lambda cid: previous[cid].problems if cid in previous else None,
                      {cid: p.run_id for cid, p in previous.items()})
    sys.stdout.write(render(report, "text"))
