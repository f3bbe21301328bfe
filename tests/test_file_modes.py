"""The data directory is the owner's alone (issue 13, point 15): created 0700, and the database, its
WAL and shared-memory files, the server key and every media file 0600, whatever the umask."""

from __future__ import annotations

import base64
import stat

import pytest

from live_server import LiveServer
from test_media_dimensions import pillow


def modes(root) -> dict[str, tuple[bool, int]]:
    """Each path under ``root`` (``.`` for itself): whether it is a file, and its permission bits."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = p.stat()
        out[str(p.relative_to(root))] = (stat.S_ISREG(st.st_mode), stat.S_IMODE(st.st_mode))
    return out


@pytest.mark.timeout(90)
async def test_the_data_directory_and_everything_the_server_writes_are_private(tmp_path):
    data = tmp_path / "new" / "data"  # not there yet: the CLI creates it
    server = LiveServer(data, tmp_path / "server.log", umask=0o022)
    await server.start()
    try:
        channel = await server.channel()
        image = base64.b64encode(pillow("PNG", 3, 3)).decode()
        status, _, body = await server.deliver(channel, {"id": "m1", "from": {"handle": "+1555"}, "text": "hi",
                                                         "attachments": [{"name": "a.png", "data": image}]})
        assert status == 201, body
        status, _, body = await server.request("POST", "/api/v1/media?name=notes.txt", data=b"private notes")
        assert status == 201, body
        found = modes(data)  # while it runs, so the WAL and shared-memory files are there
    finally:
        await server.stop()
    files = {name for name, (is_file, _) in found.items() if is_file}
    assert {"inbox.sqlite3", "inbox.sqlite3-wal", "inbox.sqlite3-shm", "secret.key"} <= files
    assert len([name for name in files if name.startswith("media/")]) == 2
    loose = {name: oct(mode) for name, (is_file, mode) in found.items() if mode != (0o600 if is_file else 0o700)}
    assert loose == {}, f"readable by others: {loose}"


@pytest.mark.timeout(90)
async def test_a_database_left_readable_by_an_older_version_is_tightened_on_start(tmp_path):
    data = tmp_path / "data"
    server = LiveServer(data, tmp_path / "server.log", umask=0o022)
    await server.start()
    await server.stop()
    (data / "inbox.sqlite3").chmod(0o644)
    await server.start()
    try:
        status, _, body = await server.request("POST", "/api/v1/media?name=a.txt", data=b"x")  # writes the WAL
        assert status == 201, body
        found = modes(data)
    finally:
        await server.stop()
    assert {name: oct(mode) for name, (_, mode) in found.items() if name.startswith("inbox.sqlite3")} == \
        {"inbox.sqlite3": "0o600", "inbox.sqlite3-wal": "0o600", "inbox.sqlite3-shm": "0o600"}
