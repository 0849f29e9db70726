"""Decoding header values into display text.

Header values arrive from the stdlib parser as ``str`` in which any raw
8-bit byte is a surrogate escape.  Decoding happens in two stages so that
address parsing can run between them: first unfolding and 8-bit repair
(the "structured" form, still holding RFC 2047 encoded words), then
encoded-word decoding (the display form).
"""

from __future__ import annotations

import binascii
import re

from .charsets import decode_text, decode_undeclared
from .transfer_encoding import decode_base64

# RFC 5322 unfolding removes just the line break; the folding white space
# is collapsed to one space as well, since a tab mid-value reads badly.
_FOLD = re.compile(r"\r?\n[ \t]+")
_STRAY_BREAKS = re.compile(r"[\r\n]+")

# Deliberately looser than RFC 2047: broken mailers put spaces inside
# encoded words and glue them to surrounding text, and readers still
# expect those to be decoded.  "?" cannot occur in the encoded text.
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")


def unfold(value: str) -> str:
    """Undo header folding and drop any stray line-break characters."""
    if "\n" not in value and "\r" not in value:
        return value
    return _STRAY_BREAKS.sub(" ", _FOLD.sub(" ", value))


def repair_8bit(value: str) -> tuple[str, str | None]:
    """Decode raw 8-bit bytes (surrogate escapes) in a header value.

    Returns the repaired text and the charset guessed, or None when the
    value was plain ASCII or already proper Unicode.  UTF-8 is legal in
    headers (RFC 6532), so callers only need to report other guesses.
    """
    if value.isascii():
        return value, None
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        # Genuine non-ASCII characters (e.g. from RFC 2231 decoding);
        # only a stray surrogate could make this fail, so replace those.
        return value.encode("utf-8", "replace").decode("utf-8"), None
    text, used = decode_undeclared(data)
    return text, None if used == "utf-8" else used


def _word_bytes(encoding: str, payload: str) -> tuple[bytes, bool]:
    raw = payload.encode("utf-8", "replace")
    if encoding in "bB":
        return decode_base64(raw)
    return binascii.a2b_qp(raw, header=True), True


def decode_encoded_words(text: str) -> tuple[str, list[str]]:
    """Decode RFC 2047 encoded words; returns ``(text, problems)``.

    White space between adjacent encoded words is dropped, and adjacent
    words in the same charset are joined before decoding, because many
    encoders split a multi-byte character across two words.
    """
    if "=?" not in text:
        return text, []
    pieces: list[str] = []
    problems: list[str] = []
    run: list[tuple[str, bytes]] = []  # adjacent words awaiting decoding

    def flush() -> None:
        for label, data in run:
            decoded, problem = decode_text(data, label or None)
            pieces.append(decoded)
            if problem:
                problems.append(problem)
        run.clear()

    position = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[position : match.start()]
        if not (run and (not gap or gap.isspace())):
            flush()
            pieces.append(gap)
        label, encoding, payload = match.groups()
        # RFC 2231 allows a language suffix: "utf-8*en".
        label = label.split("*", 1)[0]
        data, clean = _word_bytes(encoding, payload)
        if not clean:
            problems.append("bad base64 in encoded word")
        if run and run[-1][0].lower() == label.lower():
            run[-1] = (run[-1][0], run[-1][1] + data)
        else:
            run.append((label, data))
        position = match.end()
    flush()
    pieces.append(text[position:])
    return "".join(pieces), problems


def decode_header_value(name: str, raw: str) -> tuple[str, str, list[str]]:
    """Decode one raw header value.

    Returns ``(display, structured, problems)``: ``display`` is fully
    decoded text for people; ``structured`` is unfolded and 8-bit repaired
    but keeps encoded words, for address parsing.
    """
    problems: list[str] = []
    structured, guessed = repair_8bit(unfold(raw))
    if guessed:
        problems.append(f"undeclared 8-bit header {name} decoded as {guessed}")
    if "\x00" in structured:
        structured = structured.replace("\x00", "")
        problems.append(f"NUL character removed from header {name}")
    display, word_problems = decode_encoded_words(structured)
    problems.extend(f"{problem} in header {name}" for problem in word_problems)
    if "\x00" in display:
        display = display.replace("\x00", "")
        problems.append(f"NUL character removed from header {name}")
    return display.strip(), structured.strip(), problems
