"""A full disk (issue 13, point 11): the real server, its data directory on a real 6 MB filesystem
filled to the last byte. A media write (ENOSPC) and a database write (SQLITE_FULL) each answer 507
as a problem, log one structured line, store nothing and leave no temporary file; once space frees,
the same requests succeed without a restart."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess

import pytest

from live_server import LiveServer

from media.storage import MediaStore


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs root, to mount a 6 MB tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a real full disk needs a small tmpfs, and mount refused: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk) -> os.PathLike:
    """Take every free byte of ``disk`` with one ballast file; return its path."""
    ballast = disk / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
    return ballast


def leftovers(data) -> list[str]:
    """Temporary files a failed write left behind (ours end in .tmp; SQLite's journal is -journal)."""
    return [str(p) for p in data.rglob("*") if p.name.endswith((".tmp", "-journal"))]


def rows(data, sql: str, params=()) -> list:
    with sqlite3.connect(data / "inbox.sqlite3") as db:
        return db.execute(sql, params).fetchall()


def assert_insufficient_storage(status: int, headers: dict, body) -> None:
    assert status == 507, (status, body)
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["type"].endswith("/insufficient-storage") and body["status"] == 507
    assert int(headers["Retry-After"]) > 0


@pytest.mark.timeout(180)
async def test_a_full_disk_answers_507_stores_nothing_and_recovers_without_a_restart(tmp_path, small_disk):
    data = small_disk / "data"
    log_path = tmp_path / "server.log"
    server = LiveServer(data, log_path)
    await server.start()
    try:
        channel = await server.channel()
        status, _, body = await server.deliver(channel, {"id": "before", "from": {"handle": "+1"}, "text": "hi"})
        assert status == 201, body
        pid = server.proc.pid
        ballast = fill(small_disk)

        # Media: the file write itself fails (ENOSPC).
        upload = os.urandom(512 * 1024)
        status, headers, body = await server.request("POST", "/api/v1/media?name=big.bin", data=upload)
        assert_insufficient_storage(status, headers, body)
        assert rows(data, "SELECT count(*) FROM media") == [(0,)]
        assert leftovers(data) == []
        assert [p for p in data.glob("media/**/*") if p.is_file()] == []

        # SQLite: deliveries until the WAL can no longer grow (SQLITE_FULL); none may be a 500.
        refused = None
        for i in range(300):
            payload = {"id": f"full-{i}", "from": {"handle": "+1"}, "text": f"{i} " + "x" * 19_990}
            status, headers, body = await server.deliver(channel, payload)
            if status != 201:
                assert_insufficient_storage(status, headers, body)
                refused = payload
                break
        assert refused is not None, "the disk never filled up"
        assert rows(data, "SELECT count(*) FROM inbound_ids WHERE provider_id = ?", (refused["id"],)) == [(0,)]
        assert leftovers(data) == []

        # One structured line per refusal, naming what failed; no traceback, no "unhandled error".
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        full = [line for line in lines if line["msg"] == "out of disk space"]
        assert [(line["level"], line["status"], line["path"]) for line in full] == [
            ("error", 507, "/api/v1/media"), ("error", 507, f"/hooks/chat/{channel['id']}")]
        assert full[0]["storage"] == "files" and full[1]["storage"] == "database"
        assert not [line for line in lines if line["msg"] == "unhandled error" or "exc" in line], lines[-3:]

        # Space frees: the same requests now succeed, in the same process.
        os.unlink(ballast)
        status, _, body = await server.request("POST", "/api/v1/media?name=big.bin", data=upload)
        assert status == 201, body
        status, _, body = await server.deliver(channel, refused)
        assert status == 201 and body["duplicate"] is False, body
        assert server.proc.pid == pid and server.proc.returncode is None
        assert leftovers(data) == []
    finally:
        await server.stop()


def test_a_media_write_that_runs_out_of_space_removes_its_temporary_file(small_disk):
    store = MediaStore(small_disk / "media")
    store.save(b"first")  # the directories exist, so only the file write can fail
    fill(small_disk)
    with pytest.raises(OSError) as raised:
        store.save(os.urandom(256 * 1024))
    assert raised.value.errno == 28
    assert [p for p in (small_disk / "media").rglob("*") if p.is_file()] == \
        [store.path(hashlib.sha256(b"first").hexdigest())]
