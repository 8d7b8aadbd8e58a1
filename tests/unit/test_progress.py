"""The run's display: plain lines off a terminal (one per state change of a
matrix, one per boot stage and per finished case, log lines prefixed with
the boot), a live table on one (a single boot: one status line), and what
`lab run` prints through lab's FakeMachine."""

import io

from lab import progress as progress_mod
from lab.progress import Progress, case_line, duration
from lab.results import CaseResult, Status


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


def test_durations_and_case_lines():
    assert [duration(s) for s in (0, 42.9, 187, 3725)] == ["0s", "42s", "3m07s", "1h02m"]
    assert case_line(CaseResult("boot", Status.PASSED, 13.24, classname="boot")) == \
        "passed boot (13.2s)"
    assert case_line(CaseResult("nvme.randrw", Status.FAILED, 31.0, classname="fio",
                                message="verify failed\nat offset 0")) == \
        "failed fio.nvme.randrw (31.0s): verify failed"
    assert case_line(CaseResult("gup", Status.SKIPPED, message="no CONFIG_GUP_TEST")) == \
        "skipped gup: no CONFIG_GUP_TEST"
    assert case_line(CaseResult("x", Status.ERROR, message="m" * 300)).endswith("m...")


def test_stages_and_cases_are_lines_off_a_terminal():
    out = io.StringIO()
    p = Progress(["default#1"], stream=out, live=False)
    p.stage("default#1", "kernel booting", 1.25)
    p.cases("default#1", [CaseResult("boot", Status.PASSED, 12.0, classname="boot")])
    p.close()
    assert out.getvalue().splitlines() == ["[lab] boot: kernel booting (1.2s)",
                                           "[lab] passed boot (12.0s)"]
    out = io.StringIO()
    p = Progress(["a#1", "b#1"], stream=out, live=False)
    p.stage("b#1", "ssh up", 9.0)
    assert out.getvalue() == "[lab] b#1: boot: ssh up (9.0s)\n"
    assert p.states["b#1"][0] == "booting: ssh up"


def test_a_single_boots_status_line_says_how_long(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: now[0])
    p = Progress(["default#1"], stream=io.StringIO(), live=False)
    now[0] = 130.0
    p.set("default#1", "workload 2 of 5: fio")
    now[0] = 172.0
    assert str(p._render()) == "[lab] workload 2 of 5: fio (42s; 1m12s in all)"
    table = Progress(["a#1", "b#1"], stream=io.StringIO(), live=False)._render()
    assert [c.header for c in table.columns] == ["cell", "state", "for"]


def test_paused_stops_the_live_display_and_starts_it_again():
    p = Progress(["default#1"], stream=io.StringIO(), live=True)
    first = p._live
    with p.paused():
        assert p._live is None
    assert p._live is not None and p._live is not first
    p.close()
    with p.paused():                 # closed: stays off
        pass
    assert p._live is None


def run_fake(tmp_path, job_text, capsys):
    from lab.job import load_job
    from lab.runner import run_job
    from .conftest import make_artifact
    art = make_artifact(tmp_path / "art", "6.1-fake")
    path = tmp_path / "j.yaml"
    path.write_text(job_text.format(art=art))
    code = run_job(load_job(path), tmp_path / "out", live=False)
    return code, capsys.readouterr().err.splitlines()


def test_lab_run_off_a_terminal_prints_boot_stages_and_each_finished_case(
        tmp_path, fake_lab, capsys):
    code, lines = run_fake(tmp_path, "name: j\nkernel: {{artifact: {art}}}\n"
                           "image: debian-bookworm\nworkloads:\n"
                           "  - shell: {{command: 'true', case: one}}\n"
                           "  - shell: {{command: 'true', case: two}}\n", capsys)
    assert code == 0
    stages = [ln for ln in lines if ln.startswith("[lab] boot: ")]
    assert [s.split(" (")[0] for s in stages] == [
        "[lab] boot: qemu started", "[lab] boot: kernel booting", "[lab] boot: userspace",
        "[lab] boot: sshd started", "[lab] boot: ssh up", "[lab] boot: ready"]
    finished = [ln.split(" (")[0] for ln in lines
                if ln.startswith(("[lab] passed ", "[lab] skipped ", "[lab] failed "))]
    skipped = "[lab] skipped shell.pin-balance: kernel has no nr_foll_pin_* counters in " \
              "/proc/vmstat"
    assert finished == ["[lab] passed boot", "[lab] passed shell.one", skipped,
                        "[lab] passed shell.two", skipped]


def test_a_matrix_off_a_terminal_prefixes_each_line_with_its_boot(tmp_path, fake_lab, capsys):
    code, lines = run_fake(tmp_path, "name: j\nkernels:\n  a: {{artifact: {art}}}\n"
                           "  b: {{artifact: {art}}}\nimage: debian-bookworm\n"
                           "workloads:\n  - shell: {{command: 'true', case: one}}\n", capsys)
    assert code == 0
    for unit in ("a#1", "b#1"):
        assert f"[lab] {unit}: workload 1 of 1: shell" in lines
        assert any(ln.startswith(f"[lab] {unit}: boot: ssh up (") for ln in lines)
        assert any(ln.startswith(f"[lab] {unit}: passed shell.one") for ln in lines)
