"""/media: upload (size-limited, type sniffed), download (checked by the permission core, served
with Content-Disposition and nosniff), and short-lived signed links."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from aiohttp import web

from media.links import signature, valid
from media.sniff import INLINE

from ..actions import media
from ..keys import CONFIG, DB, MEDIA, SEALER
from ..store import media as media_rows
from ..store import security as security_rows
from .common import actor, iso, subject_of
from .identity import check_gates, identity
from .problems import Problem, forbidden, invalid
from .responses import Media, MediaLink
from .routing import Access, int_id, json_response, registry

route = registry.route


def _too_large(limit: int) -> Problem:
    return Problem(413, "too-large", "Too large", f"The body is over the limit of {limit} bytes.")


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` (before any other work)."""
    length = request.content_length
    if length is not None:
        if length > limit:
            raise _too_large(limit)
        # The HTTP parser ends the body at Content-Length, so it cannot outgrow the check: read it whole.
        return await request.content.read()
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):  # chunked encoding: count as it comes
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def media_json(row) -> dict:
    return {"id": row["id"], "type": row["type"], "name": row["name"], "size": row["size"],
            "created_at": iso(row["created_at"])}


@route("POST", "/api/v1/media", response=Media, access=Access.USER, tag="media", status=201,
       summary="Upload a file (raw body; ?name= for its file name); the type is sniffed from the bytes")
async def upload(request: web.Request) -> web.Response:
    subject = await subject_of(request)
    if not subject.rights.files_access:
        raise forbidden("Uploading files needs files access.")
    name = request.query.get("name", "file")[:255]
    if set(request.query) - {"name"}:
        raise invalid("only ?name= is accepted", [{"path": "query", "message": "unknown parameter"}])
    config = request.app[CONFIG]
    data = await read_capped(request, config.media_max_bytes)
    if not data:
        raise invalid("the file is empty", [{"path": "body", "message": "empty"}])
    mid = await media.do_upload(request.app[DB], request.app[MEDIA], actor(request), data, name,
                                max_pixels=config.media_max_pixels)
    row = await media_rows.get(request.app[DB], mid)
    return json_response(media_json(row), status=201)


# RFC 5987 attr-char beyond what ``quote`` always keeps (letters, digits, "_.-~"). Its default safe
# "/" is not one: left bare, it makes ``filename*`` invalid, and strict clients drop the name.
ATTR_CHAR_EXTRA = "!#$&+^`|"


def content_disposition(disposition: str, name: str) -> str:
    """RFC 6266: an ASCII fallback (a quoted-string, one character for each of the name's) and the
    exact name as an RFC 5987 ``ext-value`` in UTF-8 (checklist 29)."""
    # Not '%' (old browsers decode %xx in the fallback, RFC 6266 appendix D) nor path separators.
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\%/' else "_" for c in name)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe=ATTR_CHAR_EXTRA)}"


def file_response(request: web.Request, row) -> web.FileResponse:
    path = request.app[MEDIA].path(row["sha256"])
    disposition = "inline" if row["type"] in INLINE else "attachment"
    headers = {"Content-Type": row["type"], "X-Content-Type-Options": "nosniff",
               "Content-Disposition": content_disposition(disposition, row["name"]),
               "Cache-Control": "private, no-store"}
    return web.FileResponse(path, headers=headers)


@route("GET", "/api/v1/media/{id}", media="*/*", access=Access.USER, tag="media",
       summary="Download a file: needs files access and access to a chat or email it belongs to")
async def download(request: web.Request) -> web.StreamResponse:
    row = await media.require_download(request.app[DB], await subject_of(request), int_id(request))
    return file_response(request, row)


def _link_key(request: web.Request) -> bytes:
    return hashlib.sha256(b"media-links:" + request.app[SEALER].key_bytes).digest()


@route("POST", "/api/v1/media/{id}/link", response=MediaLink, access=Access.USER, tag="media",
       summary="A signed download URL for clients that cannot send headers (valid a few minutes)")
async def make_link(request: web.Request) -> web.Response:
    mid = int_id(request)
    await media.require_download(request.app[DB], await subject_of(request), mid)
    uid = identity(request).user_id
    expires = int(request.app[CONFIG].clock() + request.app[CONFIG].media_link_seconds)
    sig = signature(_link_key(request), mid, uid, expires)
    return json_response({"url": f"/api/v1/media/{mid}/signed?user={uid}&expires={expires}&sig={sig}",
                          "expires_at": iso(expires)})


@route("GET", "/api/v1/media/{id}/signed", media="*/*", access=Access.PUBLIC, tag="media",
       summary="Download through a signed link; refused once expired, for another file, or without access")
async def signed_download(request: web.Request) -> web.StreamResponse:
    from ..actions.access import load_subject

    mid = int_id(request)
    q = request.query
    try:
        uid, expires, sig = int(q.get("user", "")), int(q.get("expires", "")), q.get("sig", "")
    except ValueError:
        raise forbidden("The link is not valid.") from None
    if not valid(_link_key(request), mid, uid, expires, sig, request.app[CONFIG].clock()):
        raise forbidden("The link is not valid or has expired; ask for a new one.")
    db = request.app[DB]
    user = await security_rows.gate_facts(db, uid)
    if user is None or not user["is_active"]:
        raise forbidden("The link is not valid.")
    # A link is a door like any other: the IP whitelist and required 2FA apply to whoever uses it.
    check_gates(request, security_rows.policy_of(user["workspace_settings"]), has_2fa=bool(user["has_2fa"]))
    subject = await load_subject(db, uid, is_admin=bool(user["is_admin"]))
    return file_response(request, await media.require_download(db, subject, mid))
