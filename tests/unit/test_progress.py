"""The run's display: plain lines off a terminal (one per state change, log
lines prefixed with the boot), a live table on one, and a single boot's
log lines as they always were."""

import io

from lab.progress import Progress


def test_plain_lines_one_per_change():
    out = io.StringIO()
    p = Progress(["a#1", "b#1"], stream=out, live=False)
    p.set("a#1", "booting")
    p.set("a#1", "booting")
    p.set("a#1", "workload 1 of 2: fio")
    p.log("b#1", "guest up")
    p.close()
    assert out.getvalue().splitlines() == [
        "[lab] a#1: booting", "[lab] a#1: workload 1 of 2: fio", "[lab] b#1: guest up"]


def test_single_boot_logs_without_prefix_and_no_states():
    out = io.StringIO()
    p = Progress(["default#1"], stream=out, live=True)
    p.set("default#1", "booting")
    p.log("default#1", "guest up in 4.0s")
    p.close()
    assert out.getvalue() == "[lab] guest up in 4.0s\n"


def test_live_table_shows_every_boot_and_its_state():
    out = io.StringIO()
    p = Progress(["base.debug#1", "series.debug#1"], stream=out, live=True)
    p.set("series.debug#1", "building kernel")
    p.log("base.debug#1", "guest up")
    p.close()
    text = out.getvalue()
    assert "series.debug#1" in text and "building kernel" in text
    assert "base.debug#1" in text and "waiting" in text and "guest up" in text
