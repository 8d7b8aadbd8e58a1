"""The series parser's pure parts, message for message: subjects, the mbox
split, one message as a patch, and every refusal of check() with its words."""

import pytest

from lab.errors import UserError
from lab.kernel.series import (Series, check, parse_message, parse_messages, parse_subject,
                               series_hash, split_mbox)

GOLDEN_HASH = "f27fa53545521870"   # series_hash of the two patches of the hash test
DIFF = ("diff --git a/mm/gup.c b/mm/gup.c\n--- a/mm/gup.c\n+++ b/mm/gup.c\n"
        "@@ -1 +1 @@\n-a\n+{}\n")


def msg(subject: str, body: str = "x", mbox: bool = True) -> bytes:
    head = "From 1234567890abcdef Mon Sep 17 00:00:00 2001\n" if mbox else ""
    return (f"{head}From: A <a@b>\nSubject: {subject}\n\nwhy\n---\n"
            f"{DIFF.format(body)}-- \n2.39.5\n\n").encode()


def patch(subject, body="x", origin="p"):
    return parse_message(msg(subject, body), origin)


@pytest.mark.parametrize("subject, parsed", [
    ("[RFC][PATCH v5 2/3] mm: x", ("mm: x", 2, 3, 5, True)),
    ("[PATCH,v2,1/2]   mm:  spaced   out", ("mm: spaced out", 1, 2, 2, True)),
    ("[resend] [patch 3/4] fs: y", ("fs: y", 3, 4, 1, True)),
    ("[PATCH v3 0/7] cover", ("cover", 0, 7, 3, True)),
    ("[foo] bar", ("bar", None, None, 1, False)),
    ("Re: plain", ("Re: plain", None, None, 1, False)),
])
def test_subjects(subject, parsed):
    assert parse_subject(subject) == parsed


def test_a_message_as_a_patch():
    p = patch("[PATCH v2 1/2] mm: pin", origin="s.mbox#1")
    assert (p.subject, p.title, p.number, p.total, p.version, p.origin) == (
        "[PATCH v2 1/2] mm: pin", "mm: pin", 1, 2, 2, "s.mbox#1")
    assert p.label == "[PATCH v2 1/2] mm: pin"
    assert p.diff == DIFF.format("x").encode()          # the signature is not the diff's
    assert patch("[PATCH] mm: one").label == "[PATCH] mm: one"
    # a message without a From line gets one (git am needs it)
    bare = parse_message(msg("[PATCH] a", mbox=False), "a.patch")
    assert bare.raw.startswith(b"From 0000000000000000000000000000000000000000 ")
    assert parse_message(msg("", mbox=False), "b.patch").title == "b.patch"
    assert parse_message(b"From x\nSubject: cover\n\nno diff here\n", "c") is None


def test_mbox_split():
    one, two = msg("[PATCH 1/2] a"), msg("[PATCH 2/2] b")
    assert split_mbox(one + two) == [one, two]
    assert split_mbox(b"junk before\n" + one) == [b"junk before\n", one]
    assert split_mbox(b"no from line at all") == [b"no from line at all"]
    assert split_mbox(b"  \n") == []


def test_the_series_is_ordered_named_and_hashed_by_its_patches():
    a, b = patch("[PATCH 1/2] mm: a", "1", "x#1"), patch("[PATCH 2/2] mm: b", "2", "x#2")
    s = check([b, a], [], "x")
    assert [p.title for p in s.patches] == ["mm: a", "mm: b"] and s.of == 2
    assert s.subjects == ["[PATCH 1/2] mm: a", "[PATCH 2/2] mm: b"]
    assert s.name == "mm: a (+1 more)" and s.prefix == ""
    assert check([b, a], [("the cover", "x#0")], "x").name == "the cover"
    assert s.hash == series_hash([a, b])
    # the hash is of titles and diffs: a resend as v2 is the same series
    v2 = [patch("[PATCH v2 1/2] mm: a", "1"), patch("[PATCH v2 2/2] mm: b", "2")]
    assert series_hash(v2) == s.hash
    assert series_hash([a, patch("[PATCH 2/2] mm: b", "3")]) != s.hash
    assert series_hash([patch("[PATCH 1/2] mm: A", "1"), b]) != s.hash
    first = check([b, a], [], "x", upto=1)
    assert first.prefix == "patches 1..1 of 2" and first.name == "mm: a"
    assert Series(patches=s.patches, sources=(), hash="h", of=2).prefix == ""


def refused(patches, message, *fragments, **kw):
    """check() refuses: `message` is the whole message when no fragments
    follow, else its start; the file is the series'."""
    with pytest.raises(UserError) as e:
        check(patches, [], "s.mbox", **kw)
    if fragments:
        assert e.value.bare.startswith(message), e.value.bare
    else:
        assert e.value.bare == message
    for f in fragments:
        assert f in e.value.bare, e.value.bare
    if "upto" not in kw:
        assert e.value.file == "s.mbox"
    return e.value


def test_every_refusal_says_what_is_wrong():
    a1, a2 = patch("[PATCH 1/3] a", "1", "m#1"), patch("[PATCH 2/3] b", "2", "m#2")
    e = refused([], "holds no patch (no message with a diff)")
    assert e.file == "s.mbox"
    refused([a1, patch("[PATCH v2 2/3] b", "2")], "mixes versions v1, v2 of a series "
            "(give one version)")
    refused([a1, patch("[PATCH] loose", "9", "m#9")],
            "mixes numbered and unnumbered patches (unnumbered: m#9)")
    refused([a1, patch("[PATCH 2/4] b", "2")],
            "patches belong to series of different lengths (n/3, n/4)")
    refused([a1, patch("[PATCH 1/3] again", "5", "m#5"), a2, patch("[PATCH 3/3] c", "3")],
            "duplicate patch 1/3: 'a' (m#1) and 'again' (m#5)")
    refused([a1, a2, patch("[PATCH 4/3] d", "4", "m#4")],
            "patch number 4/3 out of range (m#4); missing patch(es) 3/3 (to apply only",
            "patches 1..2 of 3 on purpose")
    refused([a1, a2], "missing patch(es) 3/3 (to apply only patches 1..2 of 3 on purpose, "
            "e.g. to bisect inside the series: --series-upto 2, or series_upto: 2 in a job's "
            "build block)")
    refused([a2], "missing patch(es) 1/3, 3/3")      # nothing before the gap to keep
    refused([a1, patch("[PATCH 3/3] c", "3")], "missing patch(es) 2/3 (patches 1..2 were "
            "asked for, so each of them must be there)", upto=2)
    u1, u2 = patch("[PATCH] x", "7", "f1"), patch("[PATCH] y", "7", "f2")
    refused([u1, u2], "duplicate patch: 'y' (f2) has the same diff as 'x' (f1)")


@pytest.mark.parametrize("upto", [0, 4])
def test_a_prefix_past_the_series_names_who_asked(upto):
    a = [patch(f"[PATCH {n}/3] p{n}", str(n)) for n in (1, 2, 3)]
    e = refused(a, f"is {upto}, but the series (s.mbox) has 3 patch(es); valid: 1..3 (apply "
                "patches 1..N of it)", upto=upto, upto_at=("job.yaml", "kernel.build.upto"))
    assert e.file == "job.yaml"
    assert (e.file, e.field) == ("job.yaml", "kernel.build.upto")
    loose = [patch("[PATCH] a", "1"), patch("[PATCH] b", "2")]
    e = refused(loose, f"is {upto}, but the series (s.mbox) has 2 patch(es); valid: 1..2 "
                "(apply patches 1..N of it)", upto=upto)
    assert e.field == "series_upto" and e.file is None


def test_unnumbered_patches_keep_their_order_and_a_prefix_of_them():
    loose = [patch("[PATCH] b", "2"), patch("[PATCH] a", "1"), patch("[PATCH] c", "3")]
    assert [p.title for p in check(loose, [], "d").patches] == ["b", "a", "c"]
    assert [p.title for p in check(loose, [], "d", upto=2).patches] == ["b", "a"]


def test_parse_messages_keeps_cover_letters_apart():
    s = parse_messages([(b"From x\nSubject: [PATCH 0/1] the cover\n\nwhy\n", "m#0"),
                        (msg("[PATCH 1/1] a"), "m#1"),
                        (b"From x\n\nno subject, no diff\n", "m#2")], "m")
    assert s.cover == "the cover" and [p.title for p in s.patches] == ["a"]


def test_a_series_hash_is_stable_across_lab_versions():
    """The hash names cached kernels: the same patches give the same hash
    on any machine and any lab version (a change here rebuilds every
    cached kernel with a series)."""
    a, b = patch("[PATCH 1/2] mm: a", "1"), patch("[PATCH 2/2] mm: b", "2")
    assert series_hash([a, b]) == GOLDEN_HASH


def test_what_git_said_when_a_patch_did_not_apply():
    """apply_series applies each patch to a temporary index; when one does not
    apply, `git apply --cached --check --verbose` says which hunk and what
    context it searched for."""
    from lab.kernel.series import _hunk_report
    apply = ("Checking patch mm/gup.c...\n"
             "error: while searching for:\n"
             "a\n"
             "b\n"
             "error: patch failed: mm/gup.c:1\n"
             "error: mm/gup.c: patch does not apply\n"
             "unrelated\n")
    assert _hunk_report(apply) == (
        "  Checking patch mm/gup.c...\n"
        "  error: while searching for:\n"
        "      | a\n"
        "      | b\n"
        "  error: patch failed: mm/gup.c:1\n"
        "  error: mm/gup.c: patch does not apply")
    assert _hunk_report("nothing useful\n") == "  (git apply gave no hunk details)"


def test_a_plain_message_keeps_its_first_header_and_a_cover_needs_a_subject():
    first = b"Subject: [PATCH] first line\n\n---\n" + DIFF.format("z").encode()
    assert parse_message(first, "f").title == "first line"
    s = parse_messages([(b"From x\nFrom: a\n\nno subject, no diff\n", "m#0"),
                        (b"From x\nSubject: [PATCH 0/1] the cover\n\nwhy\n", "m#1"),
                        (msg("[PATCH 1/1] a"), "m#2")], "m")
    assert s.cover == "the cover"
    # an untitled 0/N still is a cover letter (its title empty)
    s = parse_messages([(b"From x\nSubject: [PATCH 0/1]\n\nwhy\n", "m#0"),
                        (msg("[PATCH 1/1] a"), "m#1")], "m")
    assert s.cover == "" and s.name == "a"
