"""Fuzz of the job loader (issue 10): any YAML document, and any mutation of
a shipped job, gives a Job or a UserError naming the file (and a field,
unless the whole file is wrong), within a second; never another exception.

CI runs FUZZ_EXAMPLES (300) cases a property; LAB_FUZZ_EXAMPLES=N runs N,
and bench/fuzz_jobs.py runs 10,000 and counts valid / rejected / crashed.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from lab.errors import UserError
from lab.job import MACHINE_KEYS, TOP_KEYS, load_job
from lab.paths import PROJECT_ROOT

FUZZ_EXAMPLES = int(os.environ.get("LAB_FUZZ_EXAMPLES", "300"))
SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
SHIPPED = {p.name: yaml.safe_load(p.read_text())
           for p in sorted((PROJECT_ROOT / "jobs").glob("*.yaml"))}
# errors about the whole file name no field
FILE_LEVEL = ("not valid YAML", "a job file must be", "larger than", "cannot read")

ODD = ["", " ", "..", "../../../x", "a/b", "a,b", "x" * 300, "~", "-1", ".inf", ".nan",
       "{", "*a", "\x00", "é", "distro", "debian-bookworm", "fio", "shell", "rdma", "dax",
       "gup_test", "nvme", "ext4", "io_uring", "4k", "4k;x", "base", "default", "lab"]
KEYS = sorted({*TOP_KEYS, *MACHINE_KEYS, "boot", "workload", "build", "artifact", "distro",
               "fragments", "cmdline", "baseline", "include", "exclude", "kernel", "variant",
               "options", "timeout", "targets", "engines", "bs", "size_mb", "case", "command",
               "variants", "backings", "linux_source", "series", "tree", "ref"})
scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                    st.sampled_from([0, -1, 2**31, 10**30, 10**400]),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from(ODD))
keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(ODD), st.integers(-2, 2))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=16)
workload = st.dictionaries(st.sampled_from(["fio", "shell", "rdma", "dax", "gup_test"]),
                           st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
                           min_size=1, max_size=1)
# mostly job-shaped, so the checks past the first few fields run too
jobs = st.fixed_dictionaries(
    {"kernel": st.one_of(st.just("distro"), values), "image": st.one_of(
        st.just("debian-bookworm"), values), "workloads": st.one_of(st.lists(workload,
                                                                             max_size=3), values)},
    optional={k: values for k in TOP_KEYS if k not in ("kernel", "image", "workloads")})
documents = st.one_of(jobs, values, st.dictionaries(keys, values, max_size=6))


def _workdir() -> Path:
    """jobs/ beside links to the project's kernels/ and images/, so a
    shipped job's relative paths still resolve."""
    d = Path(tempfile.mkdtemp(prefix="lab-fuzz-"))
    (d / "jobs").mkdir()
    for sub in ("kernels", "images"):
        (d / sub).symlink_to(PROJECT_ROOT / sub)
    return d / "jobs"


WORK = _workdir()


def outcome(text: str) -> str:
    """'valid' or 'rejected' (asserting the error's form); anything else
    raised is a crash and propagates."""
    path = WORK / "job.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    t = time.process_time()          # CPU time: a busy host does not make it flaky
    try:
        load_job(path)
        result = "valid"
    except UserError as e:
        assert e.file == str(path) and str(path) in str(e), str(e)
        assert e.field or e.bare.startswith(FILE_LEVEL), str(e)
        assert e.exit_code == 3
        result = "rejected"
    took = time.process_time() - t
    assert took < 1.0, f"load took {took:.2f}s of CPU"
    return result


def _paths(node, at=()):
    yield at
    items = (node.items() if isinstance(node, dict) else
             enumerate(node) if isinstance(node, list) else ())
    for k, v in items:
        yield from _paths(v, at + (k,))


@st.composite
def mutated_jobs(draw) -> str:
    """A shipped job with one key or item dropped, replaced, retyped,
    emptied or duplicated, somewhere in it."""
    doc = yaml.safe_load(yaml.safe_dump(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))]))
    at = draw(st.sampled_from(list(_paths(doc))[1:]))
    parent = doc
    for k in at[:-1]:
        parent = parent[k]
    key, old = at[-1], parent[at[-1]]
    op = draw(st.sampled_from(["drop", "replace", "retype", "empty", "duplicate"]))
    if op == "drop":
        del parent[key]
    elif op == "replace":
        parent[key] = draw(values)
    elif op == "retype":
        parent[key] = draw(st.sampled_from([str(old), [old], {"x": old}, 0, None, True]))
    elif op == "empty":
        parent[key] = type(old)() if isinstance(old, (list, dict, str)) else None
    elif isinstance(parent, list):
        parent.append(old)
    else:
        parent[f"{key}2" if isinstance(key, str) else key] = old
    return yaml.safe_dump(doc, allow_unicode=True)


raw_texts = st.one_of(st.text(max_size=200), st.builds(
    "".join, st.lists(st.sampled_from(["a: ", "&x ", "*x", "[", "]", "{", "}", "- ", "\n",
                                       "  ", ":", "!!python/object ", "<<: ", "? ", "'",
                                       "1e400", "name", "kernel"]), max_size=40)))


@SETTINGS
@given(st.one_of(documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), raw_texts))
def test_any_document_is_a_job_or_a_user_error(text):
    outcome(text)


@SETTINGS
@given(mutated_jobs())
def test_any_mutation_of_a_shipped_job_is_a_job_or_a_user_error(text):
    outcome(text)
