"""Damaged, hostile and nonsensical input: never raise, always explain."""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time

import pytest

from logmail.mail import ParsedMessage, parse_message

try:
    from tests import mail_samples as samples
except ImportError:  # tests/ itself is on sys.path
    import mail_samples as samples


def assert_storable(message: ParsedMessage) -> None:
    """Every string in the result must be encodable as UTF-8."""
    assert isinstance(message, ParsedMessage)
    strings = [message.subject, message.snippet, message.text or "", message.html or "", *message.parse_errors]
    strings += [value for pair in message.headers for value in pair]
    strings += [address.name + address.address for address in message.to + message.cc + message.reply_to]
    strings += [attachment.filename or "" for attachment in message.attachments]
    for string in strings:
        string.encode("utf-8")
    assert len(message.snippet) <= 200


def test_empty_message():
    message = parse_message(b"")

    assert message.parse_errors == ["empty message"]
    assert message.subject == "" and message.text is None and message.html is None
    assert message.headers == [] and message.attachments == [] and message.snippet == ""


@pytest.mark.parametrize("raw", [b"\r\n", b"\n\n\n", b" \t\r\n"])
def test_blank_message_counts_as_empty(raw):
    message = parse_message(raw)

    assert message.parse_errors == ["empty message"]
    assert message.text is None and message.headers == []


def test_only_headers():
    message = parse_message(b"Subject: no body\r\nFrom: a@example.com\r\n")

    assert message.subject == "no body"
    assert message.from_.address == "a@example.com"
    assert message.text is None
    assert message.parse_errors == []


def test_only_body_without_headers():
    message = parse_message(b"Just some text\nwith no headers at all.\n")

    assert message.headers == []
    assert message.text == "Just some text\nwith no headers at all.\n"
    assert message.parse_errors == ["no header section in message; content treated as body"]


def test_malformed_header_line_starts_the_body():
    message = parse_message(b"Subject: ok\nthis is not a header\nX-After: also body\n\nreal body\n")

    assert message.headers == [("Subject", "ok")]
    assert message.text == "this is not a header\nX-After: also body\n\nreal body\n"
    assert message.parse_errors == ["malformed header line in message; the rest treated as body"]


def test_header_defects_are_described():
    message = parse_message(b" continuation first\nSubject: s\nFrom nobody\n: no name\nX: y\n\nbody")

    assert message.subject == "s"
    assert message.headers == [("Subject", "s"), ("X", "y")]
    assert message.parse_errors == [
        "header section starts with a continuation line in message",
        "misplaced 'From ' envelope line among the headers in message",
        "header line without a name in message",
    ]


def test_mbox_envelope_line_is_not_a_header():
    message = parse_message(b"From sender@example.com Thu Jan  4 12:00:00 2024\nSubject: mbox\n\nbody")

    assert message.headers == [("Subject", "mbox")]
    assert message.parse_errors == []


def test_truncated_multipart():
    raw = samples.crlf(samples.NESTED)
    cut = raw[: raw.index(b"Content-Type: application/pdf") + 200]
    message = parse_message(cut)

    assert message.text == "Plain body with an image."
    assert message.attachments[0].data == samples.PNG_BYTES
    assert message.attachments[1].filename == "report.pdf"
    assert samples.PDF_BYTES.startswith(message.attachments[1].data)
    assert "truncated multipart (closing boundary missing) in message" in message.parse_errors


def test_truncated_inner_multipart_ends_at_outer_boundary():
    raw = b"""Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

inner text, never closed
--outer
Content-Type: application/zip

zip
--outer--
"""
    message = parse_message(raw)

    assert message.text == "inner text, never closed"
    assert [(a.content_type, a.data) for a in message.attachments] == [("application/zip", b"zip")]
    assert message.parse_errors == ["truncated multipart (closing boundary missing) in part 1"]


def test_bad_base64_is_decoded_best_effort():
    data = bytes(range(256)) * 4
    encoded = samples.b64(data)
    damaged = encoded[:100] + b"!!\x00" + encoded[100:-20]  # junk inside, truncated end
    raw = samples.with_attachment(
        b'Content-Type: application/octet-stream; name="x.bin"\nContent-Transfer-Encoding: base64\n', damaged
    )
    message = parse_message(raw)
    (attachment,) = message.attachments

    assert message.parse_errors == ["bad base64 in part 2"]
    assert len(attachment.data) >= len(data) - 20
    assert data.startswith(attachment.data[:700])
    assert attachment.sha256 == samples.sha256(attachment.data)


def test_concatenated_base64_is_not_cut_at_the_first_padding():
    raw = samples.with_attachment(
        b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n", b"QQ==\nQkM=\nREVG\n"
    )
    message = parse_message(raw)

    assert message.attachments[0].data == b"ABCDEF"
    assert message.parse_errors == ["bad base64 in part 2"]


def test_multipart_without_boundary():
    message = parse_message(b"Content-Type: multipart/mixed\n\nsome content\n")

    assert message.text == "some content\n"
    assert message.parse_errors == ["multipart without boundary in message; body kept as plain text"]


def test_boundary_that_never_appears():
    message = parse_message(b'Content-Type: multipart/mixed; boundary="nope"\n\n--other\n\ntext\n--other--\n')

    assert message.text == "--other\n\ntext\n--other--\n"
    assert message.parse_errors == ["multipart boundary never appears in message; body kept as plain text"]


def test_unknown_transfer_encoding_and_content_type():
    raw = b"Content-Type: text\nContent-Transfer-Encoding: x-weird\n\nbody"
    message = parse_message(raw)

    assert message.text == "body"
    assert message.parse_errors == [
        "malformed Content-Type 'text' in message; treated as text/plain",
        "unknown Content-Transfer-Encoding 'x-weird' left undecoded in part 1",
    ]


def test_raw_8bit_header_bytes():
    raw = b"Subject: \xff\xfe\x80 bad\nFrom: \xe9ric <e@example.com>\nX-Bin: \x00\x01\x02\xff\n\nbody"
    message = parse_message(raw)

    assert message.subject == "\u00ff\u00fe\u20ac bad"
    assert message.from_.name == "\u00e9ric"
    assert "undeclared 8-bit header Subject decoded as windows-1252" in message.parse_errors
    assert "NUL character removed from header X-Bin" in message.parse_errors
    assert_storable(message)


def test_nul_in_subject_and_body():
    message = parse_message(b"Subject: before\x00after\n\nbo\x00dy")

    assert message.subject == "beforeafter"
    assert message.text == "body"
    assert message.parse_errors == [
        "NUL character removed from header Subject",
        "NUL characters removed from part 1",
    ]


def test_huge_header_line():
    long_value = b"x" * 100_000
    message = parse_message(b"Subject: " + long_value + b"\nX-Other: ok\n\nbody")

    assert message.subject == "x" * 100_000
    assert dict(message.headers)["X-Other"] == "ok"
    assert message.text == "body"


def test_bare_cr_line_endings():
    message = parse_message(b"Subject: mac\rFrom: a@example.com\r\rclassic body\r")

    assert message.subject == "mac"
    assert message.text == "classic body\n"
    assert message.parse_errors == ["bare CR line endings treated as line breaks"]


@pytest.mark.parametrize("levels", [101, 1000, 5000])
def test_deep_nesting_is_cut_without_recursion(levels):
    raw = samples.nested_multipart(levels)
    # With almost no stack to spare, any per-level recursion would fail.
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 60)
    try:
        started = time.perf_counter()
        message = parse_message(raw)
        elapsed = time.perf_counter() - started
    finally:
        sys.setrecursionlimit(old_limit)

    assert message.parse_errors == ["nesting deeper than 100 levels truncated"]
    assert message.subject == "deep"
    assert elapsed < 2


def test_nesting_within_the_limit_is_followed():
    message = parse_message(samples.nested_multipart(99))

    assert message.text == "deep\n"
    assert message.parse_errors == []


def test_parts_after_a_nesting_bomb_survive():
    bomb = samples.nested_multipart(3000)
    bomb = bomb[bomb.index(b"Content-Type") :]  # drop the top-level headers
    raw = (
        b'From: a@example.com\nContent-Type: multipart/mixed; boundary="top"\n\n--top\n'
        + bomb
        + b'--top\nContent-Type: application/pdf; name="after.pdf"\n\npdf\n--top--\n'
    )
    message = parse_message(raw)

    assert [a.filename for a in message.attachments] == ["after.pdf"]
    assert message.parse_errors == ["nesting deeper than 100 levels truncated"]


def test_deeply_nested_rfc822_is_one_attachment():
    raw = b"Content-Type: message/rfc822\n\n" * 5000 + b"body"
    message = parse_message(raw)

    (attachment,) = message.attachments
    assert attachment.content_type == "message/rfc822"
    assert attachment.data.endswith(b"body")


@pytest.mark.parametrize("size", [1, 100, 10_000, 1_000_000])
def test_binary_garbage(size):
    message = parse_message(random.Random(size).randbytes(size))

    assert_storable(message)
    assert message.parse_errors  # garbage never looks clean


def test_ten_megabytes_of_junk_is_fast():
    started = time.perf_counter()
    message = parse_message(os.urandom(10_000_000))
    elapsed = time.perf_counter() - started

    assert_storable(message)
    assert elapsed < 5


def test_pathological_boundary_lines():
    raw = b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--ax\n" * 300_000
    message = parse_message(raw)

    assert "too many boundary-like lines; splitting stopped" in message.parse_errors


def test_part_count_is_capped():
    raw = b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\nContent-Type: image/gif\n\nx\n" * 12_000
    message = parse_message(raw)

    assert len(message.attachments) < 10_000
    assert "more than 10000 MIME parts; the rest ignored" in message.parse_errors


def test_broken_rfc2231_parameters_do_not_raise():
    # Numbered and unnumbered sections together crash the stdlib's sort.
    raw = samples.with_attachment(
        b"Content-Type: application/pdf\nContent-Disposition: attachment; filename*=utf-8''a.pdf; filename*0=b\n", b"x"
    )
    message = parse_message(raw)

    assert message.attachments[0].data == b"x"
    assert "unparsable content-disposition parameters in part 2" in message.parse_errors


@pytest.mark.parametrize(
    "raw",
    [
        b"To: " + b" " * 200_000 + b"x\n\nbody",
        b"To: " + b"a" * 200_000 + b" <b\n\nbody",
        b"To: " + b"a@b " * 50_000 + b"\n\nbody",
        b"Subject: " + b"=?" * 100_000 + b"\n\nbody",
        b"Subject: " + b"=?utf-8?q?" * 50_000 + b"\n\nbody",
        b"Message-ID: " + b"<" * 200_000 + b"\nReferences: " + b"<a" * 100_000 + b"\n\nbody",
        b"Content-Type: text/html\n\n" + b"<" * 300_000,
        b"Content-Type: text/html\n\n" + b"<style>" * 50_000 + b"x",
        b"Content-Type: text/html\n\n" + b"<!--" * 50_000 + b"x",
        b"Content-Type: text/html\n\n" + b"<a " * 100_000 + b"x",
        b"Content-Type: text/plain; " + b"a=b; " * 20_000 + b"\n\nbody",
    ],
    ids=["spaces-address", "long-name-address", "many-bare-words", "encoded-word-openers",
         "unclosed-encoded-words", "angle-brackets-ids", "html-lt", "html-unclosed-style",
         "html-unclosed-comments", "html-unclosed-tags", "many-parameters"],
)
def test_hostile_repetition_is_handled_in_linear_time(raw):
    started = time.perf_counter()
    message = parse_message(raw)
    elapsed = time.perf_counter() - started

    assert_storable(message)
    assert elapsed < 2


def test_snippet_of_hostile_html_is_fast():
    from logmail.mail import make_snippet

    for html in ("<" * 300_000, "<style>" * 50_000, "<p " * 100_000 + ">x", "<!--" * 50_000):
        started = time.perf_counter()
        make_snippet(None, html)
        assert time.perf_counter() - started < 1


def test_non_bytes_input_does_not_raise():
    assert parse_message(bytearray(b"Subject: ba\n\nx")).subject == "ba"
    assert parse_message(memoryview(b"Subject: mv\n\nx")).subject == "mv"
    assert parse_message(None).parse_errors == ["empty message"]  # type: ignore[arg-type]


def test_problem_list_is_bounded():
    raw = b"".join(b"X-H%d: \xff\n" % i for i in range(500)) + b"\nx"
    message = parse_message(raw)

    assert len(message.parse_errors) == 101
    assert message.parse_errors[-1] == "further problems omitted"


# --- fuzzing ----------------------------------------------------------------


def _mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if not buffer:
            buffer = bytearray(rng.choice(corpus))
        if choice < 0.3:  # flip bytes
            for _ in range(rng.randint(1, 8)):
                buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        elif choice < 0.5:  # truncate
            del buffer[rng.randrange(len(buffer)) :]
        elif choice < 0.7:  # splice in a chunk of another sample
            other = rng.choice(corpus)
            start = rng.randrange(len(other))
            chunk = other[start : start + rng.randint(1, 400)]
            at = rng.randrange(len(buffer) + 1)
            buffer[at:at] = chunk
        elif choice < 0.8:  # delete a range
            start = rng.randrange(len(buffer))
            del buffer[start : start + rng.randint(1, 200)]
        elif choice < 0.9:  # duplicate a line
            lines = bytes(buffer).split(b"\n")
            index = rng.randrange(len(lines))
            lines.insert(index, lines[index] * rng.randint(1, 3))
            buffer = bytearray(b"\n".join(lines))
        else:  # inject MIME-significant tokens
            token = rng.choice([b"\n--", b"=?utf-8?b?", b"?=", b"\r", b"\n\n", b"\x00", b"boundary=", b"*0*=", b"'", b'"'])
            at = rng.randrange(len(buffer) + 1)
            buffer[at:at] = token
    return bytes(buffer)


def test_fuzzed_samples_never_raise():
    corpus = [sample for raw in samples.CORPUS for sample in (raw, samples.crlf(raw))]
    corpus.append(samples.nested_multipart(5))
    rng = random.Random(20240101)
    for _ in range(3000):
        data = _mutate(rng, rng.choice(corpus), corpus)
        message = parse_message(data)
        assert_storable(message)
        for attachment in message.attachments:
            assert attachment.size == len(attachment.data)
        if "internal parser error" in " ".join(message.parse_errors):
            pytest.fail(f"parser failed internally on {data[:2000]!r}")


def test_crlf_lf_equivalence_under_mutation():
    rng = random.Random(99)
    for _ in range(200):
        data = _mutate(rng, samples.NESTED, [samples.NESTED]).replace(b"\r", b"")
        lf = parse_message(data)
        crlf = parse_message(samples.crlf(data))
        assert dataclasses.asdict(lf) == dataclasses.asdict(crlf)
