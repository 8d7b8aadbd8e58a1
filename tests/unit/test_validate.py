"""The checks every input goes through (lab/validate.py), message for message."""

import os

import pytest

from lab import validate
from lab.errors import UserError


def refused(check, value, message, **kw):
    with pytest.raises(UserError) as e:
        check(value, file="j.yaml", field="f", **kw)
    assert (e.value.file, e.value.field, e.value.bare) == ("j.yaml", "f", message)


def test_number():
    assert validate.number(2, 1, 3, field="f") == 2.0
    assert validate.number(1.0, 1, 3, field="f") == 1.0 and validate.number(3, 1, 3, field="f") == 3
    assert validate.number(1, 1, 3, field="f") == 1.0                # the bounds are in range
    refused(validate.number, "2", "expected a number, got '2'", lo=1, hi=3)
    refused(validate.number, True, "expected a number, got True", lo=1, hi=3)
    refused(validate.number, 4, "must be a finite number in 1..3, got 4", lo=1, hi=3)
    refused(validate.number, 0.5, "must be a finite number in 1..3, got 0.5", lo=1, hi=3)
    refused(validate.number, float("nan"), "must be a finite number in 1..3, got nan", lo=1,
            hi=3)
    refused(validate.number, 10 ** 400, "must be a finite number in 1..3, got "
            + validate.show(10 ** 400), lo=1, hi=3)


def test_path_text():
    assert validate.path_text("~/x", field="f") == "~/x"
    refused(validate.path_text, "", "expected a path string (not empty), got ''")
    refused(validate.path_text, 5, "expected a path string (not empty), got 5")
    refused(validate.path_text, "a\0b", "'a\\x00b' is not a usable path; valid: at most 4096 "
            "characters, no NUL")
    refused(validate.path_text, "x" * 4097, validate.show("x" * 4097) + " is not a usable "
            "path; valid: at most 4096 characters, no NUL")
    assert validate.path_text("x" * 4096, field="f")
    refused(validate.path_text, "~nosuchuser_lab/x", "'~nosuchuser_lab/x': no such user's "
            "home; valid: ~/PATH, ~USER/PATH of a user of this host, or a plain path")


def test_matching():
    check = validate.matching(r"[a-z]+", "lower-case letters")
    assert check("abc", field="f") == "abc"
    refused(check, "abc1", "'abc1' is not valid; valid: lower-case letters ([a-z]+)")
    refused(check, 5, "5 is not valid; valid: lower-case letters ([a-z]+)")


def test_seconds_and_bounds():
    assert validate.seconds(1, field="f") == 1.0 and validate.seconds(0.5, field="f") == 0.5
    assert validate.seconds(validate.MAX_SECONDS, field="f") == validate.MAX_SECONDS
    refused(validate.seconds, validate.MAX_SECONDS + 1, "must be a positive, finite number of "
            "seconds up to 604800, got 604801")
    refused(validate.seconds, "1", "expected a number of seconds, got '1'")
    refused(validate.seconds, 0, "must be a positive, finite number of seconds up to 604800, "
            "got 0")
    refused(validate.seconds, 0.0, "must be a positive, finite number of seconds up to 604800, "
            "got 0.0")
    assert validate.bound_seconds(0, field="f") == 0.0 == validate.bound_seconds(0.0, field="f")
    assert validate.bound_seconds(validate.MAX_SECONDS, field="f") == validate.MAX_SECONDS
    assert validate.bound_seconds(float(validate.MAX_SECONDS), field="f") == validate.MAX_SECONDS
    for bad in (-1, -0.5, float("inf"), float("nan"), validate.MAX_SECONDS + 0.5):
        refused(validate.bound_seconds, bad, "must be a finite number of seconds in 0..604800 "
                f"(0: off), got {bad!r}")
    refused(validate.bound_seconds, "x", "expected a number of seconds (0: off), got 'x'")


def test_the_machine_is_bounded_by_this_host(monkeypatch):
    monkeypatch.setattr(validate, "host_cpus", lambda: 4)
    monkeypatch.setattr(validate, "host_memory_mb", lambda: 8192)
    assert validate.machine_bounds() == {
        "memory_mb": (64, 8192, "MiB (this host's memory)"), "cpus": (1, 4, "(this host's cpus)"),
        "nvme_mb": (0, 1 << 20, "MiB (0: none)"), "pmem_mb": (0, 1 << 20, "MiB (0: none)")}
    refused(lambda v, **kw: validate.machine_number("cpus", v, **kw), 5,
            "must be 1..4 (this host's cpus), got 5")


def test_the_hosts_size():
    validate.host_cpus.cache_clear()
    validate.host_memory_mb.cache_clear()
    assert validate.host_cpus() == (os.cpu_count() or 1)
    assert 64 < validate.host_memory_mb() < 1 << 24


def test_integer_and_name():
    assert validate.integer(1, 1, 3, field="f") == 1 and validate.integer(3, 1, 3, field="f") == 3
    refused(validate.integer, 4, "must be 1..3, got 4", lo=1, hi=3)          # no unit: none shown
    refused(validate.integer, 0, "must be 1..3 MiB, got 0", lo=1, hi=3, unit="MiB")
    refused(validate.integer, 2.0, "expected an integer, got 2.0", lo=1, hi=3)
    refused(validate.name, 5, "5 is not a valid name; valid: " + validate.NAME_FORM)
    refused(validate.name, "a.b", "'a.b' is not a valid name; valid: " + validate.NAME_FORM)


def test_show_cuts_a_value_to_60_characters():
    assert validate.show("x" * 58) == "'" + "x" * 58 + "'"                  # 60: whole
    assert validate.show("x" * 59) == "'" + "x" * 56 + "..."                # 61: cut to 60
    assert validate.show("x" * 200, 10) == "'xxxxxx..."
    assert validate.show(10 ** 5000) == "<int>"         # repr refuses: its type, not a crash
