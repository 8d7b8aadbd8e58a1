"""A job's matrix as a CI engine's own fan-out (pure): a GitLab child
pipeline with `parallel:matrix`, or a GitHub Actions workflow with
`strategy.matrix`.

Each parallel job runs one shard (`lab run JOB --shard I/N`) on a lab host
(a runner with the given tag: a host provisioned by ansible/lab-host.yml),
and uploads its run directory as an artifact, its junit.xml as the
engine's test report. A shard's exit 1 (tests failed) does not fail its
job: a failure may be pre-existing, which only the merged view can tell
(its baseline cell may have run on another shard). A last job, run
whatever the shards did, merges every shard's summary.json and junit.xml
(`lab junit merge`), prints `lab report`, and exits with the merged run's
exit code (0 passed, 1 tests failed, 2 infrastructure error).
"""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass

import yaml

from .errors import UserError


class Engine(enum.StrEnum):
    GITLAB = "gitlab"
    GITHUB = "github"


@dataclass(frozen=True)
class Pipeline:
    """What the emitted pipeline runs: the job file (a path relative to the
    repository the pipeline checks out), how many shards, on which runners."""

    job: str               # the job file, as the pipeline's checkout names it
    name: str              # the job's name: artifact and job names
    shards: int
    runner_tag: str = "lab"
    results: str = "results"   # the shards' run directories go under this
    merged: str = "merged"     # the merged run directory

    def run_argv(self, index: str) -> str:
        """The shell line of one shard; `index` is the engine's expression
        for the shard number."""
        return (f"lab run {shlex.quote(self.job)} --shard \"{index}/{self.shards}\" "
                f"-o \"{self.results}/shard-{index}\"")


def plan(job: str, name: str, cells: int, shards: int | None = None,
         runner_tag: str = "lab") -> Pipeline:
    """A pipeline of `shards` parallel jobs (default: one a cell) over a
    matrix of `cells` cells; every shard gets at least one cell."""
    n = cells if shards is None else shards
    if not 1 <= n <= cells:
        raise UserError(f"{n} shards for {cells} cell(s); valid: 1 to {cells} (a shard "
                        "with no cell would run nothing)", field="--shards")
    if n > 200:
        raise UserError(f"{n} shards; valid: at most 200 (GitLab's parallel:matrix limit, "
                        "and GitHub's 256 jobs a matrix)", field="--shards")
    tag = runner_tag.strip()
    if not tag or any(ch.isspace() or ch in "'\"$`\\" for ch in tag):
        raise UserError(f"{runner_tag!r} is not a runner tag; valid: one word, e.g. lab",
                        field="--runner-tag")
    return Pipeline(job=job, name=name, shards=n, runner_tag=tag)


# The merge step, the same on both engines: merge, report, exit with the
# merged run's exit code (python3 is on every lab host: Debian's).
def _merge_script(p: Pipeline, shard_dirs: str) -> list[str]:
    m = p.merged
    return [
        f"mkdir -p {m}",
        f"lab junit merge --summaries {m}/summary.json {shard_dirs}",
        f"lab junit merge {m}/junit.xml {shard_dirs}",
        f"lab report {m} --record | tee {m}/report.txt",
        f"lab report {m} --format markdown > {m}/report.md",
        f"exit \"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))"
        f"[\"exit_code\"])' {m}/summary.json)\"",
    ]


def gitlab(p: Pipeline) -> dict:
    """A GitLab child pipeline: trigger it from the parent with
    `trigger: {include: [{artifact: FILE, job: JOB}], strategy: depend}`."""
    shard_dir = f"{p.results}/shard-$SHARD"
    return {
        "stages": ["shards", "merge"],
        "variables": {"MATRIX_JOB": p.job},     # for people reading the pipeline; lab reads no such variable
        "lab-shard": {
            "stage": "shards",
            "tags": [p.runner_tag],
            "parallel": {"matrix": [{"SHARD": [str(i) for i in range(1, p.shards + 1)]}]},
            "script": [p.run_argv("$SHARD")],
            # 1 (tests failed) is judged by the merge job; 2 and 3 fail the shard
            "allow_failure": {"exit_codes": [1]},
            "artifacts": {
                "when": "always",
                "name": f"{p.name}-shard-$SHARD",
                "paths": [f"{shard_dir}/"],
                "reports": {"junit": f"{shard_dir}/junit.xml"},
                "expire_in": "30 days",
            },
        },
        "lab-merge": {
            "stage": "merge",
            "tags": [p.runner_tag],
            "when": "always",
            "needs": [{"job": "lab-shard", "artifacts": True}],
            "script": _merge_script(p, f"{p.results}/shard-*"),
            "artifacts": {"when": "always", "name": f"{p.name}-merged",
                          "paths": [f"{p.merged}/"], "expire_in": "30 days"},
        },
    }


def github(p: Pipeline) -> dict:
    """A GitHub Actions workflow (run by hand or called from another
    workflow, e.g. a nightly schedule)."""
    idx = "${{ matrix.shard }}"
    shard_dir = f"{p.results}/shard-{idx}"
    runs_on = ["self-hosted", p.runner_tag]
    return {
        "name": f"lab {p.name}",
        "on": {"workflow_dispatch": {}, "workflow_call": {}},
        "jobs": {
            "shard": {
                "name": f"{p.name} shard {idx}/{p.shards}",
                "runs-on": runs_on,
                "strategy": {"fail-fast": False,
                             "matrix": {"shard": list(range(1, p.shards + 1))}},
                "steps": [
                    {"uses": "actions/checkout@v4"},
                    {"name": "lab run (one shard)",
                     # 1 (tests failed) is judged by the merge job
                     "run": f"code=0\n{p.run_argv(idx)} || code=$?\n"
                            "echo \"lab run exited $code\"\n[ \"$code\" -le 1 ]\n"},
                    {"name": "upload the shard's results", "if": "always()",
                     "uses": "actions/upload-artifact@v4",
                     "with": {"name": f"{p.name}-shard-{idx}", "path": shard_dir,
                              "if-no-files-found": "warn"}},
                ],
            },
            "merge": {
                "name": f"{p.name} merged",
                "needs": "shard",
                "if": "always()",
                "runs-on": runs_on,
                "steps": [
                    {"uses": "actions/download-artifact@v4",
                     "with": {"pattern": f"{p.name}-shard-*", "path": p.results}},
                    {"name": "merge the shards and report",
                     "run": "\n".join(_merge_script(p, f"{p.results}/*")[:-1] + [
                         f"cat {p.merged}/report.md >> \"$GITHUB_STEP_SUMMARY\"",
                         _merge_script(p, "")[-1]]) + "\n"},
                    {"name": "upload the merged results", "if": "always()",
                     "uses": "actions/upload-artifact@v4",
                     "with": {"name": f"{p.name}-merged", "path": p.merged}},
                ],
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):   # no &id001 anchors: the file is read by people
        return True


def _str(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(p: Pipeline, engine: Engine | str) -> str:
    engine = Engine(engine)
    doc = gitlab(p) if engine is Engine.GITLAB else github(p)
    how = (f"# lab matrix {p.job} --format {engine} --shards {p.shards}"
           f" --runner-tag {p.runner_tag}\n")
    return how + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
