"""Behaviour of parse_message on well-formed mail: fields, bodies, attachments."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from logmail.mail import ParsedAddress, ParsedMessage, make_snippet, parse_message

try:
    from tests import mail_samples as samples
except ImportError:  # tests/ itself is on sys.path
    import mail_samples as samples


def epoch_ms(*args: int, tz: timezone = timezone.utc) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


# --- header fields ----------------------------------------------------------


def test_alternative_message_fields():
    message = parse_message(samples.crlf(samples.ALTERNATIVE))

    assert isinstance(message, ParsedMessage)
    assert message.parse_errors == []
    assert message.subject == "Quarterly report \u2013 Q1"
    assert message.from_ == ParsedAddress(name="J\u00f6rg M\u00fcller", address="joerg@example.com")
    assert message.to == [
        ParsedAddress(name="Bob", address="bob@example.org"),
        ParsedAddress(name="", address="carol@example.org"),
    ]
    assert message.cc == [ParsedAddress(name="Doe, Jane", address="jane@example.net")]
    assert message.reply_to == [ParsedAddress(name="", address="replies@example.com")]
    assert message.date == epoch_ms(2024, 1, 2, 9, 0, 0)
    assert message.message_id == "report-1@example.com"
    assert message.in_reply_to == "question-7@example.org"
    assert message.references == ["start-1@example.org", "question-7@example.org"]


def test_headers_keep_order_and_are_unfolded_and_decoded():
    message = parse_message(samples.crlf(samples.ALTERNATIVE))
    names = [name for name, _ in message.headers]

    assert names == [
        "Return-Path", "Received", "From", "To", "Cc", "Reply-To", "Subject", "Date",
        "Message-ID", "In-Reply-To", "References", "MIME-Version", "Content-Type",
    ]
    headers = dict(message.headers)
    assert headers["Received"] == (
        "from mx.example.com (mx.example.com [192.0.2.1]) by mail.example.org with ESMTPS id 4242 "
        "for <bob@example.org>; Tue, 02 Jan 2024 10:00:00 +0100"
    )
    assert headers["Subject"] == "Quarterly report \u2013 Q1"
    assert headers["From"] == "J\u00f6rg M\u00fcller <joerg@example.com>"
    assert all("\n" not in value and "\r" not in value for _, value in message.headers)


def test_repeated_headers_are_all_kept():
    raw = samples.simple(extra_headers=b"X-Tag: one\nX-Tag: two\nTo: second@example.org\n")
    message = parse_message(raw)

    assert [value for name, value in message.headers if name == "X-Tag"] == ["one", "two"]
    # Recipients from every To header count.
    assert [a.address for a in message.to] == ["b@example.org", "second@example.org"]


def test_encoded_display_names_with_commas_and_quotes():
    raw = samples.simple(
        extra_headers=b'Cc: =?utf-8?q?M=C3=BCller=2C_Hans?= <hans@example.de>, "=?utf-8?b?w4FuZ2Vs?=" <angel@example.es>\n'
    )
    message = parse_message(raw)

    assert message.cc == [
        ParsedAddress(name="M\u00fcller, Hans", address="hans@example.de"),
        ParsedAddress(name="\u00c1ngel", address="angel@example.es"),
    ]


def test_missing_headers_give_empty_values():
    message = parse_message(b"X-Only: header\n\nbody\n")

    assert message.subject == ""
    assert message.from_ is None
    assert message.to == [] and message.cc == [] and message.reply_to == []
    assert message.date is None
    assert message.message_id is None
    assert message.in_reply_to is None
    assert message.references == []
    assert message.text == "body\n"
    assert message.parse_errors == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"Thu, 04 Jan 2024 12:00:00 +0000", epoch_ms(2024, 1, 4, 12)),
        (b"Thu, 4 Jan 2024 14:30:15 +0230", epoch_ms(2024, 1, 4, 12, 0, 15)),
        (b"4 Jan 2024 07:00:00 -0500", epoch_ms(2024, 1, 4, 12)),
        (b"Thu, 04 Jan 2024 12:00:00 GMT", epoch_ms(2024, 1, 4, 12)),
        (b"Thu, 04 Jan 2024 12:00:00 EST", epoch_ms(2024, 1, 4, 17)),
        # No zone (and RFC 5322's "unknown zone") are taken as UTC.
        (b"Thu, 04 Jan 2024 12:00:00", epoch_ms(2024, 1, 4, 12)),
        (b"Thu, 04 Jan 2024 12:00:00 -0000", epoch_ms(2024, 1, 4, 12)),
        (b"Thu, 04 Jan 24 12:00:00 +0000", epoch_ms(2024, 1, 4, 12)),
        (b"Thu,  04   Jan 2024 12:00:00 +0000 (UTC)", epoch_ms(2024, 1, 4, 12)),
    ],
)
def test_date_header_to_epoch_ms(value, expected):
    raw = b"From: a@example.com\nDate: " + value + b"\n\nx\n"
    message = parse_message(raw)

    assert message.date == expected
    assert message.parse_errors == []


@pytest.mark.parametrize("value", [b"yesterday", b"", b"Thu, 99 Foo 2024 99:99:99 +0000", b"\xff\xfe", b"0" * 5000])
def test_unparsable_date_is_none_and_noted(value):
    message = parse_message(b"From: a@example.com\nDate: " + value + b"\n\nx\n")

    assert message.date is None
    assert any("Date" in problem for problem in message.parse_errors)


def test_message_id_forms():
    assert parse_message(samples.simple(extra_headers=b"")).message_id == "simple@example.com"
    bare = parse_message(b"Message-ID: bare-id@example.com\n\nx")
    assert bare.message_id == "bare-id@example.com"
    folded = parse_message(b"Message-ID:\n <folded@example.com>\nReferences: a@x  b@y\n\nx")
    assert folded.message_id == "folded@example.com"
    assert folded.references == ["a@x", "b@y"]


# --- bodies -----------------------------------------------------------------


def test_alternative_bodies():
    message = parse_message(samples.crlf(samples.ALTERNATIVE))

    assert message.text == (
        "Hello Bob,\n\nthe report for Q1 is ready \u2013 numbers look good.\n"
        "See https://example.com/report.\n\nRegards,\nJ\u00f6rg"
    )
    assert message.html is not None
    assert '<a href="https://example.com/report" rel="noopener noreferrer">See report</a>' in message.html
    assert "<b>Bob</b>" in message.html
    for forbidden in ("<script", "alert(1)", "onload", "onclick", "<style", "color: red", "<title", "Report</"):
        assert forbidden not in message.html


def test_last_html_alternative_wins_and_first_plain_text():
    raw = b"""Content-Type: multipart/alternative; boundary=b

--b
Content-Type: text/plain

first plain
--b
Content-Type: text/html

<p>first html</p>
--b
Content-Type: text/plain

second plain
--b
Content-Type: text/html

<p>richest html</p>
--b--
"""
    message = parse_message(raw)

    assert message.text == "first plain"
    assert message.html == "<p>richest html</p>"
    # Unchosen alternatives are renderings, not attachments.
    assert message.attachments == []


def test_text_parts_that_are_attachments_are_not_bodies():
    raw = b"""Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; name="notes.txt"

not the body (has a name)
--b
Content-Type: text/html
Content-Disposition: attachment

<p>not the body (attachment)</p>
--b
Content-Type: text/plain
Content-Disposition: inline

the real body
--b--
"""
    message = parse_message(raw)

    assert message.text == "the real body"
    assert message.html is None
    assert [(a.filename, a.content_type, a.data) for a in message.attachments] == [
        ("notes.txt", "text/plain", b"not the body (has a name)"),
        (None, "text/html", b"<p>not the body (attachment)</p>"),
    ]


def test_html_only_message_has_no_text_and_snippet_from_html():
    raw = b"""Content-Type: text/html; charset=utf-8

<html><head><title>Ignore me</title><style>.x{}</style></head>
<body><p>Caf&eacute; &amp; cr&egrave;me</p><p>second&nbsp;para</p></body></html>
"""
    message = parse_message(raw)

    assert message.text is None
    assert message.html == "\n<p>Caf\u00e9 &amp; cr\u00e8me</p><p>second&nbsp;para</p>\n"
    assert message.snippet == "Caf\u00e9 & cr\u00e8me second para"


@pytest.mark.parametrize(
    "meta", ['<meta charset="koi8-r">', '<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=KOI8-R">']
)
def test_html_charset_from_meta_tag_when_undeclared(meta):
    body = f"<html><head>{meta}</head><body>\u041f\u0440\u0438\u0432\u0435\u0442</body></html>"
    raw = b"Content-Type: text/html\n\n" + body.encode("koi8-r")
    message = parse_message(raw)

    assert message.html == "\u041f\u0440\u0438\u0432\u0435\u0442"
    assert message.parse_errors == []


def test_nested_structure_bodies_and_attachments():
    message = parse_message(samples.crlf(samples.NESTED))

    assert message.parse_errors == []
    assert message.text == "Plain body with an image."
    assert message.html == '<p>HTML body <img src="cid:logo@example.com" alt="logo"></p>'
    image, pdf, forwarded = message.attachments
    assert (image.index, image.content_type, image.content_id, image.inline) == (0, "image/png", "logo@example.com", True)
    assert image.filename is None
    assert image.data == samples.PNG_BYTES
    assert image.sha256 == samples.sha256(samples.PNG_BYTES)
    assert image.size == len(samples.PNG_BYTES)
    assert (pdf.index, pdf.filename, pdf.content_type, pdf.inline) == (1, "report.pdf", "application/pdf", False)
    assert pdf.data == samples.PDF_BYTES and pdf.sha256 == samples.sha256(samples.PDF_BYTES)
    assert (forwarded.index, forwarded.filename, forwarded.content_type) == (2, "message.eml", "message/rfc822")
    assert forwarded.data == samples.crlf(samples.INNER_MESSAGE)


def test_forwarded_message_keeps_its_own_filename():
    raw = samples.with_attachment(
        b'Content-Type: message/rfc822\nContent-Disposition: attachment; filename="original.eml"\n',
        b"Subject: inner\n\ninner body",
    )
    (attachment,) = parse_message(raw).attachments

    assert attachment.filename == "original.eml"
    assert attachment.content_type == "message/rfc822"
    assert attachment.data == b"Subject: inner\r\n\r\ninner body"


def test_digest_parts_default_to_message_rfc822():
    raw = b"""Content-Type: multipart/digest; boundary=d

--d

Subject: first

one
--d

Subject: second

two
--d--
"""
    message = parse_message(raw)

    assert [(a.content_type, a.filename) for a in message.attachments] == [
        ("message/rfc822", "message.eml"),
        ("message/rfc822", "message.eml"),
    ]
    assert message.attachments[1].data == b"Subject: second\r\n\r\ntwo"


# --- attachments ------------------------------------------------------------


@pytest.mark.parametrize(
    ("part_headers", "expected"),
    [
        (b'Content-Disposition: attachment; filename="plain.txt"', "plain.txt"),
        (b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rates.pdf", "\u20ac rates.pdf"),
        (b"Content-Disposition: attachment; filename*=iso-8859-1'de'Gr%FC%DFe.txt", "Gr\u00fc\u00dfe.txt"),
        (
            b"Content-Disposition: attachment;\n filename*0*=utf-8''%E6%97%A5%E6%9C%AC;\n filename*1*=%E8%AA%9E;\n"
            b' filename*2=".doc"',
            "\u65e5\u672c\u8a9e.doc",
        ),
        (b'Content-Disposition: attachment; filename*0="a very long ";\n filename*1="name.txt"', "a very long name.txt"),
        (b'Content-Disposition: attachment; filename="=?utf-8?B?w6lsw6h2ZS5wZGY=?="', "\u00e9l\u00e8ve.pdf"),
        (b"Content-Type: application/octet-stream; name==?iso-8859-1?Q?r=E9sum=E9.doc?=", "r\u00e9sum\u00e9.doc"),
        (b'Content-Type: application/pdf; name="from-type.pdf"\nContent-Disposition: attachment', "from-type.pdf"),
        (b'Content-Disposition: attachment; filename="../../etc/passwd"', "passwd"),
        (b'Content-Disposition: attachment; filename="C:\\\\Users\\\\x\\\\evil.exe"', "evil.exe"),
        (b'Content-Disposition: attachment; filename="tab\tand\x01control.txt"', "tabandcontrol.txt"),
        (b'Content-Disposition: attachment; filename="   "', None),
        (b'Content-Disposition: attachment; filename=".."', None),
    ],
)
def test_attachment_filenames(part_headers, expected):
    raw = samples.with_attachment(part_headers + b"\nContent-Transfer-Encoding: base64\n", samples.b64(b"data"))
    (attachment,) = parse_message(raw).attachments

    assert attachment.filename == expected
    assert attachment.data == b"data"


def test_raw_utf8_filename_is_decoded():
    raw = samples.with_attachment('Content-Disposition: attachment; filename="Übersicht.txt"\n'.encode(), b"x")
    message = parse_message(raw)

    assert message.attachments[0].filename == "\u00dcbersicht.txt"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 57, 1000, 200_000])
def test_base64_attachment_round_trip(size):
    data = bytes((i * 37 + size) % 256 for i in range(size))
    raw = samples.with_attachment(
        b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
        b'Content-Disposition: attachment; filename="blob.bin"\n',
        samples.b64(data),
    )
    message = parse_message(samples.crlf(raw))
    (attachment,) = message.attachments

    assert message.parse_errors == []
    assert attachment.data == data
    assert attachment.size == size
    assert attachment.sha256 == samples.sha256(data)


def test_quoted_printable_attachment_keeps_encoded_line_feeds():
    # =0A is a real LF byte in the data; the literal line break is CRLF.
    raw = samples.with_attachment(
        b'Content-Type: text/csv\nContent-Transfer-Encoding: quoted-printable\nContent-Disposition: attachment; filename="a.csv"\n',
        b"a,b=0Ac,d\nd=3De,f=\n,g",
    )
    for variant in (raw, samples.crlf(raw)):
        (attachment,) = parse_message(variant).attachments
        assert attachment.data == b"a,b\nc,d\r\nd=e,f,g"


def test_attachment_content_type_and_content_id():
    raw = samples.with_attachment(
        b"Content-Type: IMAGE/JPEG; name=x.jpg\nContent-ID:  <part1.abc@example.com> \n"
        b"Content-Disposition: attachment\nContent-Transfer-Encoding: base64\n",
        samples.b64(b"\xff\xd8\xff"),
    )
    (attachment,) = parse_message(raw).attachments

    assert attachment.content_type == "image/jpeg"
    assert attachment.content_id == "part1.abc@example.com"
    assert attachment.inline is False  # explicit attachment, not referenced


def test_part_without_content_type_but_with_filename_is_octet_stream():
    raw = samples.with_attachment(b'Content-Disposition: attachment; filename="data.bin"\n', b"xyz")
    (attachment,) = parse_message(raw).attachments

    assert attachment.content_type == "application/octet-stream"


def test_inline_flags():
    raw = b"""Content-Type: multipart/related; boundary=r

--r
Content-Type: text/html

<img src="cid:referenced%40here"><img src='CID:other@x'>
--r
Content-Type: application/pdf
Content-ID: <referenced@here>

pdf-ish
--r
Content-Type: image/gif
Content-ID: <unreferenced-image@x>

gif
--r
Content-Type: application/zip
Content-ID: <unreferenced-zip@x>

zip
--r
Content-Type: text/calendar
Content-Disposition: inline

BEGIN:VCALENDAR
--r--
"""
    message = parse_message(raw)

    assert [(a.content_type, a.inline) for a in message.attachments] == [
        ("application/pdf", True),  # referenced from the HTML
        ("image/gif", True),  # an image with a Content-ID in multipart/related
        ("application/zip", False),
        ("text/calendar", True),  # Content-Disposition: inline
    ]


def test_extra_text_parts_outside_alternatives_become_attachments():
    raw = b"""Content-Type: multipart/mixed; boundary=m

--m
Content-Type: text/plain

main body
--m
Content-Type: text/plain

-- mailing list footer
--m--
"""
    message = parse_message(raw)

    assert message.text == "main body"
    assert [(a.index, a.content_type, a.data) for a in message.attachments] == [
        (0, "text/plain", b"-- mailing list footer")
    ]


def test_uuencoded_part():
    raw = samples.with_attachment(
        b'Content-Type: application/octet-stream; name="hi.txt"\nContent-Transfer-Encoding: x-uuencode\n',
        b"begin 644 hi.txt\n%:&5L;&\\`\n`\nend",
    )
    (attachment,) = parse_message(raw).attachments

    assert attachment.data == b"hello"


# --- line endings and snippets ---------------------------------------------


@pytest.mark.parametrize("sample", samples.CORPUS)
def test_crlf_and_lf_parse_identically(sample):
    lf = parse_message(sample)
    crlf = parse_message(samples.crlf(sample))

    assert dataclasses.asdict(lf) == dataclasses.asdict(crlf)
    assert lf.subject  # the samples really were parsed


def test_snippet_collapses_white_space_and_is_limited():
    body = b"  First   line\n\n\tsecond line " + b"word " * 100
    message = parse_message(samples.simple(body=body))

    assert message.snippet.startswith("First line second line word word")
    assert len(message.snippet) == 200
    assert "  " not in message.snippet


def test_make_snippet():
    assert make_snippet("a\n\n b\tc", None) == "a b c"
    assert make_snippet("   ", "<p>from <b>html</b></p><p>x&amp;y</p>") == "from html x&y"
    assert make_snippet(None, "<style>p{}</style><p>A&nbsp;&lt;b&gt;</p>") == "A <b>"
    assert make_snippet(None, None) == ""
    assert make_snippet("x" * 500, None, limit=10) == "x" * 10
    # Invisible preview padding used by newsletters is dropped.
    assert make_snippet("Hi\u200c \u200c \u00ad there", None) == "Hi there"
    # A long document's visible text beyond the first window is still found.
    assert make_snippet(None, "<p></p>" * 5000 + "<p>late text</p>") == "late text"
    # Only the first characters are needed, even from a huge body.
    assert make_snippet("word " * 2_000_000, None) == ("word " * 40).strip()
