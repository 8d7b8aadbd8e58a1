"""Kernel console output -> findings (warnings, oopses, lockdep splats, hangs, ...).

Pure code: ``parse`` takes text or lines, ``parse_file`` streams a log file.
Titles follow syzbot's conventions ("WARNING in unpin_user_pages").
"""

from lab.kernellog.finding import Finding, Kind
from lab.kernellog.parser import parse, parse_file, scan

__all__ = ["Finding", "Kind", "parse", "parse_file", "scan"]
