"""Email parsing, decoding and HTML sanitising: logmail's bottom layer.

Pure functions over bytes and strings, depending only on the standard
library and nh3, so every other part of logmail can build on it.
"""

from .charsets import decode_text
from .model import ParsedAddress, ParsedAttachment, ParsedMessage
from .parser import parse_message
from .sanitise import sanitise_html
from .snippet import make_snippet

__all__ = [
    "parse_message",
    "ParsedMessage",
    "ParsedAddress",
    "ParsedAttachment",
    "sanitise_html",
    "decode_text",
    "make_snippet",
]
