"""lab.kernellog on 6.1 x86_64 console logs, bad input and the ``lab dmesg`` command."""

import argparse
import io
import json
import random
import re
from pathlib import Path

import pytest

from lab.errors import UserError
from lab.kernellog import Finding, Kind, parse, parse_file
from lab.cli.dmesg import handler, register
from lab.kernellog.console import split_line
from lab.kernellog.parser import Scanner, merge

DATA = Path(__file__).parent / "data" / "kernellog"


def test_warn_on_in_gup():
    [f] = parse_file(DATA / "warn_gup.log")
    assert (f.kind, f.title, f.location, f.line, f.count, f.corrupted) == (
        Kind.WARNING, "WARNING in unpin_user_pages", "mm/gup.c:344", 3, 1, False)
    assert f.signature == "WARNING in unpin_user_pages @ mm/gup.c"
    lines = f.report.splitlines()
    assert lines[0].startswith("WARNING: CPU: 1 PID: 287 at mm/gup.c:344") and lines[-1].startswith("---[ end trace")
    assert "? exit_to_user_mode_prepare" not in f.report  # unreliable frames are dropped


def test_caller_tags_filter_other_tasks_and_cpus():
    [tagged] = parse_file(DATA / "warn_gup_tagged.log")
    [plain] = parse_file(DATA / "warn_gup.log")
    assert tagged.title == plain.title and tagged.report == plain.report
    assert "fio:" not in tagged.report and "clocksource" not in tagged.report


def test_hung_tasks_are_found_in_order_and_repeats_counted():
    jbd2, freeze = parse_file(DATA / "hung_task.log")
    assert jbd2.title == "INFO: task hung in jbd2_journal_commit_transaction"
    assert (jbd2.kind, jbd2.line, jbd2.count) == (Kind.HUNG_TASK, 2, 2)
    assert freeze.title == "INFO: task hung in freeze_super" and freeze.count == 1
    assert freeze.report.startswith("INFO: task fsfreeze:412 blocked for more than 10 seconds.")
    assert freeze.report.endswith("</TASK>")


def test_circular_locking_dependency():
    [f] = parse_file(DATA / "lockdep.log")
    assert (f.kind, f.title, f.corrupted) == (Kind.LOCKDEP, "possible deadlock in ext4_writepages", False)
    assert "*** DEADLOCK ***" in f.report and "random: crng" not in f.report


@pytest.mark.parametrize("raw, expected", [
    ("[   12.345678] WARNING: x", ("console", "WARNING: x", False)),
    ("[   12.345678][  T123] text", ("T123", "text", False)),
    ("[    1.000000][    C1]  ? foo+0x1/0x2", ("C1", " ? foo+0x1/0x2", True)),
    ("<4>[    1.500000] text\r", ("console", "text", False)),
    ("<4>WARNING: x", ("", "WARNING: x", False)),
    ("\x1b[0m[    1.0] colored", ("console", "colored", False)),
    ("[  OK  ] Started Journal Service.", ("", "[  OK  ] Started Journal Service.", False)),
])
def test_console_prefixes(raw, expected):
    assert split_line(raw) == expected


def test_titles_and_signatures_hold_nothing_that_changes_between_runs():
    log = (DATA / "warn_gup.log").read_text().replace("unpin_user_pages+", "unpin_user_pages.cold.12+")
    log += "[  50.0] BUG: spinlock bad magic on CPU#1, syz-executor.3/31337\n"
    for f in parse(log):
        assert not re.search(r"\d{3,}|0x|CPU#\d", f.title + f.signature), f


def test_many_reports_in_one_log():
    logs = [(DATA / n).read_text() for n in ("lockdep.log", "warn_gup.log", "hung_task.log", "warn_gup.log")]
    found = parse("".join(logs))
    assert [f.title for f in found] == [
        "possible deadlock in ext4_writepages", "WARNING in unpin_user_pages",
        "INFO: task hung in jbd2_journal_commit_transaction", "INFO: task hung in freeze_super"]
    assert [f.count for f in found] == [1, 2, 2, 1]


def test_userspace_lines_in_a_timestamped_log_are_not_reports():
    log = "[    1.000000] Linux version 6.1.0\n WARNING: BW peak won't be measured in this run.\n"
    assert parse(log) == [] and parse(log.splitlines()[1])[0].title.startswith("WARNING: BW peak")
    kernel = "WARNING: CPU: 0 PID: 1 at mm/gup.c:344 unpin_user_pages+0x1c5/0x1e0\n"
    assert [f.title for f in parse(log + kernel)] == ["WARNING in corrupted"]  # no stack: but found


@pytest.mark.parametrize("line", [
    "the quick brown fox BUG: jumps over the lazy dog",
    "[   12.000000] echo x WARNING: y",
    "[   12.000000][  T123] grep 'Kernel panic - not syncing' /var/log/x",
    "random text INFO: task x:1 blocked for more than 10 seconds.",
    "fio: verify BUG: kernel BUG at mm/gup.c:1",
])
def test_a_header_in_the_middle_of_a_line_is_not_a_report(line):
    """`lab dmesg` on random text found a report in "... BUG: ..." mid-line:
    a report starts only at the start of a line (past the console prefix)."""
    assert parse(line + "\n") == []
    assert parse("[    1.000000] Linux version 6.1.0\n" + line + "\n") == []


@pytest.mark.parametrize("line, kind", [
    ("BUG: spinlock bad magic on CPU#1, x/1", Kind.LOCKDEP),
    ("[   12.000000] BUG: spinlock bad magic on CPU#1, x/1", Kind.LOCKDEP),
    ("  BUG: KCSAN: data-race in f / g", Kind.KCSAN),
    ("rcu: INFO: rcu_preempt self-detected stall on CPU", Kind.RCU_STALL),
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [x:1]", Kind.SOFT_LOCKUP),
    ("NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", Kind.HARD_LOCKUP),
    ("Oops: general protection fault, probably for non-canonical address 0x1: 0000 [#1]",
     Kind.OOPS),
    ("[ INFO: possible circular locking dependency detected ]", Kind.LOCKDEP),
])
def test_headers_the_kernel_prefixes_itself_still_start_reports(line, kind):
    """The kernel's own lead-ins (pr_fmt tags, x86's "Oops: ") stay part of the line start."""
    [f] = parse(line + "\n")
    assert f.kind is kind and line.endswith(f.report.strip()), f


def test_reboot_only_after_kernel_output_and_kmemleak_objects_join():
    boot = "Decompressing Linux... Parsing ELF... done.\nBooting the kernel.\n[    0.000000] Linux version 6.1.0\n"
    assert parse(boot) == []
    assert [f.title for f in parse(boot + boot)] == ["unexpected kernel reboot"]
    leak = ("unreferenced object 0xffff888104b0f000 (size 4096):\n  backtrace:\n"
            "    [<000000006a0d3b2e>] kmalloc_trace+0x26/0x90\n    [<00000000d4b8a5a7>] rxe_mr_init_user+0x6b/0x2a0\n")
    [f] = parse(leak * 3)
    assert (f.kind, f.title, f.count) == (Kind.MEMORY_LEAK, "memory leak in rxe_mr_init_user", 1)


def test_live_feeding_matches_parse():
    scanner = Scanner()
    lines = (DATA / "hung_task.log").read_text().splitlines()
    found = [f for line in lines for f in scanner.feed(line)] + scanner.finish()
    assert merge(found) == parse_file(DATA / "hung_task.log")


def test_bad_input_does_not_crash(tmp_path):
    rng = random.Random(1)
    garbage = rng.randbytes(300_000)
    assert parse(garbage) == parse_file(_write(tmp_path, garbage)) and parse("") == []
    assert parse_file(_write(tmp_path, b"")) == []
    assert parse_file(_write(tmp_path, b"\x00" * 200_000)) == []  # one huge line
    good = (DATA / "warn_gup.log").read_bytes()
    broken = good.replace(b"Modules linked in", b"Modules \xff\xfe linked in")
    assert [f.title for f in parse_file(_write(tmp_path, broken))] == ["WARNING in unpin_user_pages"]
    crlf = parse_file(_write(tmp_path, good.replace(b"\n", b"\r\n")))
    assert crlf == parse_file(DATA / "warn_gup.log")
    mixed = parse(garbage[:5000] + b"\n" + good + garbage[5000:10000])
    assert "WARNING in unpin_user_pages" in [f.title for f in mixed]


def test_truncated_report_is_flagged(tmp_path):
    text = (DATA / "warn_gup.log").read_text()
    [f] = parse(text[:text.index("Call Trace")])
    assert f.title == "WARNING in unpin_user_pages" and f.corrupted
    [f] = parse_file(_write(tmp_path, (DATA / "hung_task.log").read_bytes()[:300]))
    assert f.title == "INFO: task hung in corrupted" and f.corrupted


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"log{len(list(tmp_path.iterdir()))}"
    path.write_bytes(data)
    return path


def _dmesg(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="lab")
    register(parser.add_subparsers())
    args = parser.parse_args(["dmesg", *argv])
    return args.func(args)


def test_command_json(capsys):
    assert _dmesg(str(DATA / "hung_task.log"), "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert [f["title"] for f in out["findings"]][0] == "INFO: task hung in jbd2_journal_commit_transaction"
    assert set(out["findings"][0]) == {"kind", "title", "signature", "corrupted", "line", "location",
                                      "report", "count"}
    assert out["findings"][0]["kind"] == "hung-task"


def test_command_summary_stdin_and_errors(capsys, monkeypatch, tmp_path):
    assert _dmesg(str(DATA / "warn_gup.log")) == 1
    assert "warn_gup.log:3: warning: WARNING in unpin_user_pages (mm/gup.c:344)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[ 1.0] all fine\n")))
    assert _dmesg("-") == 0 and "<stdin>: no kernel reports" in capsys.readouterr().out
    with pytest.raises(UserError) as error:
        _dmesg(str(tmp_path / "missing.log"))
    assert error.value.file == str(tmp_path / "missing.log") and error.value.exit_code == 3
    with pytest.raises(UserError):
        handler(argparse.Namespace(file=str(tmp_path), json=False))


def test_finding_to_dict_is_json_ready():
    f = Finding(Kind.BUG, "kernel BUG in f", "kernel BUG in f", "kernel BUG at x.c:1!", 7, "x.c:1")
    assert json.loads(json.dumps(f.to_dict()))["kind"] == "bug"


def test_lines_given_one_by_one_as_bytes_are_parsed_as_the_text_is():
    """A console read line by line (bytes, each with its newline, invalid
    UTF-8 in it, trailing blanks) gives the findings its text gives."""
    text = (DATA / "warn_gup.log").read_bytes().replace(b"Modules linked in",
                                                          b"Modules \xff linked in  ")
    whole = parse(text)
    by_line = parse(iter(text.splitlines(keepends=True)))
    assert [(f.title, f.report, f.line, f.location, f.corrupted) for f in by_line] == \
        [(f.title, f.report, f.line, f.location, f.corrupted) for f in whole]
    assert "Modules \ufffd linked in  " in whole[0].report


@pytest.mark.parametrize("chunk", [3, 4, 5, 7, 64])
def test_a_file_read_in_chunks_gives_its_lines_whatever_the_chunk(chunk):
    """Lines no longer than a chunk come out whole (an empty one, the last
    without its newline, invalid UTF-8 as U+FFFD), however the reads fall."""
    from lab.kernellog.parser import read_lines
    data = b"ab\ncd\n\nefg\na\xffb\nh"
    assert list(read_lines(io.BytesIO(data), chunk)) == ["ab", "cd", "", "efg", "a\ufffdb", "h"]
    assert list(read_lines(io.BytesIO(b""), chunk)) == []


def test_a_line_longer_than_a_chunk_is_cut_into_chunks():
    """Memory stays bounded by the chunk: a line with no newline in a whole
    chunk is cut there."""
    from lab.kernellog.parser import read_lines
    assert list(read_lines(io.BytesIO(b"abcdefghij\nxy\n"), 4)) == ["abcd", "efgh", "ij", "xy"]


def test_live_feeding_of_raw_serial_lines_matches_parse():
    """A live console gives lines as the serial port does: with their
    newline, a carriage return before it."""
    scanner = Scanner()
    lines = [line + "\r\n" for line in (DATA / "hung_task.log").read_text().splitlines()]
    found = [f for line in lines for f in scanner.feed(line)] + scanner.finish()
    assert merge(found) == parse_file(DATA / "hung_task.log")


WARN_HEAD = ("[   50.000001] WARNING: CPU: 1 PID: 300 at mm/gup.c:12 unpin_user_pages+0x10/0x20\n"
             "[   50.000002] Call Trace:\n[   50.000003]  <TASK>\n"
             "[   50.000004]  unpin_user_pages+0x10/0x20\n[   50.000005]  </TASK>\n")


@pytest.mark.parametrize("noise, lines", [(49, 5 + 49 + 1), (50, 5)])
def test_a_report_ends_after_50_lines_unlike_a_report_and_leaves_them_out(noise, lines):
    """Up to 49 lines of other output inside a report are kept (a frame may
    follow); the 50th ends it, and those lines are not the report's."""
    text = WARN_HEAD + "".join(f"[   50.{10 + i:06d}] noise line {i}\n" for i in range(noise))
    [f] = parse(text + "[   51.000000]  late_frame+0x1/0x2\n")
    assert len(f.report.splitlines()) == lines
    assert ("late_frame" in f.report) == (noise < 50)


def test_the_lock_debugging_notice_is_not_part_of_a_report():
    text = WARN_HEAD.replace("[   50.000004]", "[   50.000004] Disabling lock debugging due to "
                                                 "kernel taint\n[   50.000004]")
    [f] = parse(text)
    assert f.report == parse(WARN_HEAD)[0].report


class Trickle(io.RawIOBase):
    """A pipe from a slow console: each read gives at most `step` bytes."""

    def __init__(self, data: bytes, step: int):
        self.data, self.step = data, step

    def read(self, n=-1):
        out, self.data = self.data[:min(n, self.step)], self.data[min(n, self.step):]
        return out


@pytest.mark.parametrize("step", [1, 2, 3])
def test_a_console_read_in_short_pieces_gives_its_lines(step):
    """Short reads (a pipe, a serial port) are not the end of the file:
    the lines come out whole, an empty first one and the last one too."""
    from lab.kernellog.parser import read_lines
    data = b"\nab\ncd\n\nefg\nh"
    assert list(read_lines(Trickle(data, step), 64)) == ["", "ab", "cd", "", "efg", "h"]


@pytest.mark.parametrize("head, lines, kept", [
    ("WARNING: CPU: 1 PID: 300 at mm/gup.c:12 unpin_user_pages+0x10/0x20", 22, True),
    ("WARNING: CPU: 1 PID: 300 at mm/gup.c:12 unpin_user_pages+0x10/0x20", 23, False),
    ("BUG: KMSAN: uninit-value in foo+0x1/0x2", 16, True),
    ("BUG: KMSAN: uninit-value in foo+0x1/0x2", 17, False)])
def test_a_panic_after_a_full_report_adds_nothing_to_it(head, lines, kept):
    """panic_on_warn: the panic that follows a report of more than 22 lines
    (16 for KMSAN) and its stack add nothing, and are left out; after a
    short report they may carry what it lacks, and are kept."""
    text = "".join([f"[   50.000001] {head}\n"]
                   + [f"[   50.{i + 2:06d}]  frame{i}+0x10/0x20\n" for i in range(lines - 1)]
                   + ["[   50.100000] Kernel panic - not syncing: panic_on_warn set ...\n",
                      "[   50.100001]  after_panic+0x1/0x2\n"])
    [f] = parse(text)
    assert ("after_panic" in f.report) == kept


def test_the_backtraces_a_stall_report_asks_other_cpus_for_are_part_of_it():
    """An RCU stall sends NMIs to the stalled CPUs: their backtraces, tagged
    with those CPUs, belong to the report that asked for them."""
    [f] = parse("[   50.000001][    T1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n"
                "[   50.000002][    T1] rcu: \t1-...!: (1 GPs behind)\n"
                "[   50.000003][    T1] Sending NMI from CPU 0 to CPUs 1:\n"
                "[   50.000004][    C1] NMI backtrace for cpu 1\n"
                "[   50.000005][    C1] Call Trace:\n"
                "[   50.000006][    C1]  nmi_frame+0x1/0x2\n"
                "[   50.000007][    C1]  other_frame+0x1/0x2\n")
    assert f.report.splitlines()[-4:] == ["NMI backtrace for cpu 1", "Call Trace:",
                                          " nmi_frame+0x1/0x2", " other_frame+0x1/0x2"]
