"""Merging the summary.json of a matrix's shards into one (pure).

A nightly matrix split across hosts leaves one run directory per shard; the
report and the history want one run. The exit code is recomputed by
lab.report over all cells together, since a shard alone cannot tell that
its failure is pre-existing when the baseline cell ran on another shard.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import UserError
from .report import classify
from .results import RunState, epoch

# Worst last: a shard still (or forever) running hides results the merged
# run lacks; crashed and bad-input shards mean the matrix did not run at all.
_STATE_ORDER = (RunState.FINISHED, RunState.INTERRUPTED, RunState.RUNNING, RunState.CRASHED,
                RunState.BAD_INPUT)


def _state_rank(state) -> int:
    try:
        return _STATE_ORDER.index(RunState(state))
    except ValueError:
        return _STATE_ORDER.index(RunState.CRASHED)  # missing or unknown: assume the worst


def merge_summaries(summaries: Sequence[dict], names: Sequence[str] | None = None) -> dict:
    """One summary (format 2) from the shards' summaries: cells deduplicated
    by id (first wins), suites concatenated in order, the worst state, the
    earliest start and latest end, the exit code recomputed with no history.
    Run id, job and name come from the first shard; `shards` lists them all."""
    names = list(names) if names is not None else [f"input {i + 1}" for i in range(len(summaries))]
    if not summaries:
        raise UserError("nothing to merge: give at least one summary.json")
    for summary, name in zip(summaries, names):
        if not isinstance(summary, dict) or not isinstance(summary.get("suites", []), list):
            raise UserError("not a lab summary.json (expected an object with a suites list)",
                            file=name)
    first = summaries[0]
    cells: dict[str, dict] = {}
    for s in summaries:
        for c in s.get("cells") or []:
            if isinstance(c, dict) and c.get("id"):
                cells.setdefault(str(c["id"]), c)
    started = [s["started"] for s in summaries if epoch(s.get("started")) is not None]
    ended = [s.get("ended") for s in summaries]
    state = max((_state_rank(s.get("state")) for s in summaries))
    merged = {
        "format": 2, "run_id": first.get("run_id") or "", "job": first.get("job"),
        "name": first.get("name"), "argv": first.get("argv"),
        "shards": [s.get("run_id") or n for s, n in zip(summaries, names)],
        "started": min(started, key=epoch) if started else None,
        "ended": (max(ended, key=epoch)
                  if all(epoch(e) is not None for e in ended) else None),  # one still running
        "state": str(_STATE_ORDER[state]),
        "cells": list(cells.values()),
        "suites": [suite for s in summaries for suite in s.get("suites") or []],
    }
    merged["exit_code"] = classify(merged, lambda _cell: None).exit_code
    return merged
