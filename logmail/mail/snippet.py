"""Short one-line previews of message bodies, for message lists."""

from __future__ import annotations

import html as html_entities
import re

# Invisible characters that marketing mail uses to pad the preview text;
# left in, they make snippets look blank.  (ZWJ stays: emoji need it.)
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u034f\u180e\u200b\u200c\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"))

# Every pattern stops at the next "<" so that a document full of stray
# "<" characters costs linear, not quadratic, time.
_HIDDEN_OPEN = re.compile(r"<(script|style|title|noscript|template)\b[^<>]*>", re.IGNORECASE)
_HIDDEN_CLOSE = {
    name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style", "title", "noscript", "template")
}
_COMMENTS = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_TAGS = re.compile(r"</?([a-zA-Z][a-zA-Z0-9]*)?[^<>]*>")
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt footer h1 h2 h3 h4 h5 h6 header hr "
    "li main nav ol p pre section table tbody td tfoot th thead tr ul img".split()
)


def _tag_replacement(match: re.Match[str]) -> str:
    name = match.group(1)
    return " " if name is None or name.lower() in _BLOCK_TAGS else ""


def _strip_hidden(html: str) -> str:
    """Remove script/style/... elements with their content; an unclosed one hides the rest."""
    pieces = []
    position = 0
    while True:
        opening = _HIDDEN_OPEN.search(html, position)
        if opening is None:
            pieces.append(html[position:])
            break
        pieces.append(html[position : opening.start()])
        closing = _HIDDEN_CLOSE[opening.group(1).lower()].search(html, opening.end())
        if closing is None:
            break
        pieces.append(" ")
        position = closing.end()
    return "".join(pieces)


def _collapsed_prefix(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text`` with white space collapsed.

    Works on a growing window so a megabyte body costs no more than a
    short one, unless it opens with a megabyte of white space.
    """
    window = limit * 8
    while True:
        collapsed = " ".join(text[:window].split())
        if not collapsed.isascii():
            collapsed = " ".join(collapsed.translate(_INVISIBLE).split())
        # The window may end mid-word, so only trust it up to the limit.
        if len(collapsed) > limit or window >= len(text):
            return collapsed[:limit].rstrip()
        window *= 4


def html_to_text(html: str, limit: int | None = None) -> str:
    """Visible text of an HTML document, tags stripped and entities decoded.

    With ``limit``, only as much of the document as needed for that many
    characters of text is processed.
    """
    if limit is None:
        window = len(html)
    else:
        window = max(4096, limit * 20)
    while True:
        chunk = html[:window]
        if window < len(html):
            # Do not let a tag or hidden element cut by the window leak.
            last_open = chunk.rfind("<")
            if last_open > chunk.rfind(">"):
                chunk = chunk[:last_open]
        chunk = _strip_hidden(_COMMENTS.sub(" ", chunk))
        text = html_entities.unescape(_TAGS.sub(_tag_replacement, chunk))
        if limit is None or window >= len(html) or len(_collapsed_prefix(text, limit)) >= limit:
            return text
        window *= 4


def make_snippet(text: str | None, html: str | None, limit: int = 200) -> str:
    """Up to ``limit`` characters of body text, white space collapsed.

    Uses the plain-text body, or the HTML body's visible text when there
    is no usable plain text.
    """
    if limit <= 0:
        return ""
    if text:
        snippet = _collapsed_prefix(text, limit)
        if snippet:
            return snippet
    if html:
        return _collapsed_prefix(html_to_text(html, limit), limit)
    return ""
