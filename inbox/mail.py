"""Parse one raw RFC 5322 message with the standard library (multipart, transfer encodings,
charsets, attachments). Pure: bytes in, a plain dict out, ``LimitError`` for a message over one of
the limits, ``MailError`` for what is not an email. Runs in a worker process (``inbox/mailpool.py``).

The structure is parsed with the ``compat32`` policy, whose headers are plain strings: the modern
policy's header parser is superlinear on hostile input (a 4 KB ``To`` took half a second, parsed
again on every access) and raises on some values (``Message-ID: <@>``). Only the headers we use are
read, each bounded by the limits, with ``email.utils`` and ``email.header``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesFeedParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, cast

_ID = re.compile(r"<[^<>\s]+>")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


class MailError(ValueError):
    pass


class LimitError(MailError):
    """Over a configured limit; ``limit`` names its environment variable."""

    def __init__(self, detail: str, limit: str) -> None:
        super().__init__(detail, limit)  # both in args, so the error pickles back from the worker

    @property
    def detail(self) -> str:
        return self.args[0]

    @property
    def limit(self) -> str:
        return self.args[1]

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class Limits:
    """The ``mail_max_*`` settings (defaults and meaning in inbox/config.py)."""
    parts: int
    depth: int
    headers: int
    header_bytes: int
    addresses: int

    @classmethod
    def of(cls, config) -> Limits:
        return cls(config.mail_max_parts, config.mail_max_depth, config.mail_max_headers,
                   config.mail_max_header_bytes, config.mail_max_addresses)


def over(what: str, limit: float, env: str) -> LimitError:
    return LimitError(f"The message has {what} (the limit is {limit}, {env}).", env)


class _Budget:
    """Counts parts as the parser creates them, so an oversized tree stops the parse early."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.parts = 0

    def new_part(self, policy=policy.compat32) -> _Part:
        self.parts += 1
        if self.parts > self.limits.parts:
            raise over(f"more than {self.limits.parts} MIME parts", self.limits.parts, "INBOX_MAIL_MAX_PARTS")
        return _Part(self, policy)


class _Part(EmailMessage):
    """A part that refuses headers beyond the count and length limits as the parser adds them."""

    def __init__(self, budget: _Budget, policy) -> None:
        super().__init__(policy)
        self._limits = budget.limits

    def set_raw(self, name: str, value: str) -> None:
        limits = self._limits
        if len(self) >= limits.headers:  # len(): the fields so far, duplicates included
            raise over(f"a part with more than {limits.headers} header fields", limits.headers,
                       "INBOX_MAIL_MAX_HEADERS")
        if len(name) + 1 + len(value) > limits.header_bytes:
            raise over(f"a header field ({name[:40]}) longer than {limits.header_bytes} bytes", limits.header_bytes,
                       "INBOX_MAIL_MAX_HEADER_BYTES")
        super().set_raw(name, value)

    def is_attachment(self) -> bool:
        # EmailMessage's version reads a header object of the modern policy; compat32's is a string.
        return self.get_content_disposition() == "attachment"


def parse(raw: bytes, limits: Limits) -> dict[str, Any]:
    """The error boundary: every read of the message happens inside this one ``try``; whatever the
    standard library raises on hostile input is malformed input (422), never a 500."""
    try:
        return _parse(raw, limits)
    except MailError:
        raise
    except Exception as exc:  # noqa: BLE001  (that is the boundary: the parser raises anything)
        raise MailError(f"not a parseable message: {type(exc).__name__}: {exc}") from None


def _parse(raw: bytes, limits: Limits) -> dict[str, Any]:
    budget = _Budget(limits)
    parser = BytesFeedParser(_factory=budget.new_part, policy=policy.compat32)
    budget.parts = 0  # the parser calls its factory once to learn its signature
    parser.feed(raw)
    msg = cast(_Part, parser.close())  # every part comes from budget.new_part
    _check_depth(msg, 1, limits.depth)
    senders = _addresses(msg, "From", limits)
    if not msg.keys() or not senders or "@" not in senders[0][1]:
        raise MailError("the message has no From address; is this an RFC 5322 message?")
    name, address = senders[0]
    message_id = _first_id(_field(msg, "Message-ID"))
    if message_id is None:  # a stable id from the content, so a resend still deduplicates
        message_id = f"<{hashlib.sha256(raw).hexdigest()}@inbox.invalid>"
    try:
        date = _field(msg, "Date")
        sent = parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError, OverflowError, IndexError):  # a bad date is no reason to refuse the message
        sent = None
    try:
        plain = msg.get_body(preferencelist=("plain",))
        rich = msg.get_body(preferencelist=("html",))
        text = _content(plain) if plain is not None else ""
        html = _content(rich) if rich is not None else ""
        attachments = []
        for part in msg.iter_attachments():
            data = part.get_payload(decode=True) or b""
            attachments.append({"name": _words(part.get_filename() or "") or "attachment", "data": data})
    except (LookupError, ValueError, AttributeError) as exc:  # unknown charset, broken encoding
        raise MailError(f"cannot decode the message body: {exc}") from None
    return {
        "message_id": message_id,
        "in_reply_to": _first_id(_field(msg, "In-Reply-To")),
        "references": _ids(_field(msg, "References")),
        "subject": _words(_field(msg, "Subject")).strip(),
        "from_addr": address.lower(), "from_name": _words(name),
        "to": [a.lower() for _, a in _addresses(msg, "To", limits) if a],
        "sent_at": sent, "text": text, "html": html, "attachments": attachments,
    }


def _check_depth(part: Any, level: int, limit: int) -> None:
    if level > limit:
        raise over(f"parts nested more than {limit} deep", limit, "INBOX_MAIL_MAX_DEPTH")
    if part.is_multipart():  # multiparts, and attached messages (message/rfc822)
        for child in part.get_payload():
            _check_depth(child, level + 1, limit)


def _fields(msg: EmailMessage, name: str) -> list[str]:
    """Every field of that name as text: raw header bytes are UTF-8 (RFC 6532) when they decode."""
    key = name.lower()
    return [_FOLD.sub("", value).encode("ascii", "surrogateescape").decode("utf-8", "replace")
            for field, value in msg.raw_items() if field.lower() == key]


def _field(msg: EmailMessage, name: str) -> str:
    values = _fields(msg, name)
    return values[0] if values else ""


def _addresses(msg: EmailMessage, name: str, limits: Limits) -> list[tuple[str, str]]:
    values = _fields(msg, name)
    # Repeated fields count as one header, so splitting a list over many fields gains nothing.
    if sum(len(name) + 1 + len(v) for v in values) > limits.header_bytes:
        raise over(f"{name} fields longer than {limits.header_bytes} bytes together", limits.header_bytes,
                   "INBOX_MAIL_MAX_HEADER_BYTES")
    found = getaddresses(values)
    if len(found) > limits.addresses:
        raise over(f"more than {limits.addresses} addresses in {name}", limits.addresses, "INBOX_MAIL_MAX_ADDRESSES")
    return found


def _words(value: str) -> str:
    """RFC 2047 encoded words decoded; a value whose words cannot be decoded is kept as it came."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeError):
        return value


def _content(part: Message) -> str:
    payload = part.get_payload(decode=True)
    return (payload if isinstance(payload, bytes) else b"").decode(part.get_content_charset() or "ascii", "replace")


def _ids(value: str) -> list[str]:
    return _ID.findall(value)


def _first_id(value: str) -> str | None:
    found = _ID.search(value)
    return found.group() if found else None
