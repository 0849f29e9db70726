"""Result types returned by :func:`logmail.mail.parse_message`.

These are plain data holders with no behaviour, so every other layer can
depend on them without pulling in the parser itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ParsedAddress:
    """One mailbox from an address header."""

    name: str  # decoded display name, "" if none
    address: str  # addr-spec, "" if unparsable


@dataclass(slots=True)
class ParsedAttachment:
    """A non-body MIME part: a real attachment or an inline resource."""

    index: int  # 0-based order among the attachments of this message
    filename: str | None  # decoded, path components stripped
    content_type: str  # lower-case "type/subtype"
    size: int  # len(data)
    content_id: str | None  # without the angle brackets
    inline: bool
    sha256: str  # hex digest of data
    data: bytes  # payload after transfer decoding


@dataclass(slots=True)
class ParsedMessage:
    """Everything the rest of logmail needs to know about one message."""

    message_id: str | None = None
    subject: str = ""
    from_: ParsedAddress | None = None
    to: list[ParsedAddress] = field(default_factory=list)
    cc: list[ParsedAddress] = field(default_factory=list)
    reply_to: list[ParsedAddress] = field(default_factory=list)
    date: int | None = None  # epoch milliseconds, UTC
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None
    html: str | None = None  # already sanitised
    attachments: list[ParsedAttachment] = field(default_factory=list)
    snippet: str = ""
    parse_errors: list[str] = field(default_factory=list)


class ProblemLog:
    """Collects human-readable parse problems, without letting them explode.

    A hostile or badly damaged message can trigger the same complaint
    thousands of times; storing all of them would bloat every row, so
    duplicates are dropped and the list is capped.
    """

    __slots__ = ("items", "_seen", "_limit", "_overflowed")

    def __init__(self, limit: int = 100) -> None:
        self.items: list[str] = []
        self._seen: set[str] = set()
        self._limit = limit
        self._overflowed = False

    def add(self, problem: str) -> None:
        if problem in self._seen:
            return
        if len(self.items) >= self._limit:
            if not self._overflowed:
                self._overflowed = True
                self.items.append("further problems omitted")
            return
        self._seen.add(problem)
        self.items.append(problem)

    def extend(self, problems: list[str], suffix: str = "") -> None:
        for problem in problems:
            self.add(problem + suffix)
