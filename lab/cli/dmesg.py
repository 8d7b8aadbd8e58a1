"""``lab dmesg FILE [--json]``: the kernel reports in a console log."""

from __future__ import annotations

import argparse
import json
import sys

from lab.errors import EXIT_OK, EXIT_TESTS_FAILED, UserError
from lab.kernellog.finding import Finding
from lab.kernellog.parser import merge, parse_file, read_lines, scan


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dmesg", help="find kernel warnings, oopses, lockdep reports and hangs in a console log",
        description="Read a kernel console log or dmesg output and list the kernel reports in it, "
                    "titled like syzbot does (\"WARNING in unpin_user_pages\"). Exit status: 0 when "
                    "there are none, 1 when there are, 3 when FILE cannot be read.")
    parser.add_argument("file", metavar="FILE", help="console log or dmesg output; - reads standard input")
    parser.add_argument("--json", action="store_true",
                        help='print {"findings": [...]} with each report\'s full text')
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    findings = _read(args.file)
    if args.json:
        json.dump({"findings": [f.to_dict() for f in findings]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(summary(args.file, findings))
    return EXIT_TESTS_FAILED if findings else EXIT_OK


def _read(path: str) -> list[Finding]:
    if path == "-":
        return merge(scan(read_lines(sys.stdin.buffer)))
    try:
        return parse_file(path)
    except FileNotFoundError:
        raise UserError("no such file; give the path of a console log, or - for standard input",
                        file=path) from None
    except IsADirectoryError:
        raise UserError("is a directory; give the path of a console log file", file=path) from None
    except PermissionError:
        raise UserError("cannot be read: permission denied", file=path) from None


def summary(path: str, findings: list[Finding]) -> str:
    """One line a report, ``FILE:LINE: kind: title``, as compilers print errors."""
    name = "<stdin>" if path == "-" else path
    if not findings:
        return f"{name}: no kernel reports\n"
    total = sum(f.count for f in findings)
    out = [f"{name}: {total} kernel report{'s' if total != 1 else ''}, {len(findings)} distinct"]
    for f in findings:
        notes = [f.location] if f.location else []
        if f.count > 1:
            notes.append(f"{f.count} times")
        if f.corrupted:
            notes.append("truncated or interleaved")
        extra = f" ({', '.join(notes)})" if notes else ""
        out.append(f"{name}:{f.line}: {f.kind}: {f.title}{extra}")
    return "\n".join(out) + "\n"
