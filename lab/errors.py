"""The two kinds of error lab raises, and the exit codes the CLI maps them to.

Library code raises; only lab.cli decides how the process exits.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_TESTS_FAILED = 1
EXIT_INFRA = 2
EXIT_BAD_INPUT = 3


class LabError(Exception):
    """Base class; carries the exit code the CLI should use."""

    exit_code = EXIT_INFRA


class UserError(LabError):
    """Bad input: a job file, option or path the user gave is wrong.

    The message names the file, the field and what would be valid.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None):
        self.bare = message          # without the file/line/field prefix
        self.file = file
        self.field = field
        self.line = line
        where = []
        if file:
            where.append(f"{file}:{line}" if line else str(file))
        if field:
            where.append(f"field '{field}'")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class InfraError(LabError):
    """The host or a tool broke: qemu missing, disk full, guest never answered."""

    exit_code = EXIT_INFRA


class CommandTimeout(InfraError):
    """A command ran past its timeout; carries the command and its output tail."""

    def __init__(self, argv, timeout: float, output_tail: str = ""):
        self.argv = list(argv) if not isinstance(argv, str) else [argv]
        self.timeout = timeout
        self.output_tail = output_tail
        cmd = " ".join(self.argv)
        msg = f"timed out after {timeout:g}s waiting for: {cmd}"
        if output_tail:
            msg += "\n--- last output ---\n" + output_tail
        super().__init__(msg)
