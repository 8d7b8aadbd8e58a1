# One JSON line per task result, host by host, appended to the file named by
# $LAB_EVENTS: how `lab hosts run` learns what each host did (its probe's
# output, its lab run's exit code, a host that became unreachable) without
# parsing ansible's screen output. Enabled by ANSIBLE_CALLBACKS_ENABLED=lab_events.
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: lab_events
type: notification
short_description: task results as JSON lines for lab hosts run
description: Appends one JSON object per task result to the file $LAB_EVENTS.
"""

KEEP = ("rc", "stdout", "stderr", "msg", "finished", "ansible_job_id", "changed", "skipped")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "lab_events"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, status: str, result) -> None:
        path = os.environ.get("LAB_EVENTS")
        if not path:
            return
        res = result._result if isinstance(result._result, dict) else {}
        event = {"time": time.time(), "host": result._host.get_name(),
                 "task": result._task.get_name(), "status": status,
                 **{k: res[k] for k in KEEP if k in res}}
        for k in ("stdout", "stderr", "msg"):
            if isinstance(event.get(k), str) and len(event[k]) > 20000:
                event[k] = event[k][-20000:]
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._write("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("failed", result)

    def v2_runner_on_unreachable(self, result):
        self._write("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._write("skipped", result)

    def v2_runner_retry(self, result):
        self._write("retry", result)
