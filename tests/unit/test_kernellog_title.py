"""How a report is named (lab/kernellog/title.py): the title, its source
location, and when the report is marked corrupted."""

from lab.kernellog import Kind, parse
from lab.kernellog.title import sanitize

TRACE = """\
[   50.000003] Modules linked in: rdma_rxe
[   50.000005] RIP: 0010:unpin_user_pages+0x10/0x20
[   50.000006] Call Trace:
[   50.000007]  <TASK>
[   50.000008]  rxe_mr_cleanup+0x20/0x40 [rdma_rxe]
[   50.000009]  ib_dereg_mr_user+0x30/0x60
[   50.000010]  </TASK>
"""


def report(first_line: str, rest: str = TRACE):
    [f] = parse(f"[   50.000001] {first_line}\n" + rest)
    return f


def test_a_clean_report_is_not_corrupted():
    f = report("UBSAN: shift-out-of-bounds in mm/gup.c:12:3")
    assert (f.title, f.kind, f.corrupted) == ("UBSAN: shift-out-of-bounds in rxe_mr_cleanup",
                                              Kind.UBSAN, False)


def test_a_timestamp_inside_the_title_marks_it_corrupted():
    """Two CPUs printing at once: another line's timestamp lands inside the
    header. The title is still given, but a report whose title holds a
    timestamp is not trusted as the name of a distinct bug."""
    f = report("UBSAN: shift-out-of-bo[   50.000099] unds in mm/gup.c:12:3")
    assert f.corrupted
    assert f.title.startswith("UBSAN: shift-out-of-bo")


def test_the_source_location_may_be_on_the_second_line():
    """Older kernels print a page fault's IP, with its file:line, on the line
    after the header: the location is looked for on the first two lines."""
    f = report("BUG: unable to handle kernel paging request at 00000000ffffff8a",
               "[   50.000002] IP: [<ffffffff810a376f>] unpin_user_pages+0x1f/0x280 "
               "mm/gup.c:3046\n" + TRACE)
    assert f.location == "mm/gup.c:3046"
    assert f.signature.endswith("@ mm/gup.c")


def test_a_location_on_the_third_line_is_not_the_reports():
    f = report("BUG: unable to handle kernel paging request at 00000000ffffff8a",
               "[   50.000002] PGD 0 P4D 0\n"
               "[   50.000002] IP: [<ffffffff810a376f>] unpin_user_pages+0x1f/0x280 "
               "mm/gup.c:3046\n" + TRACE)
    assert f.location is None


def test_the_location_names_the_file_and_line_of_a_warning():
    f = report("WARNING: CPU: 1 PID: 300 at include/linux/mm.h:1234 unpin_user_pages+0x10/0x20")
    assert f.location == "include/linux/mm.h:1234"
    assert report("WARNING: CPU: 1 PID: 300 at arch/x86/entry/entry_64.S:99 "
                  "unpin_user_pages+0x10/0x20").location == "arch/x86/entry/entry_64.S:99"


def test_sanitize_drops_what_changes_between_runs():
    assert sanitize("INFO: task syz-executor.3:1234 blocked") == "INFO: task syz-executor blocked"
    assert sanitize("general protection fault in foo+0x1f/0x280") == \
        "general protection fault in foo"
    assert sanitize("KASAN: slab-out-of-bounds Read in f at addr ffff88801234abcd") == \
        "KASAN: slab-out-of-bounds Read in f at addr ADDR"
    assert sanitize("kernel BUG at fs/ext4/inode.c:123!") == "kernel BUG at fs/ext4/inode.c:LINE!"
    assert sanitize("rcu detected stall on CPU#1 and 2") == "rcu detected stall on CPU and NUM"
    assert sanitize("a\tb\x01 c  d") == "a b c d"
    assert len(sanitize("x" * 500)) == 120


def test_a_fresh_process_titles_as_a_warm_one(monkeypatch):
    """The combined title regex of each group is built on first use (its
    cache empty, as in a new `lab dmesg`) and gives the same titles."""
    from lab.kernellog import title
    warm = report("UBSAN: shift-out-of-bounds in mm/gup.c:12:3")
    monkeypatch.setattr(title, "_ANY_TITLE", {})
    cold = report("UBSAN: shift-out-of-bounds in mm/gup.c:12:3")
    assert (cold.title, cold.corrupted) == (warm.title, warm.corrupted) == (
        "UBSAN: shift-out-of-bounds in rxe_mr_cleanup", False)
    assert title._ANY_TITLE             # ... and kept for the next report


def stack_report(between: int, frames: int = 2):
    """A WARNING whose Call Trace has `between` register lines before its
    first of `frames` frames."""
    return parse("[   50.000001] WARNING: CPU: 1 PID: 300 at mm/gup.c:12 unpin_user_pages+0x10/0x20\n"
                 "[   50.000002] Call Trace:\n"
                 + "".join(f"[   50.{3 + i:06d}] RAX: {i:04d}\n" for i in range(between))
                 + "".join(f"[   50.{100000 + i:06d}]  frame{i}+0x10/0x20\n"
                           for i in range(frames)))[0]


def test_a_stack_trace_has_a_frame_within_15_lines_of_its_header():
    """A report cut before its frames (another CPU's lines in between, a
    lost console buffer) is corrupted: its title may name the wrong function."""
    assert not stack_report(14).corrupted
    assert stack_report(15).corrupted


def test_a_stack_trace_has_two_lines_at_least():
    assert stack_report(0, frames=1).corrupted
    assert not stack_report(0, frames=2).corrupted
