"""Pin leaks traced to their call site: the probes, the parser, the matcher
and the attribution on traces captured from real guests
(tests/unit/data/pintrace/), and the traced rerun through a fake guest and
the runner."""

import gzip
from pathlib import Path

import pytest

from lab import checks
from lab.guest.fake import FakeGuest
from lab.pintrace import probes as P
from lab.pintrace.rerun import TRACE_REMOTE, follow_up, wanted
from lab.pintrace.trace import (Op, Trace, analyse, attribute, balance, call_site, frame_name,
                                gup_functions, head_page, inside_gup, pins)
from lab.proc import Result
from lab.results import CaseKind, CaseResult, Status
from lab.workloads.base import WorkloadContext

DATA = Path(__file__).parent / "data" / "pintrace"
SITE = "ib_umem_fixture_leak_pin <- ib_umem_get"


def sample(name: str) -> str:
    return gzip.open(DATA / name, "rt").read()


@pytest.fixture(scope="module")
def leak_text():
    return sample("rdma-fixture-leak.txt.gz")


# --- parser, pairing, matching ------------------------------------------------

def test_every_event_of_a_real_trace_is_parsed_with_its_stack(leak_text):
    t = Trace.parse(leak_text)
    names = [e.name for e in t.events]
    assert {n: names.count(n) for n in set(names)} == {
        "grab_page": 66, "acquired": 66, "put_folio": 64, "released": 64}
    assert all(e.stack for e in t.events) and t.lost == 0
    first = t.events[0]
    assert (first.comm, first.pid, first.cpu) == ("ib_write_bw", 193, 0)
    assert first.arg("flags") == 0x50001 and first.stack[:2] == ("try_grab_page",
                                                                 "follow_page_pte")


def test_the_fixture_leak_is_named_by_its_call_site_with_its_count(leak_text):
    a = analyse(leak_text)
    b = a.balance
    assert (b.acquired, b.released, b.unreleased, b.released_untraced) == (66, 64, 2, 0)
    assert a.headline() == f"2 pins acquired via {SITE} were never released"
    [s] = a.stacks
    assert (s.site, s.pins, s.tasks) == (SITE, 2, ("ib_write_bw-177", "ib_write_bw-193"))
    assert s.stack[5:7] == ("ib_umem_fixture_leak_pin.isra.0", "ib_umem_get")
    assert "    rxe_mr_init_user" in a.report() and a.to_dict()["sites"] == [
        {"site": SITE, "pins": 2}]


def test_tail_pages_count_against_their_head_and_a_folio_release_balances_them():
    p = pins(Trace.parse(sample("gup-test-thp.txt.gz")))
    per_page = {}
    for e in p.events:
        if e.op is Op.ACQUIRE:
            per_page[e.page] = per_page.get(e.page, 0) + e.refs
    big = [page for page, n in per_page.items() if n == 512]
    assert len(big) == 1
    assert [e.refs for e in p.events if e.op is Op.RELEASE and e.page in big] == [512]
    b = balance(p)
    assert (b.acquired, b.released, b.unreleased) == (1280, 1280, 0)
    assert attribute(b).headline() == "every pin acquired during the traced rerun was released"
    assert head_page(0x1000, 0x2001) == 0x2000 and head_page(0x1000, 0x2008) == 0x1000


def blocks(text: str) -> list[list[str]]:
    """The event lines of a trace, each with its stack lines."""
    out: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith(" => ") and out:
            out[-1].append(line)
        elif not line.startswith("#") and ": " in line and "<stack trace>" not in line:
            out.append([line])
        elif "<stack trace>" in line and out:
            out[-1].append(line)
    return out


def test_a_grab_no_counter_follows_took_no_pin(leak_text):
    """try_grab_folio() can fail after its entry probe fired (or meet the
    zero page, which is not counted): an entry with no counter after it is
    not an acquire."""
    b = blocks(leak_text)
    assert [x[0].split()[4] for x in b[:4]] == ["grab_page:", "acquired:"] * 2
    p = pins(Trace.parse("\n".join(b[0] + b[2] + b[3]) + "\n"))   # grab, grab, counter
    assert p.grabs_not_counted == 1 and [e.op for e in p.events] == [Op.ACQUIRE]
    assert p.events[0].page == Trace.parse("\n".join(b[2])).events[0].arg("page")


def test_a_release_of_a_pin_taken_before_the_trace_is_no_leak_and_no_match(leak_text):
    b = balance(pins(Trace.parse("\n".join(
        line for line in leak_text.splitlines()
        if not any(k in line for k in (" grab_page: ", " acquired: ")))
    )))
    assert (b.acquired, b.released, b.released_untraced, b.unreleased) == (0, 64, 64, 0)


def test_lost_events_are_counted_from_the_header_and_said():
    t = Trace.parse("# entries-in-buffer/entries-written: 371974/393053   #P:2\n")
    assert t.lost == 21079
    assert "lost 4 events" in analyse("# entries-in-buffer/entries-written: 1/5\n").notes()[0]


# --- call sites -----------------------------------------------------------------

def test_frames_and_call_sites():
    assert frame_name("ib_umem_fixture_leak_pin.isra.0") == "ib_umem_fixture_leak_pin"
    assert frame_name("foo.constprop.0.cold+0x10/0x20 [rdma_rxe]") == "foo"
    stack = ("try_grab_folio", "internal_get_user_pages_fast", "pin_user_pages_fast",
             "io_pin_pages", "io_sqe_buffer_register")
    assert call_site(stack, inside_gup()) == "io_pin_pages <- io_sqe_buffer_register"
    assert call_site(stack[:3], inside_gup()) == "try_grab_folio"
    assert call_site((), inside_gup()) == "(no stack)"


def test_gup_functions_come_from_the_kernels_own_system_map():
    fns = gup_functions((DATA / "System.map.excerpt").read_text())
    assert {"follow_page_pte", "__gup_longterm_locked", "sanity_check_pinned_pages",
            "fault_in_safe_writeable"} <= fns
    assert not fns & {"ib_umem_get", "dump_page", "mod_node_page_state"}
    # a helper a series adds to mm/gup.c is inside it although no pattern knows it
    assert inside_gup(fns | {"gup_helper_new"})("sanity_check_pinned_pages")
    assert gup_functions("ffffffff81000000 T try_grab_folio\n") == frozenset()


# --- probes ---------------------------------------------------------------------

def test_probes_for_the_guest_the_discovery_found():
    tfs = P.parse_discovery((DATA / "discovery.txt").read_text())
    assert tfs.path == "/sys/kernel/tracing" and tfs.trace_clock == "local"
    assert (tfs.buffer_size_kb, tfs.cpus, tfs.tracing_on) == (7, 2, "1")
    assert P.node_stat_items(tfs.vmstat) == (35, 36)
    ps = P.probe_set(set(tfs.symbols), (35, 36), P.foll_pin_flag("6.1.192-g05c3f37f4347"))
    assert ps.events == ("grab_folio", "grab_page", "put_folio", "acquired", "released")
    script = P.setup_script(tfs, ps, P.buffer_kb(tfs))
    assert "echo 'flags & 0x40000' > events/labpin/grab_folio/filter" in script
    assert "echo 'item == 35' > events/labpin/acquired/filter" in script
    assert script.rstrip().endswith("echo 1 > tracing_on") and "16384 > buffer_size_kb" in script
    down = P.teardown_script(tfs)
    assert "echo -:labpin/released >> kprobe_events" in down and "echo local > trace_clock" \
        in down and "echo 7 > buffer_size_kb" in down


def test_the_symbols_come_from_a_real_system_map_only():
    excerpt = (DATA / "System.map.excerpt").read_text()
    assert P.system_map_symbols(excerpt, at_least=10) == set(P.SYMBOLS)
    # Debian's /boot/System.map-*: then the guest's /proc/kallsyms is read
    stub = "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n"
    assert P.system_map_symbols(stub) is None and P.system_map_symbols(excerpt) is None
    assert "/proc/kallsyms" in P.discover_script(True) and "kallsyms" not in \
        P.discover_script(False)


@pytest.mark.parametrize("symbols, why", [
    ({"try_grab_folio", "gup_put_folio"}, "mod_node_page_state is not a symbol"),
    ({"try_grab_folio", "mod_node_page_state"}, "gup_put_folio is not a symbol"),
    ({"gup_put_folio", "mod_node_page_state"}, "neither try_grab_folio nor try_grab_page"),
])
def test_a_kernel_missing_a_needed_symbol_cannot_be_traced(symbols, why):
    with pytest.raises(P.CannotTrace, match=why):
        P.probe_set(symbols, (35, 36), 0x40000)


def test_what_the_probes_do_without_optional_parts():
    ps = P.probe_set({"try_grab_folio", "gup_put_folio", "mod_node_page_state"}, (35, 36), None)
    assert "try_grab_page is not a symbol" in ps.notes[1] and not ps.probes[0].filter
    assert P.foll_pin_flag("6.1.0-28-amd64") == 0x40000 and P.foll_pin_flag("6.8.0") is None
    with pytest.raises(P.CannotTrace, match="no kprobe events"):
        P.parse_discovery("tracefs=/sys/kernel/tracing\n--- vmstat\n")
    with pytest.raises(P.CannotTrace, match="lacks nr_foll_pin_acquired"):
        P.node_stat_items("nr_inactive_anon 1\n")


# --- the traced rerun -------------------------------------------------------------

def leak_case():
    return CaseResult("pin-balance", Status.FAILED, classname="rdma", kind=CaseKind.PIN_LEAK,
                      message="pin leak: 66 pins acquired, 64 released (2 not released)",
                      details="readings", properties={"pins_acquired": "66"})


def tracing_guest(discovery: str, trace: str, counts: list[int]) -> FakeGuest:
    """A guest whose tracefs works and whose counters move by `counts`."""
    state = {"acq": 0}

    def vmstat(cmd):
        return Result(("sh",), 0, f"nr_foll_pin_acquired {state['acq']}\n"
                                  "nr_foll_pin_released 0\n", "", 0)

    def rerun_step(cmd):
        state["acq"] += counts.pop(0) if counts else 0
        return Result(("sh",), 0, "", "", 0)
    g = FakeGuest([("nr_foll_pin", vmstat), ("the-workload", rerun_step),
                   ("--- vmstat", Result(("sh",), 0, discovery, "", 0))],
                  files={TRACE_REMOTE: trace.encode()})
    return g


@pytest.fixture
def fast_settle(monkeypatch):
    orig = checks.settle_pins
    monkeypatch.setattr(checks, "settle_pins", lambda g, b, **kw: orig(
        g, b, timeout=1.0, interval=0.01, stable_for=0.05))


def test_a_leak_is_rerun_traced_and_its_case_names_the_call_site(tmp_path, leak_text,
                                                                   fast_settle):
    g = tracing_guest((DATA / "discovery.txt").read_text(), leak_text, [2])

    class Scope:                 # the rerun left a process in the workload's scope
        killed = False

        def pids(self):
            return [] if self.killed else [4242]

        def kill_all(self):
            self.killed = True
    ctx = WorkloadContext(guest=g, outdir=tmp_path / "02-rdma", timeout=60, log=lambda m: None,
                          scope=Scope())
    ran = []

    def rerun(c):
        ran.append(c.outdir)
        c.guest.run("the-workload", timeout=5)
        return [CaseResult("rdma.ext4", Status.PASSED)]
    case, alive = follow_up(leak_case(), [CaseResult("rdma.ext4", Status.PASSED)], ctx, rerun)
    assert alive and ran == [tmp_path / "02-rdma" / "pintrace"] and ctx.scope.killed
    assert case.message == (f"2 pins acquired via {SITE} were never released; "
                            "pin leak: 66 pins acquired, 64 released (2 not released)")
    assert case.kind == CaseKind.PIN_LEAK and case.status is Status.FAILED
    assert case.properties["pintrace"] == "attributed"
    assert case.properties["pintrace_sites"] == f"{SITE}=2"
    assert case.properties["pintrace_dir"] == "02-rdma/pintrace"
    assert case.details.startswith("pin trace of the rerun: 66 pins acquired")
    files = {p.name for p in (tmp_path / "02-rdma" / "pintrace").iterdir()}
    assert {"trace.txt", "attribution.txt", "pintrace.json", "commands.log", "dmesg.txt"} <= files
    setup = next(c for c in g.commands if "kprobe_events" in c and "p:labpin" in c)
    teardown = [c for c in g.commands if c.startswith("cd /sys/kernel/tracing || exit 0")]
    assert g.commands.index(setup) < g.commands.index("the-workload") and teardown


def test_a_kernel_without_kprobe_events_says_cannot_trace(tmp_path, fast_settle):
    g = FakeGuest([("--- vmstat", Result(("sh",), 0, "tracefs=/sys/kernel/tracing\n"
                                         "--- vmstat\n", "", 0))])
    ctx = WorkloadContext(guest=g, outdir=tmp_path / "w", timeout=60, log=lambda m: None)
    case, alive = follow_up(leak_case(), [], ctx, lambda c: pytest.fail("no rerun"))
    assert alive and case.properties["pintrace"] == "cannot-trace"
    assert case.message.endswith("(cannot trace: no kprobe events in /sys/kernel/tracing "
                                 "(the kernel needs CONFIG_KPROBES, CONFIG_KPROBE_EVENTS "
                                 "and CONFIG_FTRACE))")


def test_only_a_leak_of_a_workload_that_finished_is_rerun():
    assert wanted(leak_case(), [CaseResult("rdma.ext4", Status.FAILED)])
    assert not wanted(leak_case(), [CaseResult("rdma", Status.FAILED,
                                               kind=CaseKind.DEADLOCK)])
    assert not wanted(CaseResult("pin-balance", Status.PASSED), [])


def test_the_runner_reruns_a_leaking_workload_once_and_counts_it_once(tmp_path, fake_lab,
                                                                        leak_text, fast_settle):
    import json

    from lab.job import load_job
    from lab.runner import run_job
    from lab.vm.fake import FakeScript

    from .conftest import make_artifact
    guest = tracing_guest((DATA / "discovery.txt").read_text(), leak_text, [2, 2])

    def stop(cmd):       # the trace lands where the guest's `cat trace >` put it
        fake_lab.machines[-1].guest.files[TRACE_REMOTE] = leak_text.encode()
        return Result(("sh",), 0, f"{len(leak_text)}\n", "", 0)
    fake_lab.script = FakeScript(answers=[*((p.pattern, a) for p, a in guest.answers),
                                          ("cat trace >", stop)])
    art = make_artifact(tmp_path / "art", "6.1.192-fake")
    job = tmp_path / "j.yaml"
    job.write_text(f"name: j\nkernel: {{artifact: {art}}}\nimage: debian-bookworm\n"
                   "machine: {cpus: 2, memory_mb: 1024}\nworkloads:\n"
                   "  - shell: {command: the-workload, case: one}\n"
                   "  - shell: {command: 'true', case: two}\n")
    assert run_job(load_job(job), tmp_path / "out", live=False) == 1
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    got = [(c["name"], c["status"], c["kind"]) for c in s["suites"][0]["cases"]]
    assert got == [("boot", "passed", ""), ("one", "passed", ""),
                   ("pin-balance", "failed", "pin-leak"), ("two", "passed", ""),
                   ("pin-balance", "passed", "")]
    pin = s["suites"][0]["cases"][2]
    assert pin["message"].startswith(f"2 pins acquired via {SITE} were never released; "
                                     "pin leak: 2 pins acquired, 0 released")
    assert pin["properties"]["pintrace_dir"] == "00-shell/pintrace"
    rerun = tmp_path / "out" / "00-shell" / "pintrace"
    assert (rerun / "one.out").exists() and (rerun / "trace.txt").read_text() == leak_text
    cmds = fake_lab.machines[0].guest.commands
    assert sum(c.endswith("the-workload") for c in cmds) == 2
