"""Argument parsing and exit codes, nothing else.

Exit codes: 0 all passed, 1 tests failed, 2 infrastructure error, 3 bad input,
130 interrupted."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from ..errors import EXIT_BAD_INPUT, EXIT_INFRA, LabError
from .helptext import EXIT_INTERRUPTED, main_epilog, version

# Modules that add their own subcommands through register(subparsers).
COMMAND_MODULES = ("lab.cli.core", "lab.cli.dmesg", "lab.cli.kernel", "lab.cli.report",
                   "lab.cli.export", "lab.cli.bisect", "lab.cli.hosts")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # bad usage is bad input: exit 3, not argparse's 2
        self.print_usage(sys.stderr)
        print(f"lab: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lab", description="QEMU integration test lab for patched Linux kernels",
                epilog=main_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LabError as e:
        print(f"lab: {'error' if e.exit_code == EXIT_INFRA else 'bad input'}: {e}",
              file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lab: interrupted; qemu stopped, finished results kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:     # the host: a full or read-only filesystem, a vanished file
        where = f"{e.filename}: " if e.filename else ""
        print(f"lab: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_INFRA


if __name__ == "__main__":
    sys.exit(main())
