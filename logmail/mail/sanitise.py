"""Making message HTML safe to show inside the logmail web interface.

Built on nh3 (the Rust ammonia sanitiser).  The policy is an allow-list:
formatting tags and presentational attributes only, links limited to
http/https/mailto, images to those plus ``cid:`` (inline parts), relative
URLs dropped (they would resolve against logmail's own origin), and
inline CSS limited to properties that cannot load anything.
"""

from __future__ import annotations

import nh3

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot", "big", "address", "section", "main", "center"}

# Presentational attributes mail layouts depend on (tables everywhere).
_COMMON_ATTRIBUTES = {
    "align", "valign", "dir", "lang", "title", "width", "height", "bgcolor",
    "border", "cellpadding", "cellspacing", "colspan", "rowspan", "nowrap", "style",
}
_ATTRIBUTES = {tag: set(attributes) for tag, attributes in nh3.ALLOWED_ATTRIBUTES.items()}
for _tag in _TAGS:
    _ATTRIBUTES.setdefault(_tag, set()).update(_COMMON_ATTRIBUTES)
_ATTRIBUTES["a"].update({"name"})
_ATTRIBUTES["img"].update({"alt", "border", "hspace", "vspace"})
_ATTRIBUTES["font"].update({"color", "face", "size"})

# None of these can take a url() or otherwise fetch or run anything, and
# none can lift content out of the message area (no position/z-index).
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "font-variant", "text-align", "text-decoration", "text-transform",
    "text-indent", "letter-spacing", "word-spacing", "line-height", "white-space",
    "vertical-align", "direction", "display", "float", "clear", "width", "height",
    "min-width", "max-width", "min-height", "max-height", "margin", "margin-top",
    "margin-right", "margin-bottom", "margin-left", "padding", "padding-top",
    "padding-right", "padding-bottom", "padding-left", "border", "border-top",
    "border-right", "border-bottom", "border-left", "border-color", "border-style",
    "border-width", "border-radius", "border-collapse", "border-spacing",
    "table-layout", "list-style-type", "list-style-position", "word-break",
    "word-wrap", "overflow-wrap", "text-overflow", "overflow",
}

# Belt and braces on top of the property allow-list: declarations that
# smell of script or remote loading are dropped (ammonia resolves CSS
# escapes, so "\6a avascript" would otherwise reappear as "javascript").
_STYLE_RED_FLAGS = ("javascript", "vbscript", "expression", "url(", "\\", "@import", "behavior", "binding")

# Dropped together with their content, not just unwrapped.
_CLEAN_CONTENT_TAGS = {"script", "style", "title", "noscript", "template", "iframe", "object",
                       "embed", "noembed", "noframes", "xmp", "plaintext", "textarea", "select"}


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute != "style":
        return value
    lowered = value.lower()
    if not any(flag in lowered for flag in _STYLE_RED_FLAGS):
        return value
    # Keep the innocent declarations (a background image should not cost
    # the element its colours).  A naive split on ";" can only break
    # declarations apart, and ammonia re-validates whatever is left.
    kept = [
        declaration
        for declaration in value.split(";")
        if not any(flag in declaration.lower() for flag in _STYLE_RED_FLAGS)
    ]
    return ";".join(kept) or None


_OPTIONS = dict(
    tags=_TAGS,
    clean_content_tags=_CLEAN_CONTENT_TAGS,
    attributes=_ATTRIBUTES,
    strip_comments=True,
    link_rel="noopener noreferrer",
    url_schemes={"http", "https", "mailto", "cid"},
    url_relative="deny",
    filter_style_properties=_STYLE_PROPERTIES,
)
# The attribute filter is a Python callback per attribute, which costs
# about 1 us each (~40% of the time on a typical newsletter), so it only
# runs when the cheap pass leaves something suspicious anywhere in its
# output.  Output is canonical (CSS escapes already resolved by ammonia),
# so a plain substring check on it is reliable.
_FAST_CLEANER = nh3.Cleaner(**_OPTIONS)
_CAREFUL_CLEANER = nh3.Cleaner(**_OPTIONS, attribute_filter=_attribute_filter)


def _clean(html: str) -> str:
    cleaned = _FAST_CLEANER.clean(html)
    lowered = cleaned.lower()
    if any(flag in lowered for flag in _STYLE_RED_FLAGS):
        return _CAREFUL_CLEANER.clean(html)
    return cleaned


def sanitise_html(html: str) -> str:
    """Return a safe HTML fragment for ``html`` (which may be a full document)."""
    if not html:
        return ""
    # nh3 hands strings to Rust as UTF-8; a lone surrogate must not raise.
    try:
        return _clean(html)
    except (UnicodeEncodeError, ValueError):
        return _clean(html.encode("utf-8", "replace").decode("utf-8"))
