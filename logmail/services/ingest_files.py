"""Splitting files and streams into messages for ``logmail ingest``."""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

_FROM_LINE = re.compile(rb"^From .*\r?\n", re.MULTILINE)


def looks_like_mbox(data: bytes) -> bool:
    return data.startswith(b"From ")


def read_messages(data: bytes, fmt: str = "auto") -> list[bytes]:
    """The messages in ``data``: one for .eml input, every one for mbox (``From `` separated).

    ``stdin`` is one message whose leading ``From `` envelope line, if any, is dropped: what
    Postfix's pipe(8) sends with ``flags=F``, where a body line starting with "From " is not
    quoted and must not split the message.
    """
    if fmt not in ("auto", "eml", "mbox", "stdin"):
        raise ValueError(f"unknown format {fmt!r}; use auto, eml or mbox")
    if not data.strip():
        return []
    if fmt == "stdin":
        if looks_like_mbox(data):
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""
        return [data] if data.strip() else []
    if fmt == "eml" or (fmt == "auto" and not looks_like_mbox(data)):
        return [data]
    return split_mbox(data)


def split_mbox(data: bytes) -> list[bytes]:
    """mboxrd/mboxo: split on ``From `` lines, undo ``>From`` quoting."""
    starts = [m.start() for m in _FROM_LINE.finditer(data)]
    if not starts or starts[0] != 0:
        raise ValueError("the input is not an mbox: it does not start with a 'From ' line")
    out = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[start:end]
        body = chunk.split(b"\n", 1)[1] if b"\n" in chunk else b""
        # The blank line mbox puts before the next From_ line is the separator, not message content.
        if body.endswith(b"\r\n\r\n"):
            body = body[:-2]
        elif body.endswith(b"\n\n"):
            body = body[:-1]
        body = re.sub(rb"(?m)^>(>*From )", rb"\1", body)
        if body.strip():
            out.append(body)
    return out


def header_recipients(raw: bytes) -> list[str]:
    """To, Cc and Bcc addresses of a message, for an envelope that was not given."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        values = [str(v) for name in ("to", "cc", "bcc") for v in (headers.get_all(name) or [])]
        return [addr for _, addr in getaddresses(values) if addr and "@" in addr]
    except Exception:  # header junk just means "no envelope recipients"
        return []
