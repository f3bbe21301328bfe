"""Content-Disposition for any file name: RFC 6266 with an RFC 5987 ``filename*`` (issue 13 point 14)."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FAST_HASHING
from test_ingest import PDF

from inbox.api.media_routes import content_disposition


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


ATTR_CHAR = "A-Za-z0-9!#$&+.^_`|~-"
EXT_VALUE = re.compile(rf"UTF-8''((?:[{ATTR_CHAR}]|%[0-9A-F]{{2}})*)")  # RFC 5987 ext-value, charset UTF-8
QUOTED = re.compile(r'"((?:[\t !#-\[\]-~])*)"')                          # RFC 7230 quoted-string, no escapes
HEADER = re.compile(rf'(inline|attachment); filename={QUOTED.pattern}; filename\*={EXT_VALUE.pattern}')


@settings(max_examples=500, deadline=None)
@given(name=st.text(max_size=60), inline=st.booleans())
def test_content_disposition_follows_rfc_6266_and_5987_for_any_name(name, inline):
    header = content_disposition("inline" if inline else "attachment", name)
    match = HEADER.fullmatch(header)
    assert match, header
    assert unquote(match.group(3), encoding="utf-8", errors="strict") == name   # the exact name comes back
    assert len(match.group(2)) == len(name)    # one fallback character for each character of the name
    assert not set("%/") & set(match.group(2))  # no %xx for old browsers to decode, no path (RFC 6266 D)


async def test_a_download_names_the_file_with_slashes_escaped(api, admin):
    r = await api.call("POST", "/api/v1/media", params={"name": "a/b ü;\"x\".pdf"}, data=PDF, who=admin)
    download = await api.get(f"/api/v1/media/{r.body['id']}", who=admin)
    assert download.headers["Content-Disposition"] == \
        "attachment; filename=\"a_b _;_x_.pdf\"; filename*=UTF-8''a%2Fb%20%C3%BC%3B%22x%22.pdf"
