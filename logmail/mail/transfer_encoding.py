"""Content-Transfer-Encoding decoding that tolerates damaged input.

The stdlib helpers either raise on bad input or silently drop data (the
lenient base64 decoder stops at the first padding character), so these
wrappers decode as much as possible and report what was wrong.
"""

from __future__ import annotations

import binascii
import re

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Everything that is neither alphabet nor padding, for bytes.translate().
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(_B64_ALPHABET + b"=")))
_PADDING_RUNS = re.compile(rb"=+")

# Encodings whose line breaks are meaningful text line breaks (RFC 2045),
# so their canonical form uses CRLF.
_LINE_ORIENTED = frozenset({"", "7bit", "8bit", "quoted-printable"})
_IDENTITY = frozenset({"", "7bit", "8bit", "binary"})
_UUENCODE = frozenset({"x-uuencode", "uuencode", "x-uue", "uue"})


def _decoded_length_matches(data: bytes, decoded: bytes) -> bool:
    """Whether a lenient decode consumed every character of ``data``.

    The lenient decoder silently skips junk and stops at the first
    padding; either way the output is shorter than the input implies.
    Counting is much cheaper than stripping white space for a strict pass.
    """
    significant = len(data) - sum(data.count(space) for space in (b"\n", b"\r", b" ", b"\t"))
    if significant % 4:
        return False
    tail = data[-80:].rstrip()
    padding = len(tail) - len(tail.rstrip(b"="))
    return padding <= 2 and len(decoded) == significant // 4 * 3 - padding


def decode_base64(data: bytes) -> tuple[bytes, bool]:
    """Decode base64, returning ``(payload, was_clean)``.

    Damaged input (stray characters, missing or misplaced padding,
    truncation, several concatenated encodings) is decoded chunk by chunk
    so as little data as possible is lost.
    """
    try:
        decoded = binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        pass
    else:
        if _decoded_length_matches(data, decoded):
            return decoded, True
    decoded_chunks = []
    for chunk in _PADDING_RUNS.split(data.translate(None, _NOT_BASE64)):
        if len(chunk) % 4 == 1:
            # A single leftover character carries fewer than 8 bits.
            chunk = chunk[:-1]
        if chunk:
            try:
                decoded_chunks.append(binascii.a2b_base64(chunk + b"=" * (-len(chunk) % 4)))
            except (binascii.Error, ValueError):
                continue
    return b"".join(decoded_chunks), False


def _decode_uuencode(data: bytes) -> tuple[bytes, str | None]:
    lines = data.splitlines()
    out = []
    started = False
    problem = None
    for line in lines:
        if not started:
            started = line.startswith(b"begin ")
            continue
        stripped = line.strip()
        if stripped == b"end":
            break
        if not stripped:
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            # Some encoders pad lines wrongly; trimming to the declared
            # length is the same workaround the old stdlib uu module used.
            length = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out.append(binascii.a2b_uu(line[:length]))
            except binascii.Error:
                problem = "bad uuencoded data"
    if not started:
        return data, "uuencoded content without a begin line"
    return b"".join(out), problem


def canonical_line_endings(data: bytes) -> bytes:
    """Turn bare LF and bare CR into CRLF, so LF-stored mail matches CRLF."""
    if b"\n" not in data and b"\r" not in data:
        return data
    lf = data.count(b"\n")
    if lf == data.count(b"\r\n") and data.count(b"\r") == lf:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def normalise_cte(value: str | None) -> str:
    """Content-Transfer-Encoding token, lower-case, without comments/quotes."""
    if not value:
        return ""
    token = value.split("(", 1)[0].split(";", 1)[0]
    return token.strip().strip("\"'").strip().lower()


def decode_transfer(data: bytes, cte: str, canonical: bool = True) -> tuple[bytes, str | None]:
    """Undo a normalised transfer encoding; returns ``(payload, problem)``.

    ``canonical=False`` skips line-ending normalisation, for callers that
    normalise the decoded text themselves.
    """
    if canonical and cte in _LINE_ORIENTED:
        # Line breaks in these encodings stand for CRLF; normalising before
        # QP decoding keeps encoded =0A bytes distinct from line breaks.
        data = canonical_line_endings(data)
    if cte in _IDENTITY:
        return data, None
    if cte == "base64":
        payload, clean = decode_base64(data)
        return payload, None if clean else "bad base64"
    if cte == "quoted-printable":
        return binascii.a2b_qp(data), None
    if cte in _UUENCODE:
        return _decode_uuencode(data)
    # Unknown encodings are kept as they are, but in canonical form like
    # 8bit, so the same message stored with LF or CRLF still gives equal data.
    return canonical_line_endings(data) if canonical else data, f"unknown Content-Transfer-Encoding {cte[:40]!r} left undecoded"
