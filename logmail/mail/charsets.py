"""Turning bytes of uncertain provenance into text.

Mail in the wild carries every legacy charset, mislabelled charsets and
undeclared 8-bit bytes.  Everything here is best effort and never raises:
the caller gets text plus an optional description of what had to be
guessed, so the guess can be recorded in ``parse_errors``.
"""

from __future__ import annotations

import codecs
import functools
import re

# Labels that Python does not know, or knows as a narrower charset than
# mail clients actually send under that name.
_ALIASES = {
    # GB2312 mail is routinely GBK or GB18030 in practice; GB18030 is a
    # strict superset, so decoding with it loses nothing.
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "x-gbk": "gb18030",
    "gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "chinese": "gb18030",
    # Likewise EUC-KR is in practice Microsoft's superset.
    "euc-kr": "cp949",
    "x-euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "korean": "cp949",
    "x-sjis": "shift_jis",
    "sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "x-ms-cp932": "cp932",
    "x-euc-jp": "euc_jp",
    "x-mac-roman": "mac_roman",
    "iso-8859-8-i": "iso8859_8",
    "iso-8859-6-i": "iso8859_6",
    "tis-620": "cp874",
    "x-unicode-2-0-utf-7": "utf_7",
}

# Supersets worth trying when the declared charset rejects the bytes:
# senders often use vendor extensions (NEC/IBM kanji, HKSCS, ...) while
# still declaring the base charset.
_SUPERSETS = {
    "shift_jis": ("cp932", "shift_jis_2004"),
    "euc_jp": ("euc_jis_2004", "cp932"),
    "iso2022_jp": ("iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3"),
    "big5": ("cp950", "big5hkscs"),
    "cp950": ("big5hkscs",),
    "euc_kr": ("cp949",),
    "koi8-r": ("koi8-u",),
}

# Python "text encodings" that are not charsets at all; a hostile label
# naming one of them must not turn "\ud800" into a lone surrogate.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"})

# Labels for which an 8-bit payload that happens to be valid UTF-8 is
# almost certainly mislabelled UTF-8 (the most common mojibake in mail).
_WESTERN = frozenset({"ascii", "iso8859-1", "cp1252", "iso8859-15"})

# Codecs that cannot produce surrogates, so their output needs no scrub.
_SURROGATE_FREE = frozenset({"utf-8", "ascii", "iso8859-1", "cp1252", "iso8859-15", "koi8-r"})

_SURROGATES = re.compile("[\ud800-\udfff]")

# WHATWG's windows-1252: like Python's cp1252, but the five undefined
# bytes map to the C1 controls instead of failing, so decoding can never
# raise.  A charmap table keeps the whole decode in C.
_WINDOWS_1252_TABLE = "".join(
    bytes([byte]).decode("cp1252", errors="ignore") or chr(byte) for byte in range(256)
)


def decode_windows_1252(data: bytes) -> str:
    """Decode as windows-1252; every byte maps to some character."""
    return codecs.charmap_decode(data, "strict", _WINDOWS_1252_TABLE)[0]


def decode_undeclared(data: bytes) -> tuple[str, str]:
    """Decode 8-bit bytes with no charset: strict UTF-8, else windows-1252.

    Returns the text and the name of the charset that was used.
    """
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return decode_windows_1252(data), "windows-1252"


def clean_label(label: str | None) -> str | None:
    """Normalise a charset label as written in a header; None if blank."""
    if label is None:
        return None
    label = label.strip().strip("\"'").strip().lower()
    return label or None


@functools.lru_cache(maxsize=512)
def codec_for(label: str) -> str | None:
    """Python codec name for a cleaned charset label, None if unusable."""
    if len(label) > 64:
        return None
    name = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def _scrub(text: str) -> str:
    # Storage needs valid UTF-8; a few codecs can emit lone surrogates.
    if _SURROGATES.search(text):
        return _SURROGATES.sub("\ufffd", text)
    return text


def _repair_utf8(data: bytes, label: str) -> tuple[str, str]:
    replaced = data.decode("utf-8", "replace")
    if not replaced.replace("\ufffd", "").isascii():
        # Real multi-byte sequences exist: it is UTF-8 with some damage.
        return replaced, f"invalid {label} byte sequences replaced"
    return decode_windows_1252(data), f"text declared as {label} is not {label}; decoded as windows-1252"


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def decode_text(data: bytes, declared_charset: str | None) -> tuple[str, str | None]:
    """Decode ``data`` using the declared charset, repairing what it can.

    Returns ``(text, problem)`` where ``problem`` is None when the bytes
    decoded cleanly as declared, or a short description of the guess made.
    Never raises, and the text never contains lone surrogates.
    """
    if not data:
        return "", None
    if not isinstance(data, bytes):
        data = bytes(data)
    label = clean_label(declared_charset)
    if label is None:
        if data.isascii():
            return data.decode("ascii"), None
        text, used = decode_undeclared(data)
        return _strip_bom(text), f"undeclared 8-bit text decoded as {used}"
    codec = codec_for(label)
    if codec is None:
        text, used = decode_undeclared(data) if not data.isascii() else (data.decode("ascii"), "us-ascii")
        return _strip_bom(text), f"unknown charset {label!r} decoded as {used}"
    if codec in _WESTERN and not data.isascii():
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return _strip_bom(text), f"text declared as {label} is valid utf-8; decoded as utf-8"
        if codec == "ascii":
            return decode_windows_1252(data), f"8-bit text declared as {label} decoded as windows-1252"
        if codec != "iso8859-15":
            # ISO-8859-1 and windows-1252 differ only in C1 controls, which
            # real text never uses, so treat them as one (as browsers do).
            return decode_windows_1252(data), None
    try:
        text = data.decode(codec)
    except (UnicodeError, ValueError, LookupError):
        pass
    else:
        return _strip_bom(text if codec in _SURROGATE_FREE else _scrub(text)), None
    for alternative in _SUPERSETS.get(codec, ()):
        try:
            return _strip_bom(_scrub(data.decode(alternative))), None
        except (UnicodeError, ValueError, LookupError):
            continue
    if codec == "utf-8":
        text, problem = _repair_utf8(data, label)
        return _strip_bom(text), problem
    try:
        text = data.decode(codec, "replace")
    except (UnicodeError, ValueError, LookupError):
        text, used = decode_undeclared(data)
        return _strip_bom(text), f"undecodable {label} text decoded as {used}"
    return _strip_bom(_scrub(text)), f"invalid {label} byte sequences replaced"
