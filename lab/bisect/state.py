"""A bisection's state file, bisect.json: its setup (everything needed to
resume it), its revisions and every run with its verdict. Rewritten
atomically after every run, so Ctrl-C, a crash or a power cut leaves a state
that `lab bisect --resume DIR` continues from; the search itself keeps no
state (lab/bisect/search.py reads the runs)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import UserError
from ..store import write_atomic
from .revisions import Revision
from .search import Observation, Policy, Verdict
from .target import Target

STATE_FILE = "bisect.json"
FORMAT = 1


class Status:
    RUNNING = "running"
    INTERRUPTED = "interrupted"   # Ctrl-C / SIGTERM: resumable
    FAILED = "failed"             # an infrastructure error: resumable
    FINISHED = "finished"


@dataclass(frozen=True)
class Setup:
    """The bisection as asked for, paths absolute (so --resume works from
    any directory)."""

    target: Target
    policy: Policy
    tree: str | None = None
    ref: str | None = None
    linux_source: bool = False
    series: tuple[str, ...] = ()
    good: str | None = None
    bad: str | None = None
    fragments: tuple[str, ...] | None = None   # None: the job's, else lab + debug
    job: str | None = None
    cell: str | None = None
    workloads: tuple[str, ...] = ()
    image: str = "debian-bookworm"

    @property
    def mode(self) -> str:
        return "series" if self.series else "tree"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target"] = self.target.to_dict()
        d["policy"] = asdict(self.policy)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Setup":
        d = dict(d)
        d["target"] = Target.from_dict(d["target"])
        d["policy"] = Policy(**d["policy"])
        for k in ("series", "workloads"):
            d[k] = tuple(d.get(k) or ())
        if d.get("fragments") is not None:
            d["fragments"] = tuple(d["fragments"])
        return cls(**d)


@dataclass
class RunRecord:
    """One counted run of one revision."""

    index: int
    n: int                         # its number among that revision's runs (1-based)
    verdict: str
    reason: str = ""
    run_dir: str = ""              # relative to the bisection's directory
    evidence: list[str] = field(default_factory=list)
    signature: str = ""
    others: list[str] = field(default_factory=list)
    started: str = ""
    seconds: dict[str, float] = field(default_factory=dict)   # total, build, make, boot, workload
    kernel: dict[str, str] = field(default_factory=dict)      # cache, release, artifact, commit
    retried: list[str] = field(default_factory=list)          # dirs of infra attempts before it

    @property
    def observation(self) -> Observation:
        return Observation(self.index, Verdict(self.verdict), self.reason)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunRecord":
        return cls(**d)


@dataclass
class State:
    id: str
    setup: Setup
    mode: str
    revisions: list[Revision]
    series_hash: str = ""
    of: int = 0
    status: str = Status.RUNNING
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    updated: str = ""
    argv: list[str] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    infra: list[dict] = field(default_factory=list)   # attempts that failed for the host
    result: dict | None = None
    pid: int = field(default_factory=os.getpid)

    @property
    def observations(self) -> list[Observation]:
        return [r.observation for r in self.runs]

    def steps(self) -> list[int]:
        """Indices in the order they were first run."""
        return list(dict.fromkeys(r.index for r in self.runs))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "id": self.id, "status": self.status,
                "created": self.created, "updated": self.updated, "pid": self.pid,
                "argv": self.argv, "setup": self.setup.to_dict(), "mode": self.mode,
                "series_hash": self.series_hash, "of": self.of,
                "revisions": [r.to_dict() for r in self.revisions],
                "runs": [r.to_dict() for r in self.runs], "infra": self.infra,
                "result": self.result}

    @classmethod
    def from_dict(cls, d: dict) -> "State":
        return cls(id=d["id"], setup=Setup.from_dict(d["setup"]), mode=d["mode"],
                   revisions=[Revision.from_dict(r) for r in d["revisions"]],
                   series_hash=d.get("series_hash", ""), of=d.get("of", 0),
                   status=d.get("status", Status.RUNNING), created=d.get("created", ""),
                   updated=d.get("updated", ""), argv=list(d.get("argv") or []),
                   runs=[RunRecord.from_dict(r) for r in d.get("runs") or []],
                   infra=list(d.get("infra") or []), result=d.get("result"))

    def save(self, directory: Path) -> None:
        self.updated = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_atomic(directory / STATE_FILE, json.dumps(self.to_dict(), indent=1) + "\n")

    def resumed(self) -> "State":
        return replace(self, status=Status.RUNNING, result=None, pid=os.getpid())


def load(directory: Path) -> State:
    path = Path(directory) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no {STATE_FILE} in {directory} (valid: the directory a `lab bisect` "
                        "printed, holding its bisect.json)", field="--resume") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a bisection state file: {e}", field="--resume") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not a bisection state file of format {FORMAT}",
                        field="--resume")
    try:
        return State.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path} is damaged ({type(e).__name__}: {e})", field="--resume") \
            from None
