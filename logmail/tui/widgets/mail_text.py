"""Untrusted mail text made fit for a terminal: pure functions, no Textual.

Mail is written by strangers. Nothing here executes, fetches or interprets anything: HTML is
reduced to its words with the standard library's tokenizer, control characters become visible
symbols (an escape sequence in a body must never reach the terminal), and attachment names become
plain file names that cannot climb out of the directory they are saved in.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

# C0 controls become their visible "control pictures" (U+2400...), so ESC shows as ␛; tab and
# newline keep their meaning. C1 controls and the bidirectional overrides that can make text read
# differently from what it says become the replacement character.
_VISIBLE = {code: 0x2400 + code for code in range(0x20) if code not in (0x09, 0x0A)}
_VISIBLE[0x7F] = 0x2421
_VISIBLE.update({code: 0xFFFD for code in range(0x80, 0xA0)})
_VISIBLE.update({code: 0xFFFD for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def readable(text: str | None) -> str:
    """Multi-line untrusted text with line breaks normalised and every control character visible."""
    if not text:
        return ""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_VISIBLE)


# A line longer than this is folded for display: wrapping one enormous line makes TextArea crawl.
FOLD_AT = 1000
_LONG_LINE = re.compile(r"[^\n]{%d}(?=[^\n])" % FOLD_AT)


def fold_long_lines(text: str) -> tuple[str, bool]:
    """``text`` with lines over :data:`FOLD_AT` characters broken up, and whether any were."""
    folded, count = _LONG_LINE.subn(lambda m: m.group(0) + "\n", text)
    return folded, count > 0


# -- HTML as readable text ---------------------------------------------------------------------------

_SKIP = {"script", "style", "head", "title", "template", "noscript", "svg", "object", "iframe"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl",
              "address", "figure", "fieldset", "form", "section", "article", "header", "footer", "main",
              "nav", "aside"}
_LINE = {"div", "tr", "dt", "dd", "caption", "center", "details", "summary", "figcaption"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
_SPACES = re.compile(r"[ \t\n\r\f\v]+")


class _TextOfHtml(HTMLParser):
    """Collects the words of an HTML document, keeping its paragraphs, line breaks, list items and
    the targets of links. Broken HTML is fine: the tokenizer never raises on it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.pre = 0
        self.lists: list[list[int]] = []   # one entry per open list: [counter] (ol) or [] (ul)
        self.links: list[str | None] = []  # the href of each open <a>, to print after its text
        self.link_text: list[int] = []     # where each open link's text began in ``out``

    # -- output ----------------------------------------------------------------------------------

    def _tail(self) -> str:
        for piece in reversed(self.out):
            if piece:
                return piece
        return ""

    def _break(self, lines: int) -> None:
        """End the current line and leave ``lines - 1`` blank lines (never at the very start)."""
        if not self.out:
            return
        joined_tail = "".join(self.out[-4:])
        have = len(joined_tail) - len(joined_tail.rstrip("\n"))
        if have < lines:
            self.out.append("\n" * (lines - have))

    def _write(self, text: str) -> None:
        if not text:
            return
        if self.pre:
            self.out.append(text)
            return
        text = _SPACES.sub(" ", text)
        tail = self._tail()
        if not tail or tail.endswith(("\n", " ")):
            text = text.lstrip(" ")
        if text:
            self.out.append(text)

    # -- tokens ----------------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            if tag not in _VOID:
                self.skipping += 1
            return
        if self.skipping:
            return
        values = dict(attrs)
        if tag in ("ul", "ol") and self.lists:
            self._break(1)  # a list inside a list item continues it, without a blank line
        elif tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)
        if tag == "pre":
            self.pre += 1
        elif tag in ("ul", "ol"):
            self.lists.append([0] if tag == "ol" else [])
        elif tag == "li":
            self._break(1)
            indent = "  " * max(0, len(self.lists) - 1)
            current = self.lists[-1] if self.lists else []
            if current:
                current[0] += 1
                self.out.append(f"{indent}{current[0]}. ")
            else:
                self.out.append(f"{indent}• ")
        elif tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self._break(1)
            self.out.append("─" * 20)
            self._break(1)
        elif tag == "img":
            alt = (values.get("alt") or "").strip()
            if alt:
                self._write(f"[image: {alt}]")
        elif tag in ("td", "th"):
            tail = self._tail()
            if tail and not tail.endswith("\n"):
                self.out.append("  ")
        elif tag == "a":
            self.links.append(values.get("href"))
            self.link_text.append(len(self.out))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            if tag not in _VOID and self.skipping:
                self.skipping -= 1
            return
        if self.skipping:
            return
        if tag == "a" and self.links:
            href = (self.links.pop() or "").strip()
            start = self.link_text.pop()
            text = "".join(self.out[start:]).strip()
            if _worth_showing(href, text):
                self._write(f" <{href}>")
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
            if self.lists:
                self._break(1)
                return
        if tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE or tag == "li":
            self._break(1)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self._write(data)

    def text(self) -> str:
        lines = [line.rstrip() for line in "".join(self.out).split("\n")]
        joined = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", joined).strip("\n")


def _worth_showing(href: str, text: str) -> bool:
    """A link's target is printed unless it says nothing new: empty, a fragment, script, or the text."""
    if not href or href.startswith("#") or href.lower().startswith(("javascript:", "data:")):
        return False
    return href != text and href.removeprefix("mailto:") != text


def html_to_text(html: str | None) -> str:
    """An HTML body as readable text: paragraphs, line breaks, list items and link targets kept;
    scripts, styles and everything else dropped. Nothing is loaded or run."""
    if not html:
        return ""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return readable(parser.text())


# -- attachment names ----------------------------------------------------------------------------

_UNSAFE_NAME = re.compile(r"[^\w.\- ()+,@=]+", re.UNICODE)


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """A sender's file name as one harmless path component: no directories, no leading dot."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())
    base = _UNSAFE_NAME.sub("_", base).strip(" .")
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 110] + dot + ext[:9]) if dot and len(ext) < 10 else base[:120]
    return base or fallback


def default_save_path(filename: str | None, home: Path | None = None, cwd: Path | None = None) -> Path:
    """Where a saved attachment goes unless the user says otherwise: ~/Downloads, else the current
    directory."""
    downloads = (home or Path.home()) / "Downloads"
    folder = downloads if downloads.is_dir() else (cwd or Path.cwd())
    return folder / safe_filename(filename)
