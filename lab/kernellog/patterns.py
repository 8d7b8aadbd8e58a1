"""The table of kernel report formats: how a report starts and how it is titled.

Pure data. A ``Group`` is keyed by a literal header (``"WARNING:"``) that a
console line must begin with (past its prefix and ``LEAD``) to start a
report; its ``Format``s are tried on the collected report text, and the one
whose title regex matches earliest names the report. Titles follow syzbot's
conventions, which kernel developers know: "WARNING in f", "possible
deadlock in f", "INFO: task hung in f".

A title template takes the groups captured by ``title`` (or by ``report`` when
given) as ``{0}``, ``{1}``... followed by the frames that ``stack`` extracted.
``stack.parts`` are anchors walked in order through the report: a regex is
searched line by line (a ``(func)`` group in it yields a frame), ``STACK``
reads a stack trace from there on. ``frames.py`` does the walking.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from lab.kernellog.finding import Kind

STACK = "<stack trace>"

_TOKENS = {
    "{PC}": r"\[<?(?:0x)?[0-9a-f]+>?\]",
    "{FUNC}": r"([a-zA-Z0-9_]+)(?:\.|\+)",
    "{SRC}": r"([a-zA-Z0-9_/.-]+\.[a-z]+:[0-9]+)",
}


def rx(pattern: str) -> re.Pattern:
    """Compile a pattern with {PC} (a [<address>]), {FUNC} and {SRC} tokens."""
    for token, expansion in _TOKENS.items():
        pattern = pattern.replace(token, expansion)
    return re.compile(pattern)


class Pick(enum.Enum):
    """Which of a stack trace's frames (machinery skipped) names the report."""

    FIRST = "first"
    STALL = "stall"  # the caller of the first dispatcher (syscall entry, workqueue, timer...)
    HUNG = "hung"  # the first that is not waiting; common waits (rtnl_lock, synchronize_rcu) grouped


@dataclass(frozen=True)
class StackRule:
    parts: tuple
    fallback: tuple = ()  # other parts, tried when ``parts`` yield no frame
    skip: tuple[str, ...] = ()  # regexes of frames to pass over, besides frames.SKIP
    pick: Pick = Pick.FIRST


@dataclass(frozen=True)
class Format:
    kind: Kind
    title: re.Pattern
    template: str
    report: re.Pattern | None = None  # must match too, else the report is corrupted
    stack: StackRule | None = None
    no_stack: bool = False  # this report has no stack trace to require
    corrupted: bool = False  # matching this format means the report is broken


@dataclass(frozen=True)
class Group:
    header: str
    formats: tuple[Format, ...]
    ignore: re.Pattern | None = None  # lines with the header that are not reports
    quick: str = ""  # a cheaper substring every such line has, if not the header
    joins: bool = False  # inside an open report, a line with the header is part of it


# Where the faulting instruction is: x86 "RIP: 0010:f+0x1/0x2", arm "pc : f+..",
# powerpc "NIP [..] f+..", old x86 "IP: [<..>] f+..".
RIP = rx(r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{PC} +){0,2}{FUNC}|(?:[0-9]+:)?0x[0-9a-f]+"
         r"|(?:[0-9]+:)?{PC} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))")
CALL_TRACE = rx(r"Call (?:T|t)race:|Backtrace:")
_RIP_OR_INTERRUPT = rx(r"(?:" + RIP.pattern + r"|--- interrupt: [0-9]+ at {FUNC})")
_AT_FUNC = rx(r"at: (?:{PC} +)?{FUNC}")
_PC_FUNC = rx(r"{PC} +{FUNC}")

_FAULT = StackRule((RIP, CALL_TRACE, STACK))
_TRACE = StackRule((CALL_TRACE, STACK))


def _trace(*skip: str, pick: Pick = Pick.FIRST) -> StackRule:
    return StackRule((CALL_TRACE, STACK), skip=skip, pick=pick)


def _warning_stack(*skip: str) -> StackRule:
    return StackRule((_RIP_OR_INTERRUPT, STACK), (CALL_TRACE, STACK), skip=skip)


def _ignore(*patterns: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_THEN = r"(?:.*\n)+?.*"  # then, some lines later


def _lockdep(header: str, *, prefix: str, middle: str, kind: str = "possible deadlock") -> Format:
    return Format(Kind.LOCKDEP, rx(prefix + header),
                  kind + " in {0}",
                  report=rx(prefix + header + middle + _THEN + r"at: (?:{PC} +)?{FUNC}"))


_LEAK_STACK = StackRule((rx(r"backtrace(?: \(crc [0-9a-f]*\))?:"), STACK),
                        skip=("kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get",
                              "list_lru_init", "kasprintf", "kvasprintf", "pcpu_create", "strdup",
                              "strndup", "memdup"))
_KASAN_ACCESS = rx(r"BUG: KASAN: ([a-z\-]+) in {FUNC}" + _THEN
                   + r"(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)")
_KASAN_FREE = rx(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {FUNC}")
_KMSAN_ORIGIN = rx(r"(Local variable .* created at:|Uninit was created at:)")
_KFENCE_FUNC = rx(r"BUG: KFENCE: (?:[a-z\- ]+) in {FUNC}")
_KFENCE = StackRule((_KFENCE_FUNC, STACK))

BUG = Group("BUG:", (
    Format(Kind.KASAN, rx("BUG: KASAN:"), "KASAN: {0} {2} in {3}", report=_KASAN_ACCESS,
           stack=StackRule((rx(r"BUG: KASAN: (?:[a-z\-]+) in {FUNC}"), CALL_TRACE, STACK),
                           skip=("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"))),
    Format(Kind.KASAN, rx("BUG: KASAN:"), "KASAN: invalid-free in {1}", report=_KASAN_FREE,
           stack=StackRule((_KASAN_FREE, CALL_TRACE, STACK),
                           skip=("slab_", "kfree", "vunmap", "vfree"))),
    Format(Kind.KASAN, rx(r"BUG: KASAN: ([a-z\-]+) on address" + _THEN
                          + r"(Read|Write) of size ([0-9]+)"), "KASAN: {0} {1}"),
    Format(Kind.KASAN, rx("BUG: KASAN: (.*)"), "KASAN: {0}", corrupted=True),
    Format(Kind.KMSAN, rx("BUG: KMSAN: kernel-usb-infoleak"), "KMSAN: kernel-usb-infoleak in {1}",
           report=rx("BUG: KMSAN: kernel-usb-infoleak in {FUNC}"), no_stack=True,
           stack=StackRule((STACK, _KMSAN_ORIGIN, STACK),
                           skip=("alloc_skb", "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg",
                                 "usb_interrupt_msg", "usb_control_msg"))),
    Format(Kind.KMSAN, rx("BUG: KMSAN:"), "KMSAN: {0} in {2}", no_stack=True,
           report=rx(r"BUG: KMSAN: ([a-z\-]+) in {FUNC}"),
           stack=StackRule((STACK, _KMSAN_ORIGIN, STACK),
                           skip=("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$",
                                 "^(?:crypto|cipher|drbg|rng)_"))),
    Format(Kind.KCSAN, rx("BUG: KCSAN:"), "KCSAN: {0}", report=rx("BUG: KCSAN: (.*)"), no_stack=True),
    Format(Kind.KFENCE, rx("BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {FUNC}"),
           "KFENCE: {0} {1} in {3}", stack=_KFENCE),
    Format(Kind.KFENCE, rx("BUG: KFENCE: invalid free in {FUNC}"), "KFENCE: invalid free in {1}",
           stack=_KFENCE, no_stack=True),
    Format(Kind.KFENCE, rx("BUG: KFENCE: invalid (read|write) in {FUNC}"), "KFENCE: invalid {0} in {2}",
           stack=_KFENCE),
    Format(Kind.KFENCE, rx("BUG: KFENCE: memory corruption in {FUNC}"),
           "KFENCE: memory corruption in {1}", stack=_KFENCE, no_stack=True),
    Format(Kind.OOPS, rx("BUG: (?:unable to handle kernel paging request|unable to handle page fault for"
                         " address|Unable to handle kernel data access)"),
           "BUG: unable to handle kernel paging request in {0}", stack=_FAULT),
    Format(Kind.OOPS, rx("BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer"
                         " dereference|Kernel NULL pointer dereference)"),
           "BUG: unable to handle kernel NULL pointer dereference in {0}", stack=_FAULT),
    Format(Kind.OOPS, rx("BUG: (?:unable to handle kernel|Unable to handle kernel)"),
           "BUG: unable to handle kernel", corrupted=True),
    Format(Kind.LOCKDEP, rx("BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu"
                            " recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)"),
           "BUG: {0} {1} in {2}", stack=_trace("spin_", "_lock", "_unlock")),
    Format(Kind.SOFT_LOCKUP, rx("BUG: soft lockup"), "BUG: soft lockup in {0}",
           stack=StackRule((RIP, CALL_TRACE, STACK), pick=Pick.STALL)),
    Format(Kind.LOCKDEP, rx("BUG: .*still has locks held!"), "BUG: still has locks held in {0}",
           report=rx("BUG: .*still has locks held!" + _THEN + "{PC} +{FUNC}")),
    Format(Kind.BUG, rx("BUG: scheduling while atomic"), "BUG: scheduling while atomic in {0}",
           stack=_trace("schedule")),
    Format(Kind.LOCKDEP, rx("BUG: lock held when returning to user space"),
           "BUG: lock held when returning to user space in {0}", no_stack=True,
           report=rx("BUG: lock held when returning to user space" + _THEN
                     + "leaving the kernel with locks still held" + _THEN
                     + "at: (?:{PC} +)?{FUNC}")),
    Format(Kind.LOCKDEP, rx("BUG: bad unlock balance detected!"), "BUG: bad unlock balance in {0}",
           stack=StackRule((_PC_FUNC, CALL_TRACE, STACK))),
    Format(Kind.LOCKDEP, rx("BUG: held lock freed!"), "BUG: held lock freed in {0}",
           report=rx("BUG: held lock freed!" + _THEN + "{PC} +{FUNC}")),
    Format(Kind.BUG, rx("BUG: Bad rss-counter state"), "BUG: Bad rss-counter state", no_stack=True),
    Format(Kind.BUG, rx("BUG: non-zero nr_ptes on freeing mm"), "BUG: non-zero nr_ptes on freeing mm",
           no_stack=True),
    Format(Kind.BUG, rx("BUG: non-zero nr_pmds on freeing mm"), "BUG: non-zero nr_pmds on freeing mm",
           no_stack=True),
    Format(Kind.BUG, rx("BUG: Dentry .* still in use"), "BUG: Dentry still in use in {0}", no_stack=True,
           report=rx(r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]")),
    Format(Kind.BUG, rx("BUG: Bad page (state|cache)"), "BUG: Bad page {0} in {1}",
           stack=StackRule((rx("page last allocated"), STACK),
                           skip=("(?:free|put|get|update|release)_page", "free_unref", "^_*folio",
                                 "truncate_inode_pages", "page_frag_free", "alloc", "vmap",
                                 "page_owner"))),
    Format(Kind.BUG, rx("BUG: Bad page map"), "BUG: Bad page map"),
    Format(Kind.WORKQUEUE_LOCKUP, rx("BUG: workqueue lockup"), "BUG: workqueue lockup", no_stack=True),
    Format(Kind.BUG, rx("BUG: sleeping function called from invalid context at (.*)"),
           "BUG: sleeping function called from invalid context in {1}", stack=_TRACE),
    Format(Kind.BUG, rx(r"BUG: using ([a-z_]+)\(\) in preemptible"),
           "BUG: using {0}() in preemptible code in {1}",
           stack=_trace("dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu")),
    Format(Kind.LOCKDEP, rx("BUG: workqueue leaked lock or atomic"),
           "BUG: workqueue leaked lock or atomic in {0}", no_stack=True,
           report=rx("BUG: workqueue leaked lock or atomic" + _THEN
                     + r"last function: ([a-zA-Z0-9_]+)\n")),
    Format(Kind.MEMORY_LEAK, rx("BUG: memory leak"), "memory leak in {0}", stack=_LEAK_STACK),
    Format(Kind.BUG, rx("BUG: .*stack guard page was hit at"), "BUG: stack guard page was hit in {0}",
           stack=StackRule((RIP, CALL_TRACE, STACK), pick=Pick.STALL)),
    Format(Kind.LOCKDEP, rx("BUG: Invalid wait context"), "WARNING: locking bug in {0}",
           stack=_trace("lock_sock", "release_sock")),
    Format(Kind.BUG, rx(r"BUG:\s*(?:\n|$)"), "BUG: corrupted", corrupted=True),
), ignore=_ignore("ODEBUG:", "Boot_DEBUG:", "xlog_status:", "DEBUG:",
                  "BUG: no syscalls can create resource"))

WARNING = Group("WARNING:", (
    Format(Kind.WARNING, rx(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)"),
           "WARNING: ODEBUG bug in {0}",
           stack=_warning_stack("debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "vunmap",
                                "vfree", "__free_", "debug_check", "kobject_")),
    Format(Kind.WARNING, rx(r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)"),
           "WARNING: bad usercopy in {0}", stack=_warning_stack("usercopy", "__check")),
    Format(Kind.WARNING, rx(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)"),
           "WARNING: kobject bug in {0}", stack=_warning_stack("kobject_")),
    Format(Kind.WARNING, rx(r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)"),
           "WARNING: proc registration bug in {0}", stack=_warning_stack("proc_")),
    Format(Kind.WARNING, rx(r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)"),
           "WARNING: refcount bug in {0}", stack=_warning_stack("refcount", "kobject_")),
    Format(Kind.LOCKDEP, rx(r"WARNING: .*kernel/locking/lockdep\.c.*lock_"),
           "WARNING: locking bug in {0}", stack=_warning_stack("lock_sock", "release_sock")),
    Format(Kind.LOCKDEP, rx("WARNING: .*still has locks held!"), "WARNING: still has locks held in {0}",
           report=rx("WARNING: .*still has locks held!" + _THEN + "at: {FUNC}")),
    Format(Kind.LOCKDEP, rx("WARNING: Nested lock was not taken"),
           "WARNING: nested lock was not taken in {0}", stack=_warning_stack()),
    Format(Kind.LOCKDEP, rx("WARNING: lock held when returning to user space"),
           "WARNING: lock held when returning to user space in {0}", no_stack=True,
           report=rx("WARNING: lock held when returning to user space" + _THEN
                     + "leaving the kernel with locks still held" + _THEN
                     + "at: (?:{PC} +)?{FUNC}")),
    Format(Kind.WARNING, rx(r"WARNING: .*mm/.*\.c.* k?.?malloc"), "WARNING: kmalloc bug in {0}",
           stack=_warning_stack("kmalloc", "krealloc", "slab", "kmem")),
    Format(Kind.WARNING, rx(r"WARNING: .*mm/vmalloc.c.*__vmalloc_node"),
           "WARNING: zero-size vmalloc in {0}", stack=_warning_stack()),
    Format(Kind.WARNING, rx("WARNING: .* usb_submit_urb"), "WARNING in {0}/usb_submit_urb",
           stack=_warning_stack("usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg",
                                "usb_interrupt_msg", "usb_control_msg")),
    Format(Kind.WARNING, rx(r"WARNING: {SRC} at 0x\d+, CPU#\d+"), "WARNING in {1}",
           stack=_warning_stack()),
    Format(Kind.WARNING, rx("WARNING: .* at {SRC} {FUNC}"), "WARNING in {2}", stack=_warning_stack()),
    Format(Kind.WARNING, rx("WARNING: {SRC} at {FUNC}"), "WARNING in {2}", stack=_warning_stack()),
    Format(Kind.WARNING, rx(r"WARNING: \[.*\] {SRC} at {FUNC}.*"), "WARNING in {2}",
           stack=_warning_stack()),
    Format(Kind.LOCKDEP, rx("WARNING: possible circular locking dependency detected"),
           "possible deadlock in {0}",
           report=rx("WARNING: possible circular locking dependency detected" + _THEN
                     + "is trying to acquire lock"),
           stack=StackRule((_AT_FUNC, _AT_FUNC, STACK),
                           skip=("process_one_work", "flush_workqueue", "drain_workqueue",
                                 "destroy_workqueue"))),
    _lockdep("possible irq lock inversion dependency detected", prefix="WARNING: ",
             middle=_THEN + "just changed the state of lock"),
    Format(Kind.LOCKDEP, rx("WARNING: .*-safe -> .*-unsafe lock order detected"), "possible deadlock in {0}",
           stack=StackRule((rx("which became (?:.*) at:"), STACK))),
    _lockdep("possible recursive locking detected", prefix="WARNING: ",
             middle=_THEN + "is trying to acquire lock"),
    Format(Kind.LOCKDEP, rx("WARNING: inconsistent lock state"), "inconsistent lock state in {1}",
           report=rx("WARNING: inconsistent lock state" + _THEN + "takes" + _THEN
                     + "at: (?:{PC} +)?{FUNC}"),
           stack=_TRACE),
    Format(Kind.LOCKDEP, rx("WARNING: suspicious RCU usage"), "WARNING: suspicious RCU usage in {1}",
           report=rx("WARNING: suspicious RCU usage" + _THEN + "?{SRC}"),
           stack=_trace("rcu", "kmem", "slab")),
    Format(Kind.WARNING, rx("WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value"),
           "WARNING: kernel stack regs has bad '{0}' value", no_stack=True),
    Format(Kind.WARNING, rx("WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value"),
           "WARNING: kernel stack frame pointer has bad value", no_stack=True),
    Format(Kind.LOCKDEP, rx("WARNING: bad unlock balance detected!"), "WARNING: bad unlock balance in {0}",
           stack=StackRule((_PC_FUNC, CALL_TRACE, STACK))),
    Format(Kind.LOCKDEP, rx("WARNING: held lock freed!"), "WARNING: held lock freed in {0}",
           report=rx("WARNING: held lock freed!" + _THEN + "at:(?: {PC})? +{FUNC}")),
    Format(Kind.WARNING, rx("WARNING: kernel stack regs .* has bad 'bp' value"),
           "WARNING: kernel stack regs has bad value", no_stack=True),
    Format(Kind.WARNING, rx("WARNING: kernel stack frame pointer .* has bad value"),
           "WARNING: kernel stack regs has bad value", no_stack=True),
    Format(Kind.WARNING, rx(r"WARNING:\s*(?:\n|$)"), "WARNING: corrupted", corrupted=True),
), ignore=_ignore(
    "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",  # sshd
    "WARNING: workqueue cpumask: online intersect > possible intersect",
    "WARNING: [Tt]he mand mount option",
    r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
    "WARNING: Unprivileged eBPF is enabled with eIBRS",
    "WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
    "WARNING: See https.* for mitigation options.",
    "WARNING: kernel not compiled with CPU_SRSO",
    r"EXT4-[Ff][Ss](?: \(.*\))?:",
    "[Ww][Aa][Rr][Nn][Ii][Nn][Gg]: .* uses (?:deprecated v2 capabilities|wireless extensions)",
    r"XFS \(\w+\): WARNING"))

INFO = Group("INFO:", (
    _lockdep("possible circular locking dependency detected", prefix="INFO: ",
             middle=r" \]" + _THEN + "is trying to acquire lock"),
    _lockdep("possible irq lock inversion dependency detected", prefix="INFO: ",
             middle=r" \]" + _THEN + "just changed the state of lock"),
    _lockdep("SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", prefix="INFO: ",
             middle=r" \]" + _THEN + "is trying to acquire"),
    _lockdep("possible recursive locking detected", prefix="INFO: ",
             middle=r" \]" + _THEN + "is trying to acquire lock"),
    _lockdep("inconsistent lock state", prefix="INFO: ", middle=r" \]" + _THEN + "takes",
             kind="inconsistent lock state"),
    Format(Kind.RCU_STALL, rx("INFO: rcu_(?:preempt|sched|bh|tasks\\w*) (?:self-)?detected(?: expedited)? stall"),
           "INFO: rcu detected stall in {0}",
           stack=StackRule((rx("apic_timer_interrupt"), RIP, STACK),
                           (rx("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"), STACK),
                           skip=("apic_timer_interrupt", "rcu"), pick=Pick.STALL)),
    Format(Kind.LOCKDEP, rx("INFO: trying to register non-static key"),
           "INFO: trying to register non-static key in {0}", stack=_trace("stack", "lock", "IRQ")),
    Format(Kind.LOCKDEP, rx("INFO: suspicious RCU usage"), "INFO: suspicious RCU usage in {1}",
           report=rx("INFO: suspicious RCU usage" + _THEN + "?{SRC}"),
           stack=_trace("rcu", "kmem", "slab")),
    Format(Kind.HUNG_TASK, rx("INFO: task .* blocked (?:in I/O wait )?for more than [0-9]+ seconds"),
           "INFO: task hung in {0}", stack=_trace(pick=Pick.HUNG)),
    Format(Kind.HUNG_TASK, rx("INFO: task .* can't die for more than .* seconds"),
           "INFO: task can't die in {0}", stack=_trace("schedule")),
    Format(Kind.KASAN, rx("INFO: (Freed|Allocated) in (.*)"), "INFO: {0} in {1}", corrupted=True),
    Format(Kind.OTHER, rx(r"INFO:\s*(?:\n|$)"), "INFO: corrupted", corrupted=True),
), ignore=_ignore(
    "INFO: lockdep is turned off", "INFO: Stall ended before state dump start", "INFO: NMI handler",
    "INFO: recovery required on readonly filesystem", "(?:handler|interrupt).*took too long",
    "INFO: sys_.* is not present in /proc/kallsyms", "INFO: no syscalls can create resource",
    "rmt_storage:INFO:", "_INFO:"))


def _simple(header: str, kind: Kind, *formats: tuple, ignore: re.Pattern | None = None,
            quick: str = "") -> Group:
    """A group whose formats are (title, template[, stack]) triples."""
    return Group(header, tuple(
        Format(kind, rx(f[0]), f[1], stack=f[2] if len(f) > 2 else None, no_stack=len(f) == 2)
        for f in formats), ignore=ignore, quick=quick)


_DIE = "#"  # x86 die(): "general protection fault: 0000 [#1] SMP"
_RIP_ONLY = StackRule((RIP,))
_STALL_FAULT = StackRule((RIP, CALL_TRACE, STACK), pick=Pick.STALL)

PANIC = Group("Kernel panic", (
    Format(Kind.PANIC, rx("Kernel panic - not syncing: stack-protector:"),
           "kernel panic: stack is corrupted in {0}", no_stack=True,
           report=rx("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {FUNC}")),
    Format(Kind.PANIC, rx("Kernel panic - not syncing: stack-protector:"),
           "kernel panic: stack is corrupted in {0}", stack=_trace("stack_chk"),
           report=rx("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+")),
    Format(Kind.PANIC, rx("Kernel panic - not syncing: corrupted stack end"),
           "kernel panic: corrupted stack end in {0}",
           report=rx("Kernel panic - not syncing: corrupted stack end detected inside scheduler"),
           stack=_trace("schedule", "retint_kernel", pick=Pick.STALL)),
    Format(Kind.PANIC, rx("Kernel panic - not syncing: kernel stack overflow"),
           "kernel stack overflow in {0}", stack=_trace("bad_stack", pick=Pick.STALL)),
    Format(Kind.PANIC, rx("Kernel panic - not syncing: Attempted to kill init!"),
           "kernel panic: Attempted to kill init!"),
    Format(Kind.PANIC, rx("Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+"),
           "kernel panic: Couldn't open N_TTY ldisc"),
    # These follow another report; seen first, that report's start was lost.
    Format(Kind.PANIC, rx("Kernel panic - not syncing: Fatal exception"), "kernel panic: Fatal exception",
           corrupted=True),
    Format(Kind.PANIC, rx("Kernel panic - not syncing: panic_on_warn set"),
           "kernel panic: panic_on_warn set", corrupted=True),
    Format(Kind.PANIC, rx("Kernel panic - not syncing: hung_task: blocked tasks"),
           "kernel panic: hung_task: blocked tasks", corrupted=True),
    Format(Kind.PANIC, rx("Kernel panic - not syncing: (.*)"), "kernel panic: {0}"),
))

KERNEL_BUG = Group("kernel BUG", quick="BUG", formats=(
    Format(Kind.BUG, rx("kernel BUG at mm/usercopy.c"), "BUG: bad usercopy in {0}",
           stack=_trace("usercopy", "__check")),
    Format(Kind.BUG, rx("kernel BUG at lib/list_debug.c"), "BUG: corrupted list in {0}", stack=_TRACE),
    Format(Kind.BUG, rx("kernel BUG at (.*)"), "kernel BUG in {1}",
           stack=StackRule((RIP, CALL_TRACE, STACK), skip=("^skb_",))),
))

UBSAN = Group("UBSAN:", (
    Format(Kind.UBSAN, rx("UBSAN:"), "UBSAN: undefined-behaviour in {0}",
           report=rx("UBSAN: Undefined behaviour in"), stack=_trace("ubsan", "overflow")),
    Format(Kind.UBSAN, rx("UBSAN: array-index-out-of-bounds in"), "UBSAN: array-index-out-of-bounds in {0}",
           stack=_trace("ubsan", "overflow")),
    Format(Kind.UBSAN, rx("UBSAN:"), "UBSAN: {0} in {1}", report=rx("UBSAN: (.*?) in"),
           stack=_trace("ubsan", "overflow")),
))

# Android's trusty; only its ASSERT panics are screened for (a capital-letter token).
TRUSTY = Group("trusty: panic", quick="ASSERT FAILED", formats=(
    Format(Kind.PANIC, rx("trusty: panic.* ASSERT FAILED"), "trusty: ASSERT FAILED: {0}", no_stack=True,
           report=rx(r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)")),
    Format(Kind.PANIC, rx("trusty: panic.* ASSERT FAILED.*: *(.*)"), "trusty: ASSERT FAILED: {0}",
           corrupted=True),
    Format(Kind.PANIC, rx("trusty: panic"), "trusty: panic: {0}", no_stack=True,
           report=rx(r"trusty: panic \(.*?\): (.+)")),
))

# Table order matters: the first group whose header a line contains wins.
GROUPS: tuple[Group, ...] = (
    BUG, WARNING, INFO,
    _simple("Unable to handle kernel", Kind.OOPS,
            ("Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)",
             "BUG: unable to handle kernel {0} in {1}", _FAULT)),
    _simple("general protection fault", Kind.OOPS,
            ("general protection fault.*:", "general protection fault in {0}", _FAULT),
            ignore=rx(r"general protection fault .* error:\d+ in "), quick=_DIE),  # a userspace segfault
    _simple("stack segment: ", Kind.OOPS, ("stack segment: ", "stack segment fault in {0}", _FAULT), quick=_DIE),
    _simple("Watchdog detected hard LOCKUP", Kind.HARD_LOCKUP,
            ("Watchdog detected hard LOCKUP", "BUG: hard lockup in {0}", _STALL_FAULT), quick="LOCKUP"),
    PANIC,
    _simple("PANIC: double fault", Kind.OOPS, ("PANIC: double fault", "PANIC: double fault in {0}", _RIP_ONLY)),
    KERNEL_BUG,
    _simple("Kernel BUG", Kind.BUG, ("Kernel BUG (.*)", "kernel BUG {0}", None)),
    _simple("BUG kmalloc-", Kind.BUG, ("BUG kmalloc-.*: Object already free", "BUG: Object already free", None)),
    _simple("divide error:", Kind.OOPS, ("divide error: ", "divide error in {0}", _RIP_ONLY), quick=_DIE),
    _simple("divide_error:", Kind.OOPS, ("divide_error: ", "divide error in {0}", _RIP_ONLY), quick=_DIE),
    _simple("invalid opcode:", Kind.OOPS, ("invalid opcode: ", "invalid opcode in {0}", _RIP_ONLY), quick=_DIE),
    UBSAN,
    _simple("Booting the kernel", Kind.REBOOT, ("^Booting the kernel", "unexpected kernel reboot"),
            ignore=rx("Parsing ELF|Decompressing Linux|Unknown parameter '")),
    _simple("unregister_netdevice: waiting for", Kind.OTHER,
            ("unregister_netdevice: waiting for (?:.*) to become free",
             "unregister_netdevice: waiting for DEV to become free"), quick="Usage count"),
    _simple("VFS: Close: file count is 0", Kind.BUG,
            ("VFS: Close: file count is 0", "VFS: Close: file count is zero (use-after-free)")),
    _simple("VFS: Busy inodes after unmount", Kind.BUG,
            ("VFS: Busy inodes after unmount", "VFS: Busy inodes after unmount (use-after-free)")),
    _simple("Internal error:", Kind.OOPS, ("Internal error:", "Internal error in {0}", _FAULT)),
    _simple("Unhandled fault:", Kind.OOPS, ("Unhandled fault:", "Unhandled fault in {0}", _FAULT)),
    _simple("Alignment trap:", Kind.OOPS, ("Alignment trap:", "Alignment trap in {0}", _FAULT)),
    TRUSTY,
    # /sys/kernel/debug/kmemleak, when a workload copies it to the console.
    Group("unreferenced object 0x", (
        Format(Kind.MEMORY_LEAK, rx("unreferenced object 0x"), "memory leak in {0}", stack=_LEAK_STACK),),
        quick="unreferenced object", joins=True),
)


# What may stand between a line's console prefix and a report's header: a
# report starts at the start of a line, never in the middle of one ("echo
# x BUG: y" is not a kernel report), but the kernel itself puts these in front
# of some headers. Each is literal, so random text cannot pass for one.
LEAD = re.compile(
    r"\s*"
    r"(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?"  # syzkaller's own log stamp, in front of kmemleak's
    r"(?:\[ "  # old lockdep: "[ INFO: possible circular locking dependency detected ]"
    r"|rcu: |watchdog: |NMI watchdog: "  # pr_fmt subsystem tags: "rcu: INFO: ...", "watchdog: BUG: ..."
    r"|Oops: |segment-related "  # x86 since 6.11: "Oops: general protection fault, ..."
    # printed without a newline by old KASAN, so the oops that follows shares its line
    r"|kasan: GPF could be caused by NULL-ptr deref or user memory access"
    r")*")


def _screen(groups: tuple[Group, ...]) -> re.Pattern:
    """A quick test every line can afford. Regex engines skip ahead fast to a rare
    first character, so each group offers a ``quick`` token starting with one; the
    tokens are merged into a trie so each candidate position costs one branch."""
    return re.compile(_trie(list(dict.fromkeys(group.quick or group.header for group in groups))))


def _trie(words: list[str]) -> str:
    if "" in words:
        return ""  # a shorter token already matches here
    branches: dict[str, list[str]] = {}
    for word in words:
        branches.setdefault(word[0], []).append(word[1:])
    alternatives = [re.escape(first) + _trie(rest) for first, rest in sorted(branches.items())]
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


SCREEN = _screen(GROUPS)

# Lines that belong to the report they follow rather than start one:
# the panic after an oops, the trap line of a BUG(), a fault during a fault.
FOLLOW_UPS = re.compile(r"invalid opcode: 0000|Kernel panic - not syncing|unregister_netdevice: waiting for"
                        r"|PANIC: double fault|Internal error:")

# Messages with a stack trace that are not bugs; inside a report they mean
# what follows is not that report's any more.
INTERLUDES = ("vmalloc: allocation failure:", "FAULT_INJECTION: forcing a failure",
              "FAULT_FLAG_ALLOW_RETRY missing")
