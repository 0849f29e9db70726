"""Interpreting structured header fields: addresses, dates, message ids."""

from __future__ import annotations

import email.utils
import re
from datetime import datetime, timedelta, timezone

from .header_text import decode_encoded_words
from .model import ParsedAddress

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_MESSAGE_ID = re.compile(r"<([^<>]*)>")

# "addr@domain", "Name <addr@domain>" or "<addr@domain>": the forms nearly
# all mail uses.  The stdlib address parser is pure Python and costs tens
# of microseconds per header, so these skip it; anything with quotes,
# comments, groups or escapes still goes to the stdlib.
# Written so that no two parts can match the same characters: a failed
# match then backtracks in linear time, even on hostile input.
_ADDR_SPEC = r"[^\s<>()\[\],;:\"\\@]+@[^\s<>()\[\],;:\"\\@]+"
_BARE_MAILBOX = re.compile(rf"\s*(?P<address>{_ADDR_SPEC})\s*")
_NAMED_MAILBOX = re.compile(rf"(?P<name>[^<>()\[\],;:\"\\@]*)<(?P<address>{_ADDR_SPEC})>\s*")
_NOT_SIMPLE = re.compile(r'["()\\;:]')


def _simple_pairs(value: str) -> list[tuple[str, str]] | None:
    """getaddresses() for the simple forms, None if the value is not simple."""
    if _NOT_SIMPLE.search(value):
        return None
    pairs = []
    for item in value.split(","):
        if not item.strip():
            continue
        bare = _BARE_MAILBOX.fullmatch(item)
        if bare:
            pairs.append(("", bare.group("address")))
            continue
        named = _NAMED_MAILBOX.fullmatch(item)
        if named is None:
            return None
        pairs.append((" ".join(named.group("name").split()), named.group("address")))
    return pairs


def parse_addresses(values: list[str]) -> list[ParsedAddress]:
    """Parse address headers given in their structured (undecoded) form.

    Encoded words are decoded only after splitting, so an encoded comma in
    a display name cannot split one mailbox into two.
    """
    if not values:
        return []
    pairs: list[tuple[str, str]] = []
    for value in values:
        simple = _simple_pairs(value)
        if simple is not None:
            pairs.extend(simple)
            continue
        try:
            pairs.extend(email.utils.getaddresses([value]))
        except Exception:  # the stdlib address parser has had crash bugs
            if value.strip():
                pairs.append((value.strip(), ""))
    addresses = []
    for name, address in pairs:
        if not name and not address:
            continue  # group syntax ("undisclosed-recipients:;") and noise
        name, _ = decode_encoded_words(name)  # problems already logged for the header
        addresses.append(ParsedAddress(name=" ".join(name.split()), address=address.strip()))
    return addresses


def parse_date(value: str) -> int | None:
    """Date header to epoch milliseconds (UTC); None if unparsable.

    A date without a zone (or with "-0000") is taken to be UTC.
    """
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return (parsed - _EPOCH) // _ONE_MS
    except Exception:  # the stdlib raises a mix of ValueError/TypeError/OverflowError
        return None


def first_message_id(value: str) -> str | None:
    """The first message id in a header value, without angle brackets."""
    match = _MESSAGE_ID.search(value)
    if match:
        return match.group(1).strip() or None
    words = value.split()
    return words[0].strip("<>") or None if words else None


def message_id_list(value: str) -> list[str]:
    """All message ids in a References-style header, in order."""
    found = [item.strip() for item in _MESSAGE_ID.findall(value)]
    if found:
        return [item for item in found if item]
    return [word.strip("<>") for word in value.split() if word.strip("<>")]
