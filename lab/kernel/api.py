"""build_kernel: a BuildSpec in, an artifact and the apply/build cases out.

    source (resolved, fast) + series (parsed, hashed) + fragments (hashed)
      + compiler -> artifact key -> cache hit? return at once (no make)
    else, holding the source's lock:
      metadata.json (state building) -> the series committed in lab's repository
      and checked out, only differing files rewritten ("apply")
      -> .config (checked) -> make all in the persistent build dir ("build")
      -> modules_install, gup_test, copies -> metadata.json (state done)
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabError
from . import build as b
from . import config as kconfig
from . import legacy
from . import series as kseries
from . import source as ksource
from .artifact import KernelArtifact
from .kbuild import KBuild, compiler_version, default_cc, linker_version
from .outcome import Step, StepResult, StepState
from .spec import BuildSpec


@dataclass
class BuildOutcome:
    """The artifact (None when a step failed) and what each step said."""

    artifact: KernelArtifact | None
    steps: list[StepResult] = field(default_factory=list)
    artifact_dir: Path | None = None
    build_dir: Path | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.artifact is not None and all(s.ok for s in self.steps)


def _step(step: Step, state: StepState, start: float, **kw) -> StepResult:
    return StepResult(step, state, time.monotonic() - start, **kw)


def reproducer(spec: BuildSpec, tree: ksource.SourceTree,
               fragments: tuple[kconfig.Fragment, ...] | list[kconfig.Fragment] = ()) -> str:
    """The `lab build` command line that builds this again, from any directory:
    fragments of kernels/fragments by name, others by absolute path."""
    argv = ["lab", "build"]
    if spec.tree is not None:
        argv += ["--tree", tree.origin, "--ref", tree.base]
    else:
        argv += ["--linux-source"]
    for s in spec.series:
        argv += ["--series", s if kseries.is_range(s) else str(Path(s).expanduser().resolve())]
    if spec.series_upto is not None:
        argv += ["--series-upto", str(spec.series_upto)]
    names = ([f.path.stem if kconfig.in_fragments_dir(f.path) else str(f.path.resolve())
              for f in fragments] if fragments else list(spec.fragments))
    for f in names:
        argv += ["--fragment", f]
    return " ".join(shlex.quote(a) for a in argv)


def resolve_source(spec: BuildSpec) -> ksource.SourceTree:
    if spec.linux_source:
        return ksource.resolve_linux_source()
    return ksource.resolve_git(spec.tree, spec.ref)


@dataclass(frozen=True)
class BuildPlan:
    """Everything known before any slow step: what to build, where, and its
    cache key. The build directory is keyed by the source and the
    configuration's content; the artifact by that, the commit, the series'
    content and the toolchain. Neither depends on how a fragment was named."""

    spec: BuildSpec
    tree: ksource.SourceTree
    series: kseries.Series | None
    fragments: tuple[kconfig.Fragment, ...]
    cc: str
    compiler: str
    linker: str
    config_key: str
    key: str
    build_dir: Path
    legacy_build_dir: bool = False   # a build dir made before content keys (lab/kernel/legacy.py)

    @property
    def build_key(self) -> str:
        return b.build_key(self.tree.tree_id, self.config_key)

    @property
    def artifact_dir(self) -> Path:
        return b.artifacts_root() / self.key

    @property
    def build_dir_state(self) -> b.DirState:
        return b.DirState.of(self.build_dir)


def plan(spec: BuildSpec) -> BuildPlan:
    """Resolve the source, parse the series and fragments, compute the keys
    (fast: no clone, no checkout, no make; a few stat() calls)."""
    tree = resolve_source(spec)
    fragments = tuple(kconfig.load_fragments(spec.fragments))
    series_repo = Path(tree.origin) if tree.kind == "git" else tree.repo
    series = kseries.load_series(spec.series, series_repo, upto=spec.series_upto,
                                 upto_at=spec.upto_at)
    cc = default_cc()
    compiler, linker = compiler_version(cc), linker_version()
    config_key = kconfig.config_key(list(fragments))
    key = b.artifact_key(b.build_key(tree.tree_id, config_key), tree.base,
                         series.hash if series else "", f"{compiler}\n{linker}")
    bdir, old = b.build_dir(tree.tree_id, config_key), False
    if not bdir.exists():
        found = legacy.build_dir(tree.tree_id, list(fragments))
        if found is not None:
            bdir, old = found, True
    return BuildPlan(spec, tree, series, fragments, cc, compiler, linker, config_key, key,
                     bdir, old)


def cached_outcome(p: BuildPlan) -> BuildOutcome | None:
    adir = p.artifact_dir
    hit = b.cached_artifact(adir)
    if hit is None:
        adir = legacy.artifact(p.tree.base, p.series.hash if p.series else "",
                               list(p.fragments), p.compiler)
        hit = b.cached_artifact(adir) if adir is not None else None
    if hit is None:
        return None
    meta = b.read_json(adir / "metadata.json")
    series = p.series
    return BuildOutcome(hit, [
        StepResult(Step.APPLY, StepState.OK,
                   message="cached: " + (f"{len(series.patches)} patch(es)"
                                         + (f" ({series.prefix})" if series.prefix else "")
                                         if series else "no series"),
                   properties={"series_hash": series.hash} if series else {}),
        StepResult(Step.BUILD, StepState.OK,
                   message=f"cached: {meta.get('release', hit.release)}",
                   properties={"artifact": str(adir), "cached": "true"})],
        adir, Path(meta["build_dir"]) if meta.get("build_dir") else None, cached=True)


def build_kernel(spec: BuildSpec, *, progress: bool = True,
                 planned: BuildPlan | None = None) -> BuildOutcome:
    """Build (or find in the cache) the kernel `spec` describes.

    Bad input raises UserError; a series that does not apply or a build that
    fails is an outcome with a FAILED case and exit code 1."""
    p = planned or plan(spec)
    hit = cached_outcome(p)
    if hit is not None:
        return hit
    with ksource.tree_lock(p.tree.tree_id):
        # another lab process may have built it while we waited for the lock
        return cached_outcome(p) or _build_locked(p, progress)


def _build_locked(p: BuildPlan, progress: bool) -> BuildOutcome:
    spec, tree, series, fragments = p.spec, p.tree, p.series, list(p.fragments)
    compiler, cc, key = p.compiler, p.cc, p.key
    adir = p.artifact_dir
    if adir.exists():
        shutil.rmtree(adir)
    adir.mkdir(parents=True)
    bdir = p.build_dir
    kb = KBuild(srctree=tree.repo, objtree=bdir, cc=cc)
    meta = {
        "state": b.STATE_BUILDING, "key": key, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": {"kind": tree.kind, "origin": tree.origin, "ref": tree.ref,
                   "tree_id": tree.tree_id},
        "commit": tree.base, "series": None, "fragments": [f.name for f in fragments],
        "fragment_files": [{"name": f.name, "path": str(f.path.resolve()),
                            "sha256": hashlib.sha256(f.text.encode()).hexdigest()}
                           for f in fragments],
        "config_key": p.config_key, "build_key": p.build_key,
        "compiler": compiler, "linker": p.linker, "cc": cc, "jobs": kb.jobs,
        "build_dir": str(bdir), "repository": str(tree.repo),
        "reproduce": {"lab": reproducer(spec, tree, fragments)},
    }
    if series:
        pdir = adir / "patches"
        pdir.mkdir(parents=True, exist_ok=True)
        for i, patch in enumerate(series.patches, 1):     # the patchset, as applied
            (pdir / f"{i:04d}.patch").write_bytes(patch.raw)
        meta["series"] = {"hash": series.hash, "subjects": series.subjects,
                          "patchset_hash": series.patchset_hash,
                          "sources": list(series.sources), "cover": series.cover,
                          "upto": spec.series_upto, "of": series.of}
    meta_path = adir / "metadata.json"
    b.write_json(meta_path, meta)
    results: list[StepResult] = []
    steps: dict[str, float] = {}
    meta["step_seconds"] = steps

    @contextmanager
    def timed(name: str):
        t = time.monotonic()
        try:
            yield
        finally:
            steps[name] = round(time.monotonic() - t, 2)

    def finish(state: str, artifact: KernelArtifact | None = None, **extra) -> BuildOutcome:
        meta.update(extra, state=state, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        b.write_json(meta_path, meta)
        return BuildOutcome(artifact, results, adir, bdir)

    try:
        with timed("prepare"):
            ksource.prepare(tree)
        with timed("apply"):
            applied, commit = kseries.apply_series(tree.repo, tree.base, series)
        results.append(applied)
        if not applied.ok:
            results.append(StepResult(Step.BUILD, StepState.SKIPPED,
                                      message="the series does not apply"))
            return finish("apply-failed")
        meta["tree_commit"] = commit

        start = time.monotonic()
        log = adir / "build.log"
        log.write_text("")
        with timed("config"):
            cfg = kconfig.make_config(kb, fragments, log=log)
        meta["config_sha256"] = cfg.sha
        with timed("make"):
            made = b.run_make(kb, tree_id=tree.tree_id, log=log, progress=progress,
                              title=f"building {tree.tree_id}")
        commands = [f"git -C {shlex.quote(str(tree.repo))} checkout --detach {commit}",
                    *[b.shell_line(kb.argv(t, parallel=False)) for t in kconfig.BASE_TARGETS],
                    f"# merge kernels/fragments ({', '.join(f.name for f in fragments)}) "
                    f"into {bdir}/.config",
                    b.shell_line(kb.argv("olddefconfig", parallel=False)), *made.commands]
        meta["reproduce"]["commands"] = commands
        if not made.ok:
            results.append(_step(Step.BUILD, StepState.FAILED, start,
                                 message=(made.errors[0] if made.errors
                                          else "make failed")[:200],
                                 details="\n".join(made.errors)
                                 + f"\n\nfull log: {log}\nbuild directory kept: {bdir}",
                                 properties={"build_dir": str(bdir), "log": str(log)}))
            return finish(b.STATE_FAILED, errors=made.errors,
                          make_seconds=round(made.seconds, 1))
        with timed("kernelrelease"):
            release = kb.release()
        meta["release"] = release
        with timed("copy"):
            b.copy_outputs(kb, adir)
        with timed("modules_install"):
            r, cmd = b.install_modules(kb, adir, log)
        commands.append(cmd)
        if r is not None and not r.ok:
            results.append(_step(Step.BUILD, StepState.FAILED, start,
                                 message="modules_install failed", details=r.tail(30)))
            return finish(b.STATE_FAILED)
        with timed("gup_test"):
            gup, gr, gcmd = b.build_gup_test(kb, log)
        if gcmd:
            commands.append(gcmd)
        if gup is not None:
            shutil.copyfile(gup, adir / "gup_test")
            (adir / "gup_test").chmod(0o755)
        meta["gup_test"] = "gup_test" if gup is not None else None
        if gr is not None and not gr.ok:
            meta["gup_test_error"] = gr.tail(10)
        artifact = KernelArtifact.from_dir(adir)
        results.append(_step(Step.BUILD, StepState.OK, start, message=f"built {release}",
                             properties={"artifact": str(adir), "release": release,
                                         "make_seconds": f"{made.seconds:.1f}"}))
        return finish(b.STATE_DONE, artifact, make_seconds=round(made.seconds, 1),
                      total_seconds=round(time.monotonic() - start, 1))
    except LabError as e:
        meta["error"] = str(e)
        meta.update(state=b.STATE_FAILED)
        b.write_json(meta_path, meta)
        raise
    except BaseException:
        meta.update(state=b.STATE_FAILED, error="interrupted")
        b.write_json(meta_path, meta)
        raise
