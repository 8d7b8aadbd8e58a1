"""Pure parts of guest access and result parsing: /dev/kmsg records, fio JSON,
pin counters, the fake guest."""

import json

from lab.checks import parse_vmstat
from lab.guest.base import render_kmsg
from lab.workloads.fio_parse import parse_fio_json

KMSG = ("6,100,5000000,-;first line\n"
        " SUBSYSTEM=block\n"
        "4,101,6123456,-;WARNING: CPU: 0 PID: 1 at mm/gup.c:10 f\\x0asecond\n"
        "garbage without separator\n")


def test_render_kmsg_filters_by_cursor_and_keeps_continuations_out():
    text, nxt = render_kmsg(KMSG, 101)
    assert text == ("[    6.123456] WARNING: CPU: 0 PID: 1 at mm/gup.c:10 f\n"
                    "[    6.123456] second\n")
    assert nxt == 102
    all_text, nxt = render_kmsg(KMSG, 0)
    assert all_text.startswith("[    5.000000] first line\n") and nxt == 102
    assert render_kmsg("", 7) == ("", 7)


def test_fio_json_figures_with_leading_noise():
    js = {"jobs": [{"error": 0, "write": {"iops": 100.5, "bw": 402}, "read": {
        "iops": 200, "bw": 800, "io_bytes": 4096}}]}
    f = parse_fio_json("fio: warning\n" + json.dumps(js))
    assert f.write_iops == 100.5 and f.verified_bytes == 4096 and f.errors == 0


def test_vmstat_pins():
    assert parse_vmstat("nr_foll_pin_acquired 64\nnr_foll_pin_released 42\n").acquired == 64
    assert parse_vmstat("nr_free_pages 3\n") is None
