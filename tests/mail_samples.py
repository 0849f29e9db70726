"""Sample messages for the logmail.mail tests, built in code.

Samples are written with LF line endings for readability; ``crlf()``
gives the on-the-wire form.
"""

from __future__ import annotations

import base64
import hashlib
import random

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + random.Random(7).randbytes(3000)
PDF_BYTES = b"%PDF-1.4\n" + random.Random(8).randbytes(5000)


def crlf(raw: bytes) -> bytes:
    """LF line endings to CRLF (input must not already contain CR)."""
    return raw.replace(b"\n", b"\r\n")


def b64(data: bytes) -> bytes:
    """MIME-style base64: 76-character lines, LF endings."""
    return base64.encodebytes(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


ALTERNATIVE = b"""Return-Path: <bounce@example.com>
Received: from mx.example.com (mx.example.com [192.0.2.1])
\tby mail.example.org with ESMTPS id 4242
\tfor <bob@example.org>; Tue, 02 Jan 2024 10:00:00 +0100
From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.com>
To: Bob <bob@example.org>, carol@example.org
Cc: "Doe, Jane" <jane@example.net>
Reply-To: replies@example.com
Subject: =?utf-8?b?UXVhcnRlcmx5IHJlcG9ydCDigJMgUTE=?=
Date: Tue, 02 Jan 2024 10:00:00 +0100
Message-ID: <report-1@example.com>
In-Reply-To: <question-7@example.org>
References: <start-1@example.org>
 <question-7@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-boundary-1"

This is a multi-part message in MIME format.
--alt-boundary-1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello Bob,

the report for Q1 is ready =E2=80=93 numbers look good.
See https://example.com/report.

Regards,
J=C3=B6rg
--alt-boundary-1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><head><style>p { color: red }</style><title>Report</title></head>
<body onload=3D"track()"><p>Hello <b>Bob</b>,</p>
<p>the report for Q1 is ready &ndash; numbers look good.
<a href=3D"https://example.com/report" onclick=3D"steal()">See report</a></p>
<script>alert(1)</script></body></html>
--alt-boundary-1--
"""

# multipart/mixed [ alternative [ text, related [ html, image ] ], pdf, rfc822 ]
NESTED = (
    b"""From: sender@example.com
To: rcpt@example.org
Subject: Nested structure
Date: Wed, 03 Jan 2024 08:30:00 -0500
Message-ID: <nested@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed-0"

--mixed-0
Content-Type: multipart/alternative; boundary="alt-1"

--alt-1
Content-Type: text/plain; charset=us-ascii

Plain body with an image.
--alt-1
Content-Type: multipart/related; boundary="rel-2"; type="text/html"

--rel-2
Content-Type: text/html; charset=us-ascii

<p>HTML body <img src="cid:logo@example.com" alt="logo"></p>
--rel-2
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <logo@example.com>

"""
    + b64(PNG_BYTES)
    + b"""--rel-2--
--alt-1--
--mixed-0
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

"""
    + b64(PDF_BYTES)
    + b"""--mixed-0
Content-Type: message/rfc822

From: inner@example.net
Subject: Inner message

Inner body.
--mixed-0--
"""
)

INNER_MESSAGE = b"From: inner@example.net\nSubject: Inner message\n\nInner body."


def simple(subject: bytes = b"Hello", body: bytes = b"Body text.\n", extra_headers: bytes = b"") -> bytes:
    """A single-part text/plain message."""
    return (
        b"From: a@example.com\nTo: b@example.org\nSubject: " + subject + b"\n"
        b"Date: Thu, 04 Jan 2024 12:00:00 +0000\nMessage-ID: <simple@example.com>\n"
        + extra_headers
        + b"\n"
        + body
    )


def with_attachment(part_headers: bytes, payload: bytes, boundary: bytes = b"b-1") -> bytes:
    """multipart/mixed with a short text body and one extra part."""
    return (
        b"From: a@example.com\nTo: b@example.org\nSubject: Attachment\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\n\n'
        b"--" + boundary + b"\nContent-Type: text/plain\n\nSee attachment.\n"
        b"--" + boundary + b"\n" + part_headers + b"\n" + payload + b"\n--" + boundary + b"--\n"
    )


def nested_multipart(levels: int, leaf: bytes = b"Content-Type: text/plain\n\ndeep\n") -> bytes:
    """A multipart/mixed nested ``levels`` deep around one text leaf."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="n%d"\n\n--n%d\n' % (level, level) for level in range(levels)
    )
    closing = b"".join(b"\n--n%d--" % level for level in reversed(range(levels)))
    return b"From: a@example.com\nSubject: deep\n" + opening + leaf + closing + b"\n"


CORPUS = [ALTERNATIVE, NESTED, simple(), with_attachment(b"Content-Type: image/png\nContent-Transfer-Encoding: base64\n", b64(PNG_BYTES))]
