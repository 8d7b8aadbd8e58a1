"""Stack frames: which function a report is about.

A report's title names the first frame that is not machinery: not the code
that prints the report (dump_stack, __warn, kasan_report), takes locks,
schedules, allocates, copies memory or tears devices down. ``SKIP`` lists
that machinery by category; a format may add its own patterns.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lab.kernellog.patterns import STACK, Pick, StackRule, rx
from lab.kernellog.search import first_line

_REPORTING = (
    "__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan", "kcsan_setup_watchpoint",
    "check_memory_region", "check_heap_object", "check_object", "read_word_at_a_time",
    "(?:read|write)_once_.*nocheck", "print_address_description", "panic", "invalid_op", "report_bug",
    "fixup_bug", "print_report", "print_usage_bug", "do_error", "_trap$|do_trap", "show_stack",
    "dump_stack", "walk_stack", "dump_backtrace", "warn_slowpath", "warn_alloc", "warn_bogus", "__warn",
    "debug_object", "timer_is_static_object", "work_is_static_object", "print_tainted", "^get_taint$",
    "__fortify_report", "assertfail", "hex_dump_to_buffer", "print_hex_dump", "stack_trace_consume_entry",
    "arch_stack_walk", "stack_trace_save", "printk", "va_format", "snprintf", "scnprintf", "kv?asprintf",
    "string", "pointer", "dev_(?:info|notice|warn|err|alert|crit|emerg)", "program_check_(?:exception|common)",
    "perf_trace", "__phys_addr",
)
_LOCKING = (
    "lockdep", "print_unlock", "imbalance_bug", "bh_enable", "bh_disable", "lock_acquire", "lock_release",
    "lock_class", "mark_lock", "(?:reacquire|mark)_held_locks", "raw_spin_rq", "spin_lock", "spin_trylock",
    "spin_unlock", "read_lock", "read_trylock", "write_lock", "write_trylock", "read_unlock", "write_unlock",
    "^down$", "down_read", "down_write", "down_trylock", "up_read", "up_write", "^mutex_", "^__mutex_",
    "^rt_mutex_", "owner_on_cpu", "osq_lock", "osq_unlock", "(?:trace|lockdep)_(?:hard|soft)irq",
    "^(?:un)?lock_page", "lock_timer_base",
    "atomic(?:64)?_(?:dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(?:set|clear|change|test)_bit", "^refcount_", "^kref_", "ref_tracker", "seqprop_assert",
)
_SCHEDULING = (
    "__wake_up", "^complete$", "wait_for_completion", "finish_wait", "kthread_stop", "__might_resched",
    "might_sleep", "might_fault", "del_timer", "flush_work", "__cancel_work_timer", "cancel_work_sync",
    "try_to_grab_pending", "flush_workqueue", "drain_workqueue", "destroy_workqueue", "queue_work",
    "insert_work", "__queue_delayed_work", "queue_delayed_work_on", "__timer_delete_sync",
    "sk_stop_timer_sync", "__mod_timer",
)
_ALLOCATION = (
    "alloc_page", "k?v?(?:m|z|c)alloc", "krealloc", "kmem_cache", "allocate_slab", "slab_",
    "__alloc_frozen_pages_noprof", "folio_(?:alloc|unlock)", "filemap_alloc_folio", "__filemap_get_folio",
    "find_or_create_page", "do_read_cache_folio", "read_cache_page", "pagecache_get_page",
    "grab_cache_page_write_begin", "^kv?free$", "kfree_skb", "ida_free",
)
_MEMORY_HELPERS = (
    "memcpy", "memcmp", "memset", "memchr", "memmove", "memdup", "strcmp", "strncmp", "strcpy", "strlcpy",
    "strncpy", "strscpy", "strlen", "strstr", "strnstr", "strnlen", "strchr", "strdup", "strndup",
    "copy_to_user", "copy_from_user", "copy_to_iter", "copy_from_iter", "copy_page_to_iter",
    "copy_page_from_iter", "copy_folio_to_iter", "^copyin$", "^copyout$", "put_user", "get_user",
    "list_add", "list_del", "list_replace", "list_move", "list_splice", "^rb_", "^__rb_",
    "_indirect_thunk_", "^crc\\d+", "crc_itu_t", "(?:read|write)[bwlq]$", "logic_in", "logic_out",
    "xas_(?:start|load|find)", "rhashtable_lookup", "extract_(?:user|iter)_to_sg",
)
_TEARDOWN = (
    "kobject_", "add_uevent_var", "get_device_parent", "device_add", "device_del", "device_unregister",
    "device_destroy", "device_release", "devres_release_all", "^put_device$", "^klist_", "hwrng_unregister",
    "i2c_del_adapter", "__unregister_client", "device_for_each_child", "rollback_registered",
    "unregister_netdev", "sysfs_remove", "device_remove_file", "tty_unregister_device", "dummy_urb_enqueue",
    "usb_kill_urb", "usb_kill_anchored_urbs", "usb_control_msg", "usb_hcd_submit_urb", "usb_submit_urb",
    "^iput$", "^iput_final$", "^ihold$", "drop_nlink", "dput", "find_lock_entries",
    "truncate_inode_pages_range", "cleanup_srcu_struct",
)
# WARN_ONs that catch a caller's misuse: the caller is the culprit.
_MISUSE_CHECKS = ("mark_buffer_dirty",)
_FAULT_PATH = ("do_(?:kernel|translation)_fault", "do_mem_abort", "el1_abort", "el1h_64_sync(?:_handler)?")

SKIP = _REPORTING + _LOCKING + _SCHEDULING + _ALLOCATION + _MEMORY_HELPERS + _TEARDOWN + _MISUSE_CHECKS + _FAULT_PATH

# Syscall entry wrappers differ by architecture and kernel version.
_SYSCALL_PREFIXES = ("SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_",
                     "__sys_", "__se_", "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_")

# "  [<ffffffff81234567>] func+0x1/0x2" or "  func.isra.0+0x1/0x2"; arm: "[<c01>] (f) from [<c02>] (g+0x..".
FRAME_LINE = rx(r"(?m)^ *(?:{PC} ){0,2}{FUNC}|^ *{PC} \(([a-zA-Z0-9_.]+)\) from {PC} \({FUNC}")
# Lines that start a (new) stack trace; lockdep's "stack backtrace:" does not
# (it is followed by "Call Trace:"). Found by their literal starts: str.find
# skips ahead far faster than a regex search.
_STACK_START = re.compile(r"Call [Tt]race|Allocated(?: by task [0-9]+)?:|Freed(?: by task [0-9]+)?:"
                          r"|backtrace(?: \(crc [0-9a-f]*\))?:|Backtrace:|Uninit was stored to memory at")
_STACK_NEEDLES = ("Call Trace", "Call trace", "Allocated", "Freed", "backtrace", "Backtrace:",
                  "Uninit was stored")


def _stack_start_at(text: str, i: int, end: int) -> re.Match | None:
    match = _STACK_START.match(text, i, end)
    if match is not None and text[i] == "b" and (text[i - 1:i] != " " or text[i - 2:i - 1] in ("k", "")):
        return None  # "stack backtrace:", or "backtrace:" glued to a word
    return match


def stack_starts(text: str, pos: int = 0, endpos: int | None = None) -> list[re.Match]:
    """The places that start a stack trace, in order."""
    end = len(text) if endpos is None else endpos
    found = []
    for needle in _STACK_NEEDLES:
        i = text.find(needle, pos, end)
        while i >= 0:
            match = _stack_start_at(text, i, end)
            if match is not None:
                found.append(match)
            i = text.find(needle, i + 1, end)
    found.sort(key=re.Match.start)
    return found


def stack_start(text: str, pos: int = 0, endpos: int | None = None) -> re.Match | None:
    """The next place that starts a stack trace."""
    end = len(text) if endpos is None else endpos
    first = None
    for needle in _STACK_NEEDLES:
        i = text.find(needle, pos, end if first is None else first.start())
        while i >= 0:
            match = _stack_start_at(text, i, end)
            if match is not None:
                first = match
                break
            i = text.find(needle, i + 1, end if first is None else first.start())
    return first


# Fault injection prints its own stack in the middle of reports.
_FAULT_INJECTION = re.compile(r"(?m)^(?: \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(?:slab)?(?:\.[a-z0-9.]+)?\+0x")

# Stalls and lockups loop across several functions; the report names the
# caller of the first dispatcher below instead of where the loop was hit.
_STALL_ANCHORS = re.compile("|".join((
    "process_one_work", "do_syscall_", "do_fast_syscall_", "sysenter_dispatch", "tracesys_phase2",
    "el0_svc_handler", "invoke_syscall", "ret_fast_syscall", "netif_receive_skb", "do_softirq",
    "call_timer_fn", "_run_timers", "run_timer_softirq", "hrtimer_run", "run_ksoftirqd",
    "smpboot_thread_fn", "^kthread$", "start_secondary", "cpu_startup_entry", "ret_from_fork",
    "vfs_write", "vfs_read", "vfs_iter_read", "vfs_iter_write", "do_iter_read", "do_iter_write",
    "call_read_iter", "call_write_iter", "new_sync_read", "new_sync_write", "vfs_ioctl", "ksys_ioctl",
    "compat_ioctl", "compat_sys_ioctl", "blkdev_driver_ioctl", "blkdev_ioctl", "do_iter_readv_writev",
    "^call_mmap", "mmap_region", "do_mmap", "do_dentry_open", "vfs_open",
    "^sock_sendmsg", "^sock_recvmsg", "^sock_release", "^__sock_release", "^setsockopt$",
    "kernel_setsockopt", "sock_common_setsockopt", "^listen$", "kernel_listen", "sk_common_release",
    "^sock_mmap", "^accept$", "kernel_accept", "^sock_do_ioctl", "^sock_ioctl", "^compat_sock_ioctl",
    "^nfnetlink_rcv_msg", "^rtnetlink_rcv_msg", "^netlink_dump", "^(?:sys_)?(?:socketpair|connect|ioctl)",
    "__do_fault", "do_page_fault", "^page_fault$", "__fput", "task_work_run", "exit_to_usermode",
    "smp_call_function", "tasklet_action", "tasklet_hi_action",
)))
# A hung task waits in scheduling code; group the common waits, else skip them.
_HUNG_GROUPS = (("rtnl_lock", None), ("synchronize_rcu", "synchronize_rcu"),
                ("synchronize_srcu", "synchronize_rcu"), ("synchronize_net", "synchronize_rcu"),
                ("synchronize_sched", "synchronize_rcu"))
_HUNG_SKIP = ("sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread", "wait",
              "synchronize", "context_switch", "__switch_to", "cancel_delayed_work", "rcu_barrier")

CORRUPTED = "corrupted"


class _Skip:
    """Whether a frame is machinery to pass over; remembers its answers."""

    def __init__(self, extra: tuple[str, ...]) -> None:
        self._regex = re.compile("|".join(SKIP + extra))
        self._known: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        known = self._known.get(name)
        if known is None:
            if len(self._known) > 100_000:
                self._known.clear()
            known = self._known[name] = self._regex.search(name) is not None
        return known


@lru_cache(maxsize=None)
def _skipper(extra: tuple[str, ...]) -> _Skip:
    return _Skip(extra)


@lru_cache(maxsize=1 << 16)
def strip_syscall_prefix(frame: str) -> str:
    """"__x64_sys_rmdir" -> "sys_rmdir": the shortest result of removing one prefix."""
    best = frame
    for prefix in _SYSCALL_PREFIXES:
        if frame.startswith(prefix) and len(frame) - len(prefix) < len(best):
            best = frame[len(prefix):]
    return best


@lru_cache(maxsize=1 << 16)
def _is_anchor(frame: str) -> bool:
    """A dispatcher frame (after strip_syscall_prefix) for the stall heuristic."""
    return _STALL_ANCHORS.search(frame) is not None


def _pick(frames: list[str], how: Pick) -> str | None:
    if not frames:
        return None
    if how is Pick.FIRST:
        return strip_syscall_prefix(frames[0])
    frames = [strip_syscall_prefix(f) for f in frames]
    if how is Pick.STALL:
        prev = frames[0]
        for frame in frames:
            if _is_anchor(frame):
                return "smp_call_function" if "smp_call_function" in frame else prev
            prev = frame
        return None
    for frame in frames:  # Pick.HUNG
        for anchor, name in _HUNG_GROUPS:
            if anchor in frame:
                return name or frame
    return next((f for f in frames if not any(s in f for s in _HUNG_SKIP)), None)


def _add(frames: list[str], match: re.Match, skip: _Skip) -> None:
    for name in match.groups():
        if name and not skip(name):
            frames.append(name)


def _next_line(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end + 1


def _line_of(text: str, pos: int, floor: int) -> int:
    return max(text.rfind("\n", 0, pos) + 1, floor)


def _walk(text: str, pos: int, parts: tuple, skip: _Skip, how: Pick) -> tuple[list[str], bool]:
    """Walk ``parts`` through ``text`` from ``pos``: one picked frame per stack trace part,
    and False if a trace had no usable frame or a fault-injection frame got in the way."""
    picked: list[str] = []
    frames: list[str] = []
    ok, traces, index, end = True, 0, 0, len(text)
    injected = "should_fail" in text
    # With one stack trace part, the first frame found is the answer: stop there.
    settled = how is Pick.FIRST and not injected and parts.count(STACK) <= 1
    while True:
        if settled and frames:
            return [_pick(frames, how)], ok
        if index == len(parts) or (parts[index] is STACK and traces):
            frame = _pick(frames, how)
            if frame is None:
                frame, ok = CORRUPTED, False
            picked.append(frame)
            frames = []
        if index == len(parts):
            return picked, ok
        part = parts[index]
        if part is STACK:
            traces += 1
            following = parts[index + 1] if index + 1 < len(parts) else None
            pos, clean, took_next = _trace(text, pos, following, frames, skip, how, injected)
            ok = ok and clean
            index += took_next
        else:
            match = first_line(part, text, pos)
            fault = _FAULT_INJECTION.search(text, pos, match.start() if match else end) if injected else None
            if fault:
                ok, pos = False, _next_line(text, fault.start())
            elif match:
                _add(frames, match, skip)
                pos = _next_line(text, match.start())
            else:
                pos = end
        index += 1


def _trace(text: str, pos: int, following, frames: list[str], skip: _Skip, how: Pick,
           injected: bool) -> tuple[int, bool, bool]:
    """Read the stack trace at ``pos`` into ``frames``. It ends where another trace
    starts, where the ``following`` part matches (its frame is taken too), or at a
    fault-injection frame. Returns where to go on, whether no fault injection got in
    the way, and whether ``following`` was consumed."""
    stop, why, found = len(text), None, None
    fault = _FAULT_INJECTION.search(text, pos) if injected else None
    if fault:
        stop, why = fault.start(), "fault"
    start = stack_start(text, pos, stop)
    if start:
        stop, why = _line_of(text, start.start(), pos), "start"
    if following is not None and following is not STACK:
        found = first_line(following, text, pos, stop)
        if found:
            stop, why = _line_of(text, found.start(), pos), "next"
    for match in FRAME_LINE.finditer(text, pos, stop):
        _add(frames, match, skip)
        if frames and _settled(frames, how, following):
            break
    if why == "next":
        _add(frames, found, skip)
    return (_next_line(text, stop) if why else len(text)), why != "fault", why == "next"


def _settled(frames: list[str], how: Pick, following) -> bool:
    """More frames of this trace change nothing: the first one is taken, or a stall's dispatcher is found."""
    if how is Pick.FIRST:
        return following is None
    return how is Pick.STALL and _is_anchor(strip_syscall_prefix(frames[-1]))


def extract(text: str, pos: int, rule: StackRule) -> tuple[list[str], bool]:
    """The frames ``rule`` picks from ``text[pos:]``, and False if it found none."""
    skip = _skipper(rule.skip)
    frames, ok = _walk(text, pos, rule.parts, skip, rule.pick)
    if not ok and rule.fallback:
        frames, ok = _walk(text, pos, rule.fallback, skip, rule.pick)
    return frames, ok
