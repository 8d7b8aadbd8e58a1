"""The scheduler's two guarantees: the host is never oversubscribed, and each
kernel is made once however many cells need it."""

import threading
import time

import pytest

from lab.schedule import Cancelled, MadeOnce, Resources


def test_guests_never_exceed_cores_or_memory():
    r = Resources(cores=2, memory_mb=10_000)
    seen = []

    def guest(cpus, mem):
        with r.guest(cpus, mem):
            seen.append((r.usage.cores, r.usage.memory_mb))
            time.sleep(0.05)
    threads = [threading.Thread(target=guest, args=(c, m))
               for c, m in [(1, 1000), (1, 1000), (2, 1000), (1, 8000), (1, 1000)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 5
    assert all(c <= 2 and m <= 10_000 for c, m in seen)
    assert r.usage.peak_cores == 2 and r.usage.cores == 0 and r.usage.memory_mb == 0


def test_a_build_holds_every_core():
    r = Resources(cores=2, memory_mb=10_000)
    order = []
    with r.build("b"):
        t = threading.Thread(target=lambda: r.guest(1, 100).__enter__() or order.append("g"))
        t.start()
        time.sleep(0.2)
        assert order == []           # the guest waits for the build
    t.join(2)
    assert order == ["g"]


def test_demands_larger_than_the_host_are_served_as_the_whole_host():
    r = Resources(cores=2, memory_mb=1000)
    with r.guest(8, 64_000):
        assert r.usage.cores == 2 and r.usage.memory_mb == 1000


def test_earlier_waiter_that_fits_goes_first_later_ones_backfill():
    r = Resources(cores=2, memory_mb=10_000)
    got = []
    hold = r.hold(1, 0, "first")
    hold.__enter__()

    def want(label, cores):
        with r.hold(cores, 0, label):
            got.append(label)
            time.sleep(0.1)
    big = threading.Thread(target=want, args=("big", 2))
    big.start()
    time.sleep(0.1)
    small = threading.Thread(target=want, args=("small", 1))
    small.start()
    small.join(2)
    assert got == ["small"]          # fits beside "first"; "big" cannot yet
    hold.__exit__(None, None, None)
    big.join(2)
    assert got == ["small", "big"]


def test_cancel_wakes_waiters():
    r = Resources(cores=1, memory_mb=1000)
    errors = []
    with r.hold(1, 0):
        def waiter():
            try:
                with r.hold(1, 0, "w"):
                    pass
            except Cancelled as e:
                errors.append(e)
        t = threading.Thread(target=waiter)
        t.start()
        r.cancel()
        t.join(3)
    assert len(errors) == 1 and "interrupted" in str(errors[0])


def test_after_cancel_no_cell_starts_even_where_it_fits():
    """Ctrl-C kills the running guests, which frees their cores: a cell
    asking for them then (or woken by their release) must not start."""
    r = Resources(cores=2, memory_mb=1000)
    r.cancel()
    with pytest.raises(Cancelled, match="interrupted while w waited to run"):
        with r.hold(1, 0, "w"):
            pass
    assert r.usage.cores == 0


def test_kernel_cache_makes_each_key_once():
    cache = MadeOnce()
    calls = []

    def make(key):
        calls.append(key)
        time.sleep(0.1)
        return f"artifact-{key}"
    results = []
    threads = [threading.Thread(target=lambda k=k: results.append(cache.get(k, lambda: make(k))))
               for k in ("a", "b", "a", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == ["a", "b"] and cache.made.count("a") == 1
    assert sorted(results) == ["artifact-a"] * 3 + ["artifact-b"] * 2


def test_kernel_cache_hands_a_failure_to_every_waiter():
    cache = MadeOnce()

    def boom():
        time.sleep(0.1)
        raise RuntimeError("make failed")
    errors = []

    def get():
        try:
            cache.get("k", boom)
        except RuntimeError as e:
            errors.append(e)
    threads = [threading.Thread(target=get) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 3 and cache.made == []
    with pytest.raises(RuntimeError):
        cache.get("k", lambda: "never called")
