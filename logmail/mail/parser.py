"""``parse_message``: raw RFC 5322 bytes to a :class:`ParsedMessage`.

This runs on the ingest hot path for every captured message, including
hostile and broken ones, so it never raises: every oddity becomes an
entry in ``parse_errors`` and parsing carries on with a best guess.
"""

from __future__ import annotations

import hashlib
import re
from email.message import Message
from urllib.parse import unquote

from .charsets import decode_text
from .header_fields import first_message_id, message_id_list, parse_addresses, parse_date
from .header_text import decode_encoded_words, decode_header_value, repair_8bit, unfold
from .mime_tree import MimeLeaf, split_message
from .model import ParsedAttachment, ParsedMessage, ProblemLog
from .sanitise import sanitise_html
from .snippet import make_snippet
from .transfer_encoding import decode_transfer, normalise_cte

MAX_HEADERS = 10_000  # header fields kept per message

_BODY_TYPES = ("text/plain", "text/html")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_META_CHARSET = re.compile(rb"""<meta\b[^<>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CID_REFERENCE = re.compile(r"""cid:([^"'\s<>()]+)""", re.IGNORECASE)
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a raw message.  Never raises, whatever the input."""
    try:
        return _parse(_as_bytes(raw))
    except Exception as exc:  # last line of defence: ingest must not fail on one message
        return ParsedMessage(parse_errors=[f"internal parser error ({type(exc).__name__}); message not parsed"])


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, (bytearray, memoryview)):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _parse(raw: bytes) -> ParsedMessage:
    if not raw or raw.isspace():
        return ParsedMessage(parse_errors=["empty message"])
    log = ProblemLog()
    if b"\n" not in raw and b"\r" in raw:
        # Classic Mac line endings; the splitter only looks for LF.
        raw = raw.replace(b"\r", b"\n")
        log.add("bare CR line endings treated as line breaks")
    tree = split_message(raw, log)
    message = ParsedMessage()
    _fill_header_fields(message, tree.headers, log)

    details = {id(leaf): _Details(leaf, log) for leaf in tree.leaves}
    text_leaf, html_leaf = _choose_bodies(tree.leaves, details)

    if text_leaf is not None:
        message.text = _body_text(text_leaf, details[id(text_leaf)], log) or None
    html_source = _body_text(html_leaf, details[id(html_leaf)], log) if html_leaf is not None else ""
    if html_source:
        message.html = sanitise_html(html_source)

    referenced = _cid_references(html_source)
    for leaf in tree.leaves:
        if leaf is text_leaf or leaf is html_leaf:
            continue
        detail = details[id(leaf)]
        if detail.body_candidate and leaf.in_alternative:
            continue  # an unchosen rendering of the same content, not an attachment
        message.attachments.append(_attachment(leaf, detail, len(message.attachments), referenced, log))

    message.snippet = make_snippet(message.text, message.html)
    message.parse_errors = log.items
    return message


def _fill_header_fields(message: ParsedMessage, headers: Message, log: ProblemLog) -> None:
    first: dict[str, tuple[str, str]] = {}
    address_values: dict[str, list[str]] = {"to": [], "cc": [], "reply-to": []}
    items = headers.raw_items()
    for count, (name, value) in enumerate(items):
        if count >= MAX_HEADERS:
            log.add(f"more than {MAX_HEADERS} header fields; the rest ignored")
            break
        display, structured, problems = decode_header_value(name, str(value))
        log.extend(problems)
        message.headers.append((name, display))
        key = name.lower()
        first.setdefault(key, (display, structured))
        if key in address_values:
            address_values[key].append(structured)

    def first_display(key: str) -> str | None:
        return first[key][0] if key in first else None

    message.subject = first_display("subject") or ""
    if (value := first_display("message-id")) is not None:
        message.message_id = first_message_id(value)
    if (value := first_display("in-reply-to")) is not None:
        message.in_reply_to = first_message_id(value)
    if (value := first_display("references")) is not None:
        message.references = message_id_list(value)
    if (value := first_display("date")) is not None:
        message.date = parse_date(value)
        if message.date is None:
            log.add(f"unparsable Date header {value[:60]!r}")
    if "from" in first:
        senders = parse_addresses([first["from"][1]])
        message.from_ = senders[0] if senders else None
    message.to = parse_addresses(address_values["to"])
    message.cc = parse_addresses(address_values["cc"])
    message.reply_to = parse_addresses(address_values["reply-to"])


class _Details:
    """Per-part facts needed both for body choice and for attachments."""

    __slots__ = ("disposition", "filename", "charset", "body_candidate")

    def __init__(self, leaf: MimeLeaf, log: ProblemLog) -> None:
        where = f"part {leaf.path}"
        headers = leaf.headers
        type_params = _params(headers, "content-type", where, log)
        disposition_params = _params(headers, "content-disposition", where, log)
        raw_disposition = headers.get("content-disposition")
        self.disposition = (
            unfold(str(raw_disposition)).split(";", 1)[0].strip().lower() if raw_disposition is not None else None
        )
        self.filename = _filename(disposition_params.get("filename"), "filename", where, log) or _filename(
            type_params.get("name"), "name", where, log
        )
        charset = type_params.get("charset")
        if isinstance(charset, tuple):  # RFC 2231 form
            charset = charset[2]
        self.charset = charset if isinstance(charset, str) and charset.isascii() else None
        # A text part with a filename or "attachment" is a file, not the body.
        self.body_candidate = (
            leaf.content_type in _BODY_TYPES and self.disposition != "attachment" and self.filename is None
        )


def _choose_bodies(leaves: list[MimeLeaf], details: dict[int, _Details]) -> tuple[MimeLeaf | None, MimeLeaf | None]:
    """First text/plain; first text/html, or the last of its alternatives.

    multipart/alternative lists renderings in increasing order of
    preference, so among sibling HTML alternatives the last one wins.
    """
    text_leaf = html_leaf = None
    for leaf in leaves:
        if not details[id(leaf)].body_candidate:
            continue
        if leaf.content_type == "text/plain":
            if text_leaf is None:
                text_leaf = leaf
        elif html_leaf is None or (
            leaf.parent_type == "multipart/alternative" and leaf.parent_id == html_leaf.parent_id
        ):
            html_leaf = leaf
    return text_leaf, html_leaf


def _payload(leaf: MimeLeaf, log: ProblemLog, canonical: bool = True) -> bytes:
    encoding = leaf.headers.get("content-transfer-encoding")
    cte = normalise_cte(None if encoding is None else str(encoding))
    data, problem = decode_transfer(leaf.body, cte, canonical)
    if problem:
        log.add(f"{problem} in part {leaf.path}")
    return data


def _body_text(leaf: MimeLeaf, detail: _Details, log: ProblemLog) -> str:
    data = _payload(leaf, log, canonical=False)  # line endings are normalised below
    charset = detail.charset
    if charset is None and leaf.content_type == "text/html":
        declared = _META_CHARSET.search(data, 0, 4096)
        if declared:
            charset = declared.group(1).decode("ascii")
    text, problem = decode_text(data, charset)
    if problem:
        log.add(f"{problem} in part {leaf.path}")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
        log.add(f"NUL characters removed from part {leaf.path}")
    return text


def _params(headers: Message, header: str, where: str, log: ProblemLog) -> dict[str, object]:
    """Parameters of a header, RFC 2231 sections already joined."""
    if header not in headers:
        return {}
    try:
        pairs = headers.get_params(header=header) or []
    except Exception:  # e.g. mixed numbered/unnumbered RFC 2231 sections
        log.add(f"unparsable {header} parameters in {where}")
        return {}
    params: dict[str, object] = {}
    for name, value in pairs[1:]:
        params.setdefault(name, value)
    return params


def _param_text(value: object, param: str, where: str, log: ProblemLog) -> str | None:
    """Decode a parameter value in either RFC 2231 or RFC 2047 form."""
    if value is None:
        return None
    if isinstance(value, tuple):
        charset, _language, encoded = value
        try:
            data = str(encoded).encode("latin-1", "surrogateescape")
        except UnicodeEncodeError:
            data = str(encoded).encode("utf-8", "replace")
        text, problem = decode_text(data, charset or None)
        if problem:
            log.add(f"{problem} in {param} parameter of {where}")
    else:
        text, guessed = repair_8bit(unfold(str(value)))
        if guessed:
            log.add(f"undeclared 8-bit {param} parameter decoded as {guessed} in {where}")
    text, problems = decode_encoded_words(text)
    log.extend(problems, f" in {param} parameter of {where}")
    return text


def _clean_filename(name: str) -> str | None:
    # Only the last path component: a name must never choose a directory.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL_CHARACTERS.sub("", name).strip()
    if name in ("", ".", ".."):
        return None
    return name[:255]


def _filename(value: object, param: str, where: str, log: ProblemLog) -> str | None:
    text = _param_text(value, param, where, log)
    return _clean_filename(text) if text else None


def _content_id(headers: Message) -> str | None:
    value = headers.get("content-id")
    if value is None:
        return None
    text, _ = repair_8bit(unfold(str(value)))
    return _CONTROL_CHARACTERS.sub("", text).strip().strip("<>").strip() or None


def _cid_references(html: str) -> set[str]:
    references: set[str] = set()
    for match in _CID_REFERENCE.finditer(html):
        references.add(match.group(1))
        references.add(unquote(match.group(1)))
    return references


def _attachment(
    leaf: MimeLeaf, detail: _Details, index: int, referenced: set[str], log: ProblemLog
) -> ParsedAttachment:
    data = _payload(leaf, log)
    content_type = leaf.content_type
    if not leaf.declared_type and not detail.body_candidate and content_type not in _MESSAGE_TYPES:
        content_type = "application/octet-stream"
    filename = detail.filename
    if filename is None and content_type in _MESSAGE_TYPES:
        filename = "message.eml"
    content_id = _content_id(leaf.headers)
    inline = detail.disposition == "inline" or (
        content_id is not None
        and (
            content_id in referenced
            or (
                content_type.startswith("image/")
                and leaf.parent_type == "multipart/related"
                and detail.disposition != "attachment"
            )
        )
    )
    return ParsedAttachment(
        index=index,
        filename=filename,
        content_type=content_type,
        size=len(data),
        content_id=content_id,
        inline=inline,
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )
