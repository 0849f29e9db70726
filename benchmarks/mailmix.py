"""A deterministic, realistic mix of email messages for the capture benchmark.

Message ``i`` of seed ``s`` is always the same bytes, whatever else is generated, so a run that
sends messages 0..N-1 and then seeds N..M-1 is reproducible and never sends a message twice.

The mix (shares are approximate):

* 30 % plain text (UTF-8: 7bit, quoted-printable or 8bit);
* 30 % multipart/alternative, text plus HTML;
* 12 % HTML with 1-3 inline ``cid:`` images in multipart/related (some with a text alternative);
* 20 % legacy charsets declared on the part: iso-8859-1, windows-1252, shift_jis, koi8-r, gb2312;
*  7 % text with a small CSV or iCalendar attachment;
*  1 % internationalised mail (SMTPUTF8: UTF-8 addresses and raw UTF-8 headers);
* and, on top of any of these, a ~200 KB PDF-like attachment on about every 50th message.

Subjects are plain ASCII or RFC 2047 encoded words (UTF-8 B and Q, ISO-8859-1 Q, and the body's
own charset for some legacy messages). Sizes are log-uniform, typically 2-20 KB (larger with
attachments). Words come from a Zipf-weighted vocabulary; ``COMMON_WORD`` is put in roughly 35 %
of messages and ``RARE_TOKEN`` in about 1 %, so search has a common and a selective term, and the
generator counts both so that the benchmark can check what search returns.
"""

from __future__ import annotations

import base64
import binascii
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate

COMMON_WORD = "invoice"
RARE_TOKEN = "quasarkelp"
COMMON_SHARE = 0.35
RARE_SHARE = 0.01
BIG_ATTACHMENT_SHARE = 0.02

_WORDS = """
the and for your you with this that from will are our have please order account not can
has all new now more about team here any when been update thanks details payment shipping
delivery customer support service today report request review meeting project release build
deploy status change password reset verify email address confirm subscription renewal plan
price total amount due date number receipt summary weekly monthly daily notification alert
server error warning failed success complete pending queue job task ticket issue comment reply
message thread attached document file link click below above button login security code
device browser location session expired activity unusual sign welcome started guide tips
feature preview beta access invite join shared folder calendar event reminder schedule time
zone call agenda notes minutes follow action items owner deadline milestone sprint backlog
product catalogue discount offer sale coupon cart checkout returned refund processed bank card
transfer balance statement quarterly annual tax customs parcel tracking courier dispatched
warehouse stock supplier contract agreement terms policy privacy cookies settings preferences
unsubscribe newsletter digest highlights trending popular recommended articles stories news
community forum post liked followed mentioned profile photo album upload download storage
quota limit usage metrics dashboard analytics traffic visitors conversion campaign audience
segment template design draft approved rejected feedback survey rating stars performance
latency throughput database backup restore migration cluster node region instance container
image registry pipeline commit branch merge pull tests coverage lint docs api endpoint token
webhook payload retry timeout health check uptime incident postmortem oncall rota escalation
office holiday leave travel booking flight hotel itinerary boarding gate seat upgrade loyalty
points member tier gold silver renewal expiry licence seat user admin role permission group
organisation workspace billing vat registered company limited street road city postcode
kingdom united europe regards kind best cheers hello dear colleague manager director team
""".split()
_VOCAB = list(dict.fromkeys(w for w in _WORDS if w not in (COMMON_WORD, RARE_TOKEN)))
_CUM = list(accumulate(1.0 / (rank + 1.5) for rank in range(len(_VOCAB))))

_UTF8_SPRINKLES = ["café", "naïve", "Grüße", "façade", "über", "—", "€12.50", "✓", "→", "…", "«ok»",
                   "📦", "Zürich", "São Paulo", "Kraków", "Ærø", "½", "°C"]
_LEGACY = {
    "iso-8859-1": ["Vielen Dank für Ihre Bestellung.", "Die Lieferung erfolgt über unseren Partner.",
                   "Ça va très bien, à bientôt.", "Reçu n° 42 : non, pas de problème.",
                   "Größe: mittel; Farbe: grün.", "¿Qué tal? Señor Muñoz llegó.", "Prix: 12,50 £"],
    "windows-1252": ["“Smart quotes” are everywhere…", "The total is €49.99 – thank you.",
                     "It’s the customer’s choice — always.", "Œuvre complète • édition spéciale",
                     "Bestätigung ‹eingegangen›", "Trade™ and ©2024 notices ‰"],
    "shift_jis": ["ご注文ありがとうございます。", "商品の発送が完了しました。", "お問い合わせ番号をご確認ください。",
                  "今後ともよろしくお願いいたします。", "会議の議事録を添付します。"],
    "koi8-r": ["Здравствуйте!", "Ваш заказ отправлен.", "Спасибо за покупку.", "Счёт на оплату прилагается.",
               "С уважением, команда поддержки."],
    "gb2312": ["您好，您的订单已发货。", "感谢您的购买。", "请查收附件中的发票。", "会议时间已更改。",
               "如有疑问请联系客服。"],
}
_LEGACY_CHARSETS = list(_LEGACY)
_SUBJECT_UTF8 = ["Réservation confirmée:", "Bestätigung —", "✓ Done:", "Ihre Bestellung ist unterwegs 📦",
                 "Nová zpráva:", "Ελέγξτε", "ご確認ください:", "Привет,", "Ålesund update:"]
_SUBJECT_LATIN1 = ["Bestätigung Ihrer", "Réponse à votre", "Größe und", "Señal de", "À propos de"]
_FIRST = ["Alice", "Bob", "Charlotte", "Dmitri", "Émilie", "Fatima", "Günter", "Hiro", "Ingrid", "José",
          "Kwame", "Liang", "Mårten", "Niamh", "Oluwaseun", "Priya", "Siobhán", "Zoë"]
_LAST = ["Smith", "Jones", "Müller", "Dubois", "Tanaka", "Ivanova", "Wang", "O'Brien", "García",
         "Kowalski", "Nakamura", "Brontë", "Østergaard", "Okafor"]
_DOMAINS = ["example.com", "example.org", "example.net", "shop.example", "mail.example.co.uk",
            "notifications.example.io", "billing.example.de"]
_MAILERS = ["Microsoft Outlook 16.0", "Apple Mail (2.3654)", "Thunderbird 115.4", "PHPMailer 6.8.1",
            "Nodemailer (6.9.7)", "Django mail", "Amazon SES"]


@dataclass(slots=True)
class Message:
    """One message, ready for the wire."""

    index: int
    envelope: bytes   # MAIL FROM + RCPT TO... + DATA, CRLF-terminated, ready to pipeline
    n_rcpt: int
    data: bytes       # dot-stuffed content plus the terminating ".\r\n"
    size: int         # the message itself, before dot-stuffing
    kind: str
    charset: str
    subject_encoding: str
    common: bool
    rare: bool
    big_attachment: bool
    eightbit: bool
    smtputf8: bool


@dataclass
class MixStats:
    count: int = 0
    total_bytes: int = 0
    sizes: list[int] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    charsets: Counter = field(default_factory=Counter)
    subject_encodings: Counter = field(default_factory=Counter)
    common: int = 0
    rare: int = 0
    big_attachments: int = 0
    eightbit: int = 0
    smtputf8: int = 0

    def add(self, messages: list[Message]) -> None:
        for m in messages:
            self.count += 1
            self.total_bytes += m.size
            self.sizes.append(m.size)
            self.kinds[m.kind] += 1
            self.charsets[m.charset] += 1
            self.subject_encodings[m.subject_encoding] += 1
            self.common += m.common
            self.rare += m.rare
            self.big_attachments += m.big_attachment
            self.eightbit += m.eightbit
            self.smtputf8 += m.smtputf8

    def as_dict(self) -> dict:
        s = sorted(self.sizes)

        def q(p: float) -> int:
            return s[min(len(s) - 1, int(p * len(s)))] if s else 0

        return {
            "messages": self.count, "total_bytes": self.total_bytes,
            "size_mean": round(self.total_bytes / self.count) if self.count else 0,
            "size_p10": q(0.10), "size_p50": q(0.50), "size_p90": q(0.90), "size_max": s[-1] if s else 0,
            "kinds": dict(self.kinds.most_common()), "charsets": dict(self.charsets.most_common()),
            "subject_encodings": dict(self.subject_encodings.most_common()),
            "with_common_word": self.common, "with_rare_token": self.rare,
            "big_attachments": self.big_attachments, "eightbit": self.eightbit, "smtputf8": self.smtputf8,
        }


# -- encodings --------------------------------------------------------------------------------------


def _qp(text: bytes) -> bytes:
    return binascii.b2a_qp(text, istext=True)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _q_char(ch: str, charset: str) -> str:
    out = []
    for b in ch.encode(charset):
        c = chr(b)
        if c == " ":
            out.append("_")
        elif c.isascii() and (c.isalnum() or c in "!*+-/"):
            out.append(c)
        else:
            out.append(f"={b:02X}")
    return "".join(out)


def encoded_words(text: str, charset: str, enc: str) -> str:
    """RFC 2047: ``text`` as encoded words of at most 75 characters, folded between words."""
    prefix = f"=?{charset}?{enc}?"
    room = 75 - len(prefix) - 2
    words, chunk, size = [], [], 0
    for ch in text:
        if enc == "B":
            chunk.append(ch)
            if 4 * math.ceil(len("".join(chunk).encode(charset)) / 3) > room:
                chunk.pop()
                words.append(base64.b64encode("".join(chunk).encode(charset)).decode())
                chunk = [ch]
        else:
            q = _q_char(ch, charset)
            if size + len(q) > room:
                words.append("".join(chunk))
                chunk, size = [], 0
            chunk.append(q)
            size += len(q)
    if chunk:
        words.append(base64.b64encode("".join(chunk).encode(charset)).decode() if enc == "B" else "".join(chunk))
    return "\r\n ".join(f"{prefix}{w}?=" for w in words)


def _dot_stuff(raw: bytes) -> bytes:
    data = raw.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


# -- content --------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, seed: int, index: int) -> None:
        self.rng = random.Random(seed * 1_000_003 + index)
        self.index = index
        self.seed = seed
        self.boundaries = 0
        self.eightbit = False

    # words and paragraphs ------------------------------------------------------------------------

    def paragraphs(self, approx_chars: int, *, extra: list[str], sprinkle: bool,
                   native: list[str] | None = None) -> list[str]:
        """Paragraphs of Zipf-distributed words; ``extra`` words are placed early in the text."""
        rng = self.rng
        n_words = max(12, approx_chars // 7)
        words = rng.choices(_VOCAB, cum_weights=_CUM, k=n_words)
        for w in extra:
            words.insert(rng.randrange(0, min(len(words), 40)), w)
        if sprinkle:
            for _ in range(rng.randint(1, 4)):
                words.insert(rng.randrange(len(words)), rng.choice(_UTF8_SPRINKLES))
        paras, pos = [], 0
        while pos < len(words):
            sentences = []
            for _ in range(rng.randint(2, 6)):
                if pos >= len(words):
                    break
                n = rng.randint(6, 16)
                s = words[pos:pos + n]
                pos += n
                sentences.append(s[0].capitalize() + (" " + " ".join(s[1:]) if len(s) > 1 else "") + ".")
            if native:
                sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(native))
            paras.append(" ".join(sentences))
        return paras

    @staticmethod
    def wrap(paras: list[str], width: int = 72) -> str:
        lines = []
        for p in paras:
            line = ""
            for w in p.split(" "):
                if line and len(line) + 1 + len(w) > width:
                    lines.append(line)
                    line = w
                else:
                    line = f"{line} {w}" if line else w
            lines.append(line)
            lines.append("")
        return "\r\n".join(lines)

    def text_body(self, paras: list[str], greeting: str) -> str:
        rng = self.rng
        body = f"{greeting},\r\n\r\n" + self.wrap(paras)
        if rng.random() < 0.15:  # lines that need dot-stuffing on the wire
            body += "\r\n.\r\n..hidden line\r\n. trailing dot line\r\n"
        if rng.random() < 0.3:
            body += "\r\n-- \r\nSent by the example notification service\r\nhttps://example.com/settings\r\n"
        return body

    def html_body(self, paras: list[str], title: str, charset: str, cids: list[str] = ()) -> str:
        rng = self.rng
        out = [f'<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; charset={charset}">',
               f"<title>{_esc(title)}</title><style>body{{font-family:Arial,sans-serif;color:#333}}"
               ".btn{background:#0b5fff;color:#fff;padding:8px 16px;border-radius:4px}</style></head>",
               '<body><table width="100%" cellpadding="0" cellspacing="0" border="0"><tr><td align="center">',
               '<table width="600" style="border:1px solid #ddd"><tr><td style="padding:24px">']
        if cids:
            out.append(f'<img src="cid:{cids[0]}" alt="logo" width="120" height="40">')
        for n, p in enumerate(paras):
            out.append(f'<p style="margin:0 0 12px 0;line-height:1.5">{_esc(p)}</p>')
            if n == 0 and rng.random() < 0.6:
                out.append(f'<p><a class="btn" href="https://example.com/r/{self.index}?utm_source=mail&amp;'
                           f'utm_campaign=bench">View details</a></p>')
        for cid in cids[1:]:
            out.append(f'<p><img src="cid:{cid}" alt="picture"></p>')
        out.append('</td></tr></table><p style="font-size:11px;color:#999">You receive this because you have '
                   'an account. <a href="https://example.com/unsubscribe">Unsubscribe</a></p></td></tr></table>'
                   "</body></html>")
        # Long lines, as templating engines produce: quoted-printable has to soft-break them.
        return "\r\n".join("".join(out[i:i + 3]) for i in range(0, len(out), 3))

    # MIME entities -------------------------------------------------------------------------------

    def boundary(self) -> str:
        self.boundaries += 1
        return f"=_bench_{self.seed}_{self.index}_{self.boundaries}_{self.rng.getrandbits(48):012x}"

    def text_entity(self, subtype: str, text: str, charset: str) -> tuple[list[str], bytes]:
        raw = text.encode(charset)
        rng = self.rng
        if raw.isascii() and subtype == "plain":
            cte, body = "7bit", raw
        elif charset in ("shift_jis", "gb2312") or (charset == "koi8-r" and rng.random() < 0.5):
            cte, body = "base64", _b64(raw)
        elif subtype == "plain" and rng.random() < 0.3:
            cte, body = "8bit", raw
            self.eightbit = True
        else:
            cte, body = "quoted-printable", _qp(raw)
        return [f"Content-Type: text/{subtype}; charset=\"{charset}\"", f"Content-Transfer-Encoding: {cte}"], body

    def binary_entity(self, ctype: str, data: bytes, *, filename: str | None = None, cid: str | None = None,
                      inline: bool = False) -> tuple[list[str], bytes]:
        headers = [f"Content-Type: {ctype}" + (f'; name="{filename}"' if filename else ""),
                   "Content-Transfer-Encoding: base64"]
        if cid:
            headers.append(f"Content-ID: <{cid}>")
        if filename or inline:
            disp = "inline" if inline else "attachment"
            headers.append(f'Content-Disposition: {disp}' + (f'; filename="{filename}"' if filename else ""))
        return headers, _b64(data)

    def multipart(self, subtype: str, parts: list[tuple[list[str], bytes]], extra: str = "") -> tuple[list[str], bytes]:
        b = self.boundary()
        chunks = [b"This is a multi-part message in MIME format.\r\n"] if self.rng.random() < 0.5 else []
        for headers, body in parts:
            chunks.append(f"--{b}\r\n".encode() + "\r\n".join(headers).encode() + b"\r\n\r\n" + body
                          + (b"" if body.endswith(b"\r\n") else b"\r\n"))
        chunks.append(f"--{b}--\r\n".encode())
        return [f'Content-Type: multipart/{subtype};{extra} boundary="{b}"'], b"".join(chunks)

    def png(self) -> bytes:
        n = self.rng.randint(1000, 6000)
        return (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x78\x00\x00\x00\x28\x08\x06\x00\x00\x00"
                + self.rng.randbytes(n) + b"\x00\x00\x00\x00IEND\xaeB`\x82")

    def pdf(self) -> bytes:
        n = self.rng.randint(190_000, 210_000)
        return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nstream\n" + self.rng.randbytes(n) \
            + b"\nendstream\nendobj\n%%EOF\n"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _addr_header(name: str, addr: str, rng: random.Random, utf8_raw: bool = False) -> str:
    if name.isascii():
        return f'"{name}" <{addr}>' if "'" in name else f"{name} <{addr}>"
    if utf8_raw:
        return f"{name} <{addr}>"
    return f"{encoded_words(name, 'utf-8', rng.choice('BQ'))} <{addr}>"


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = (first[0] + "." + last).lower().encode("ascii", "ignore").decode().replace("'", "")
    return f"{first} {last}", f"{local}@{rng.choice(_DOMAINS)}"


_KINDS = ["plain", "alternative", "related", "legacy", "small-attachment", "smtputf8"]
_KIND_CUM = list(accumulate([0.30, 0.30, 0.12, 0.20, 0.07, 0.01]))


def make_message(seed: int, index: int) -> Message:
    b = _Builder(seed, index)
    rng = b.rng
    kind = rng.choices(_KINDS, cum_weights=_KIND_CUM)[0]
    charset = rng.choice(_LEGACY_CHARSETS) if kind == "legacy" else "utf-8"
    common = rng.random() < COMMON_SHARE
    rare = rng.random() < RARE_SHARE
    big = rng.random() < BIG_ATTACHMENT_SHARE
    smtputf8 = kind == "smtputf8"
    target = int(math.exp(rng.uniform(math.log(2000), math.log(20000))))

    # Subject: searchable words, sometimes the common word or the rare token.
    words = rng.choices(_VOCAB, cum_weights=_CUM, k=rng.randint(3, 9))
    if common and rng.random() < 0.4:
        words.insert(rng.randrange(len(words) + 1), COMMON_WORD)
    if rare and rng.random() < 0.5:
        words.insert(rng.randrange(len(words) + 1), RARE_TOKEN)
    subject = " ".join(words).capitalize() + f" #{index}"
    r = rng.random()
    if smtputf8:
        subject_enc, subject_header = "raw-utf8", f"{rng.choice(_SUBJECT_UTF8)} {subject}"
    elif kind == "legacy" and r < 0.5:
        text = f"{rng.choice(_LEGACY[charset])} {subject}"
        enc = "Q" if charset in ("iso-8859-1", "windows-1252") else "B"
        subject_enc, subject_header = f"{charset} {enc}", encoded_words(text, charset, enc)
    elif r < 0.50:
        subject_enc, subject_header = "ascii", subject
    elif r < 0.70:
        subject_enc, subject_header = "utf-8 B", encoded_words(f"{rng.choice(_SUBJECT_UTF8)} {subject}", "utf-8", "B")
    elif r < 0.85:
        subject_enc, subject_header = "utf-8 Q", encoded_words(f"{rng.choice(_SUBJECT_UTF8)} {subject}", "utf-8", "Q")
    else:
        subject_enc = "iso-8859-1 Q"
        subject_header = encoded_words(f"{rng.choice(_SUBJECT_LATIN1)} {subject}", "iso-8859-1", "Q")

    # Body words: the tokens go in early so that every kind of body indexes them.
    extra = []
    if common:
        extra.append(COMMON_WORD)
    if rare:
        extra.append(RARE_TOKEN)
    native = _LEGACY.get(charset)
    sprinkle = charset == "utf-8" and rng.random() < 0.3
    from_name, from_addr = _person(rng)
    if smtputf8:
        from_name, from_addr = "José Müller", f"josé.müller@{rng.choice(_DOMAINS)}"
    greeting = f"Dear {rng.choice(_FIRST)}" if charset == "utf-8" or charset in ("iso-8859-1", "windows-1252") \
        else "Hello"
    if not greeting.encode(charset, "replace").decode(charset) == greeting:
        greeting = "Hello"

    if kind == "plain" or kind == "smtputf8":
        paras = b.paragraphs(target - 700, extra=extra, sprinkle=sprinkle or smtputf8)
        entity = b.text_entity("plain", b.text_body(paras, greeting), "utf-8")
    elif kind == "alternative" or (kind == "legacy" and rng.random() < 0.4):
        paras = b.paragraphs(max(300, (target - 1200) // 2), extra=extra, sprinkle=sprinkle, native=native)
        text = b.text_entity("plain", b.text_body(paras, greeting), charset)
        html = b.text_entity("html", b.html_body(paras, subject, charset), charset)
        entity = b.multipart("alternative", [text, html])
    elif kind == "legacy":
        paras = b.paragraphs(target - 700, extra=extra, sprinkle=False, native=native)
        entity = b.text_entity("plain", b.text_body(paras, greeting), charset)
    elif kind == "related":
        images = [b.png() for _ in range(rng.randint(1, 3))]
        budget = max(600, target - 1500 - sum(len(i) * 4 // 3 for i in images))
        paras = b.paragraphs(budget // 2, extra=extra, sprinkle=sprinkle)
        cids = [f"img{n}.{index}.{rng.getrandbits(32):08x}@bench.example" for n in range(len(images))]
        html = b.text_entity("html", b.html_body(paras, subject, "utf-8", cids), "utf-8")
        parts = [html] + [b.binary_entity("image/png", img, filename=f"image{n + 1}.png", cid=cid, inline=True)
                          for n, (img, cid) in enumerate(zip(images, cids))]
        related = b.multipart("related", parts, extra=' type="text/html";')
        if rng.random() < 0.6:
            text = b.text_entity("plain", b.text_body(paras, greeting), "utf-8")
            entity = b.multipart("alternative", [text, related])
        else:
            entity = related
    else:  # small-attachment
        paras = b.paragraphs(target - 1500, extra=extra, sprinkle=sprinkle)
        text = b.text_entity("plain", b.text_body(paras, greeting), "utf-8")
        if rng.random() < 0.5:
            rows = "\r\n".join(f"{n},{rng.choice(_VOCAB)},{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
                               for n in range(rng.randint(10, 60)))
            att = b.binary_entity("text/csv", ("id,item,amount\r\n" + rows + "\r\n").encode(), filename="report.csv")
        else:
            ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
                   f"UID:{index}@bench.example\r\nDTSTART:20240115T100000Z\r\nDTEND:20240115T110000Z\r\n"
                   f"SUMMARY:{subject}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
            att = b.binary_entity("text/calendar; method=REQUEST", ics.encode(), filename="invite.ics")
        entity = b.multipart("mixed", [text, att])

    if big:
        pdf = b.binary_entity("application/pdf", b.pdf(), filename=f"statement-{index}.pdf")
        entity = b.multipart("mixed", [entity, pdf])

    n_to = rng.choice((1, 1, 1, 2, 3))
    to = [_person(rng) for _ in range(n_to)]
    cc = [_person(rng)] if rng.random() < 0.15 else []
    if smtputf8:
        to[0] = ("Zoë Brontë", f"zoë{index % 97}@example.test")
    headers = [
        f"Return-Path: <{from_addr}>",
        f"Received: from app{index % 7}.example.internal (app{index % 7}.example.internal [10.0.{index % 250}.{index % 200 + 1}])"
        f"\r\n\tby mx.example.test with ESMTP id {rng.getrandbits(40):010x}\r\n\tfor <{to[0][1]}>; "
        f"Mon, 15 Jan 2024 {index // 3600 % 24:02d}:{index // 60 % 60:02d}:{index % 60:02d} +0000",
        f"Date: Mon, 15 Jan 2024 {index // 3600 % 24:02d}:{index // 60 % 60:02d}:{index % 60:02d} +0000",
        f"From: {_addr_header(from_name, from_addr, rng, smtputf8)}",
        "To: " + ",\r\n ".join(_addr_header(n, a, rng, smtputf8) for n, a in to),
    ]
    if cc:
        headers.append("Cc: " + ", ".join(_addr_header(n, a, rng) for n, a in cc))
    headers += [
        f"Subject: {subject_header}",
        f"Message-ID: <{seed}.{index}.{rng.getrandbits(64):016x}@bench.example>",
        "MIME-Version: 1.0",
    ]
    if rng.random() < 0.5:
        headers.append(f"X-Mailer: {rng.choice(_MAILERS)}")
    if rng.random() < 0.1:
        headers.append(f"In-Reply-To: <{seed}.{max(0, index - 1)}.prev@bench.example>")
    headers += entity[0]
    raw = "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + entity[1]
    eightbit = b.eightbit or smtputf8

    params = f" SIZE={len(raw)}" + (" BODY=8BITMIME" if eightbit else "") + (" SMTPUTF8" if smtputf8 else "")
    rcpts = [a for _, a in to + cc]
    envelope = (f"MAIL FROM:<{from_addr}>{params}\r\n" + "".join(f"RCPT TO:<{a}>\r\n" for a in rcpts)
                + "DATA\r\n").encode("utf-8")
    return Message(index=index, envelope=envelope, n_rcpt=len(rcpts), data=_dot_stuff(raw), size=len(raw),
                   kind=kind, charset=charset, subject_encoding=subject_enc, common=common, rare=rare,
                   big_attachment=big, eightbit=eightbit, smtputf8=smtputf8)


def make_messages(seed: int, start: int, stop: int) -> list[Message]:
    return [make_message(seed, i) for i in range(start, stop)]
