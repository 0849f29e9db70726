"""Charset handling: legacy charsets, RFC 2047, mislabelled and undeclared text."""

from __future__ import annotations

import base64
import binascii

import pytest

from logmail.mail import decode_text, parse_message

# (charset label as sent, Python codec to build the sample, sample text)
CORPUS = [
    ("utf-8", "utf-8", "Gr\u00fc\u00dfe \u2013 \u65e5\u672c\u8a9e \U0001f600 \u0645\u0631\u062d\u0628\u0627"),
    ("iso-8859-1", "latin-1", "Gr\u00fc\u00dfe aus K\u00f6ln, \u00bfqu\u00e9 tal? \u00a9 \u00e6\u00f8\u00e5"),
    ("ISO-8859-1", "latin-1", "Fran\u00e7ais \u00e0 l'\u00e9cole"),
    ("latin1", "latin-1", "na\u00efve caf\u00e9"),
    ("windows-1252", "cp1252", "\u201csmart quotes\u201d \u2013 \u20ac5 \u2026 \u0160koda"),
    ("iso-8859-15", "iso8859-15", "Prix: 10 \u20ac, \u0153uvre"),
    ("iso-8859-2", "iso8859-2", "Za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144"),
    ("shift_jis", "shift_jis", "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\uff01\u30c6\u30b9\u30c8"),
    ("Shift_JIS", "shift_jis", "\u65e5\u672c\u8a9e\u306e\u30e1\u30fc\u30eb"),
    ("euc-jp", "euc_jp", "\u304a\u5143\u6c17\u3067\u3059\u304b\u3002\u6771\u4eac"),
    ("iso-2022-jp", "iso2022_jp", "\u4f1a\u8b70\u306e\u304a\u77e5\u3089\u305b ABC"),
    ("gb2312", "gb2312", "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u4e2d\u6587\u6d4b\u8bd5"),
    ("GBK", "gbk", "\u7e41\u9ad4\u5b57\u4e5f\u53ef\u4ee5 \u9f98"),
    ("big5", "big5", "\u4e2d\u6587\u6e2c\u8a66\uff0c\u81fa\u7063"),
    ("koi8-r", "koi8-r", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0401\u043b\u043a\u0430"),
    ("windows-1251", "cp1251", "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435"),
    ("euc-kr", "euc_kr", "\uc548\ub155\ud558\uc138\uc694 \ud55c\uad6d\uc5b4"),
    ("windows-1256", "cp1256", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0643"),
    ("iso-8859-7", "iso8859-7", "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1"),
    ("us-ascii", "ascii", "Plain old ASCII text."),
]


def _qp(data: bytes) -> bytes:
    return binascii.b2a_qp(data)


def _q_word(data: bytes) -> bytes:
    """RFC 2047 "Q" encoding, on one line (b2a_qp would add soft breaks)."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/"
    return b"".join(
        b"_" if byte == 32 else bytes([byte]) if byte in safe else b"=%02X" % byte for byte in data
    )


def _message(label: str, codec: str, text: str, body_encoding: str, word_encoding: str) -> bytes:
    encoded = text.encode(codec)
    if word_encoding == "B":
        word = base64.b64encode(encoded)
    else:
        word = _q_word(encoded)
    body = {"8bit": encoded, "base64": base64.encodebytes(encoded), "quoted-printable": _qp(encoded)}[body_encoding]
    if codec == "iso2022_jp":
        body = encoded if body_encoding == "8bit" else body
    return (
        b"From: a@example.com\nSubject: =?" + label.encode() + b"?" + word_encoding.encode() + b"?" + word + b"?=\n"
        b"MIME-Version: 1.0\nContent-Type: text/plain; charset=\"" + label.encode() + b"\"\n"
        b"Content-Transfer-Encoding: " + body_encoding.encode() + b"\n\n" + body
    )


@pytest.mark.parametrize(("label", "codec", "text"), CORPUS, ids=[entry[0] + "-" + entry[1] for entry in CORPUS])
@pytest.mark.parametrize("body_encoding", ["8bit", "base64", "quoted-printable"])
@pytest.mark.parametrize("word_encoding", ["B", "Q"])
def test_charset_corpus_subject_and_body(label, codec, text, body_encoding, word_encoding):
    message = parse_message(_message(label, codec, text, body_encoding, word_encoding))

    assert message.subject == text
    assert message.text == text
    assert message.parse_errors == []
    message.text.encode("utf-8")  # storable


@pytest.mark.parametrize(("label", "codec", "text"), CORPUS, ids=[entry[0] + "-" + entry[1] for entry in CORPUS])
def test_decode_text_corpus(label, codec, text):
    assert decode_text(text.encode(codec), label) == (text, None)


@pytest.mark.parametrize(("label", "codec", "text"), CORPUS, ids=[entry[0] + "-" + entry[1] for entry in CORPUS])
def test_html_body_corpus(label, codec, text):
    raw = (
        b"Content-Type: text/html; charset=" + label.encode() + b"\n\n<p>" + text.encode(codec) + b"</p>"
    )
    message = parse_message(raw)

    assert message.html == f"<p>{text}</p>"
    assert message.snippet == text


# --- aliases and supersets --------------------------------------------------


@pytest.mark.parametrize(
    ("label", "data", "expected"),
    [
        # GB2312 labels decode as GB18030, which covers characters GB2312 lacks.
        ("gb2312", "\u9f98\u4e2d\U00020000".encode("gb18030"), "\u9f98\u4e2d\U00020000"),
        ("x-gbk", "\u4e2d\u6587".encode("gbk"), "\u4e2d\u6587"),
        # Vendor extensions sent under the base label (NEC circled digits).
        ("shift_jis", "\u2460\u2461 \u6771\u4eac".encode("cp932"), "\u2460\u2461 \u6771\u4eac"),
        ("x-sjis", "\u3042".encode("shift_jis"), "\u3042"),
        ("iso-2022-jp", "\uff76\uff85 \u6f22\u5b57".encode("iso2022_jp_ext"), "\uff76\uff85 \u6f22\u5b57"),
        ("big5", "\u20ac\u4e2d".encode("cp950"), "\u20ac\u4e2d"),
        ("ks_c_5601-1987", "\ud55c\uad6d".encode("cp949"), "\ud55c\uad6d"),
        # ISO-8859-1 is read as windows-1252, as every mail client does.
        ("iso-8859-1", b"\x93quoted\x94 \x80", "\u201cquoted\u201d \u20ac"),
        ('"UTF-8"', "\u00e9".encode(), "\u00e9"),
        (" utf8 ", "\u00e9".encode(), "\u00e9"),
        ("utf-8", b"\xef\xbb\xbfBOM stripped", "BOM stripped"),
        ("utf-16", "\u00e9t\u00e9".encode("utf-16"), "\u00e9t\u00e9"),
    ],
)
def test_aliases_and_supersets(label, data, expected):
    assert decode_text(data, label) == (expected, None)


# --- repairs ----------------------------------------------------------------


def test_undeclared_utf8_and_windows_1252():
    assert decode_text(b"plain", None) == ("plain", None)
    assert decode_text("\u00e9t\u00e9".encode(), None) == ("\u00e9t\u00e9", "undeclared 8-bit text decoded as utf-8")
    assert decode_text(b"caf\xe9 \x80", None) == ("caf\u00e9 \u20ac", "undeclared 8-bit text decoded as windows-1252")
    # Bytes windows-1252 leaves undefined still decode (to C1 controls).
    assert decode_text(b"\x81\x8d\x8f\x90\x9d", None)[0] == "\x81\x8d\x8f\x90\x9d"


def test_unknown_charset_falls_back_and_is_noted():
    text, problem = decode_text("\u00fcber".encode(), "x-klingon")
    assert text == "\u00fcber"
    assert problem == "unknown charset 'x-klingon' decoded as utf-8"
    text, problem = decode_text(b"\xfcber", "x-klingon")
    assert text == "\u00fcber"
    assert problem == "unknown charset 'x-klingon' decoded as windows-1252"


@pytest.mark.parametrize("label", ["unicode_escape", "raw-unicode-escape", "punycode", "rot13", "hex", "base64", "a" * 200])
def test_non_charset_codecs_are_refused(label):
    text, problem = decode_text(b"\\ud800 \\x41 plain", label)

    assert text == "\\ud800 \\x41 plain"
    assert problem is not None and "unknown charset" in problem


def test_mislabelled_utf8_declared_as_latin1():
    text, problem = decode_text("Gr\u00fc\u00dfe".encode(), "iso-8859-1")
    assert text == "Gr\u00fc\u00dfe"
    assert problem == "text declared as iso-8859-1 is valid utf-8; decoded as utf-8"


def test_latin1_declared_as_utf8():
    text, problem = decode_text("Gr\u00fc\u00dfe".encode("latin-1"), "utf-8")
    assert text == "Gr\u00fc\u00dfe"
    assert problem == "text declared as utf-8 is not utf-8; decoded as windows-1252"


def test_damaged_utf8_keeps_good_characters():
    text, problem = decode_text("\u65e5\u672c".encode() + b"\xff" + "\u8a9e".encode()[:2], "utf-8")
    assert text == "\u65e5\u672c\ufffd\ufffd"
    assert problem == "invalid utf-8 byte sequences replaced"


def test_ascii_label_with_8bit_bytes():
    assert decode_text(b"na\xefve", "us-ascii") == ("na\u00efve", "8-bit text declared as us-ascii decoded as windows-1252")


def test_damaged_legacy_text_is_replaced_not_raised():
    text, problem = decode_text(b"\x82\xa0\x81\x20\x82\xa2", "shift_jis")
    assert text == "\u3042\ufffd \u3044"
    assert problem == "invalid shift_jis byte sequences replaced"


def test_never_lone_surrogates():
    # UTF-7 can spell a lone surrogate; storage needs valid UTF-8.
    text, _ = decode_text(b"+2AA-x", "utf-7")
    text.encode("utf-8")
    assert text.endswith("x")


# --- headers ----------------------------------------------------------------


def subject_of(raw_subject: bytes) -> tuple[str, list[str]]:
    message = parse_message(b"From: a@example.com\nSubject: " + raw_subject + b"\n\nbody\n")
    return message.subject, message.parse_errors


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"=?utf-8?q?hello_world?=", "hello world"),
        (b"=?UTF-8?Q?caf=C3=A9?= =?UTF-8?Q?_cr=C3=A8me?=", "caf\u00e9 cr\u00e8me"),
        # A multi-byte character split across two encoded words.
        (b"=?utf-8?b?5pel?= =?utf-8?b?5pys?=\n =?utf-8?b?6Kqe?=", "\u65e5\u672c\u8a9e"),
        (b"=?utf-8?B?4oKs?==?utf-8?B?NQ==?=", "\u20ac5"),
        (b"=?utf-8?q?5=E2=82?= =?utf-8?q?=AC?=", "5\u20ac"),
        (b"Re: =?iso-8859-1?q?Gr=FC=DFe?= and more", "Re: Gr\u00fc\u00dfe and more"),
        (b"prefix=?utf-8?q?glued?=suffix", "prefixgluedsuffix"),
        (b"=?utf-8*en?q?language_tag?=", "language tag"),
        (b"=?utf-8?q?spaces inside?=", "spaces inside"),
        (b"=?utf-8?b?bWlzc2luZyBwYWRkaW5n?=", "missing padding"),
        (b"=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=", "\u30c6\u30b9\u30c8"),
        (b"=?koi8-r?b?8NLJ18XU?=", "\u041f\u0440\u0438\u0432\u0435\u0442"),
        (b"=?gb2312?b?xOO6ww==?=", "\u4f60\u597d"),
        (b"=?big5?b?pKSk5Q==?=", "\u4e2d\u6587"),
        (b"=?euc-jp?b?xvzL3A==?=", "\u65e5\u672c"),
        (b"=?shift_jis?b?k/qWew==?=", "\u65e5\u672c"),
        (b"not =? an encoded word ?= at all", "not =? an encoded word ?= at all"),
        (b"=?utf-8?x?unknown encoding?=", "=?utf-8?x?unknown encoding?="),
    ],
)
def test_encoded_word_subjects(raw, expected):
    subject, problems = subject_of(raw)
    assert subject == expected
    if raw != b"=?utf-8?b?bWlzc2luZyBwYWRkaW5n?=":
        assert problems == []


def test_wrong_encoded_word_labels_are_repaired_and_noted():
    subject, problems = subject_of(b"=?us-ascii?q?caf=C3=A9?=")
    assert subject == "caf\u00e9"
    assert problems == ["text declared as us-ascii is valid utf-8; decoded as utf-8 in header Subject"]

    subject, problems = subject_of(b"=?x-unknown?q?caf=E9?=")
    assert subject == "caf\u00e9"
    assert problems == ["unknown charset 'x-unknown' decoded as windows-1252 in header Subject"]


def test_bad_base64_in_encoded_word_is_noted():
    subject, problems = subject_of(b"=?utf-8?b?aGVsbG8=d29ybGQ?=")
    assert subject == "helloworld"
    assert problems == ["bad base64 in encoded word in header Subject"]


def test_raw_8bit_headers():
    subject, problems = subject_of("Gr\u00fc\u00dfe \u65e5\u672c".encode())
    assert subject == "Gr\u00fc\u00dfe \u65e5\u672c"
    assert problems == []  # raw UTF-8 headers are legal (RFC 6532)

    subject, problems = subject_of(b"caf\xe9 \x96 menu")
    assert subject == "caf\u00e9 \u2013 menu"
    assert problems == ["undeclared 8-bit header Subject decoded as windows-1252"]


def test_raw_8bit_address_header():
    message = parse_message('From: J\u00f6rg <j@example.com>\nTo: "Ren\u00e9e" <r@example.com>\n\nx'.encode("latin-1"))

    assert message.from_.name == "J\u00f6rg"
    assert message.to[0].name == "Ren\u00e9e"
    assert "undeclared 8-bit header From decoded as windows-1252" in message.parse_errors


def test_body_problems_are_recorded_with_the_part():
    raw = b"Content-Type: text/plain\n\ncaf\xe9\n"
    message = parse_message(raw)

    assert message.text == "caf\u00e9\n"
    assert message.parse_errors == ["undeclared 8-bit text decoded as windows-1252 in part 1"]


def test_unknown_body_charset():
    raw = b"Content-Type: text/plain; charset=x-made-up\n\n\xe2\x82\xac 5\n"
    message = parse_message(raw)

    assert message.text == "\u20ac 5\n"
    assert message.parse_errors == ["unknown charset 'x-made-up' decoded as utf-8 in part 1"]


def test_rfc2231_charset_parameter():
    raw = b"Content-Type: text/plain; charset*=''koi8-r\n\n" + "\u0414\u0430".encode("koi8-r")
    assert parse_message(raw).text == "\u0414\u0430"
