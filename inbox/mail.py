"""Parse one raw RFC 5322 message with the standard library (multipart, transfer encodings,
charsets, attachments). Pure: bytes in, a plain dict out, or ``MailError`` for what is not an email."""

from __future__ import annotations

import hashlib
import re
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

_ID = re.compile(r"<[^<>\s]+>")


class MailError(ValueError):
    pass


def _ids(value: str | None) -> list[str]:
    return _ID.findall(value or "")


def parse(raw: bytes) -> dict[str, Any]:
    """The error boundary: the modern header parser runs lazily, on first access to a header, and
    raises whatever it trips on (``Message-ID: <@>`` is an IndexError), so every read of the message
    happens inside this one ``try``; anything that escapes it is malformed input, never a 500."""
    try:
        return _parse(raw)
    except MailError:
        raise
    except Exception as exc:
        raise MailError(f"not a parseable message: {type(exc).__name__}: {exc}") from None


def _parse(raw: bytes) -> dict[str, Any]:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    sender = getaddresses([str(msg.get("From", ""))])
    if not msg.keys() or not sender or "@" not in sender[0][1]:
        raise MailError("the message has no From address; is this an RFC 5322 message?")
    name, address = sender[0]
    message_id = (_ids(msg.get("Message-ID")) or [None])[0]
    if message_id is None:  # a stable id from the content, so a resend still deduplicates
        message_id = f"<{hashlib.sha256(raw).hexdigest()}@inbox.invalid>"
    try:
        sent = parsedate_to_datetime(str(msg["Date"])).timestamp() if msg.get("Date") else None
    except (TypeError, ValueError, OverflowError):  # a bad date is not a reason to refuse the message
        sent = None
    text = html = ""
    try:
        plain = msg.get_body(preferencelist=("plain",))
        rich = msg.get_body(preferencelist=("html",))
        text = plain.get_content() if plain is not None else ""
        html = rich.get_content() if rich is not None else ""
        attachments = []
        for part in msg.iter_attachments():
            data = part.get_payload(decode=True) or b""
            attachments.append({"name": part.get_filename() or "attachment", "data": data})
    except (LookupError, ValueError, AttributeError) as exc:  # unknown charset, broken encoding
        raise MailError(f"cannot decode the message body: {exc}") from None
    return {
        "message_id": message_id,
        "in_reply_to": (_ids(msg.get("In-Reply-To")) or [None])[0],
        "references": _ids(msg.get("References")),
        "subject": str(msg.get("Subject", "")).strip(),
        "from_addr": address.lower(), "from_name": name,
        "to": [a.lower() for _, a in getaddresses([str(v) for v in msg.get_all("To", [])]) if a],
        "sent_at": sent, "text": text, "html": html, "attachments": attachments,
    }
