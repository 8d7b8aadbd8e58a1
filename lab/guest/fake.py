"""A fake guest for unit tests of orchestration code (shipped with lab, like
fabric.testing): commands are answered from a table of regex -> Result."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from ..errors import CommandTimeout
from ..proc import Result
from .base import Guest


Answer = Result | Callable[[str], Result]


class FakeGuest(Guest):
    def __init__(self, answers: list[tuple[str, Answer]] | None = None,
                 files: dict[str, bytes] | None = None, kmsg: list[str] | None = None):
        self.answers: list[tuple[re.Pattern, Answer]] = [
            (re.compile(p), a) for p, a in (answers or [])]
        self.files: dict[str, bytes] = dict(files or {})
        self.commands: list[str] = []
        self.kmsg = list(kmsg or [])   # dmesg-style lines
        self.up = True

    def answer(self, pattern: str, stdout: str = "", rc: int = 0, stderr: str = "") -> None:
        self.answers.append((re.compile(pattern),
                             Result(("sh", "-c", pattern), rc, stdout, stderr, 0.0)))

    def run(self, cmd, *, timeout, check=False, log=None):
        self.commands.append(cmd)
        if not self.up:
            raise CommandTimeout(["ssh", cmd], timeout)
        for pat, ans in reversed(self.answers):
            if pat.search(cmd):
                r = ans(cmd) if callable(ans) else ans
                break
        else:
            r = Result(("sh", "-c", cmd), 0, "", "", 0.0)
        if log:
            Path(log).write_text(r.stdout + r.stderr)
        if check and not r.ok:
            from ..errors import InfraError
            raise InfraError(f"guest command failed ({r.returncode}): {cmd}")
        return r

    def put(self, local, remote, mode=None):
        self.files[remote] = Path(local).read_bytes()

    def get(self, remote, local):
        Path(local).write_bytes(self.files[remote])

    def alive(self, timeout=10.0):
        return self.up

    def kmsg_cursor(self):
        return len(self.kmsg)

    def kmsg_since(self, cursor, timeout=60):
        lines = self.kmsg[cursor:]
        return ("".join(l if l.endswith("\n") else l + "\n" for l in lines), len(self.kmsg))
