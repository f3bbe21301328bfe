"""The writer's contract (inbox/store/db.py): a batch is one transaction run in the writer thread; a
job's future resolves after COMMIT; a failing job rolls back alone; a failing COMMIT fails the whole
batch; on-commit callbacks run on the event loop; a job that awaits anything but its Tx fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from inbox.store.db import Database, Tx


@pytest.fixture
async def db(tmp_path):
    database = Database(tmp_path / "t.sqlite3")
    await database.open()
    await database.write(lambda tx: tx.execute("CREATE TABLE t (v TEXT NOT NULL)"))
    yield database
    await database.close()


def _insert(value: str):
    async def job(tx: Tx) -> int:
        return await tx.insert("INSERT INTO t (v) VALUES (?)", (value,))
    return job


async def _values(db: Database) -> list[str]:
    return [r[0] for r in await db.fetchall("SELECT v FROM t ORDER BY rowid")]


async def test_jobs_waiting_together_share_one_commit_and_a_failing_job_rolls_back_alone(db):
    async def failing(tx: Tx) -> None:
        await tx.execute("INSERT INTO t (v) VALUES ('undone')")
        raise ValueError("no")

    before = db.commits
    results = await asyncio.gather(db.write(_insert("a")), db.write(failing), db.write(_insert("b")),
                                   return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert db.commits == before + 1
    assert await _values(db) == ["a", "b"]


async def test_a_job_that_awaits_something_else_fails_alone_with_a_clear_error(db):
    async def sleeps(tx: Tx) -> None:
        await tx.execute("INSERT INTO t (v) VALUES ('undone')")
        await asyncio.sleep(0)

    results = await asyncio.gather(db.write(_insert("a")), db.write(sleeps), db.write(_insert("b")),
                                   return_exceptions=True)
    assert isinstance(results[1], RuntimeError) and "only await Tx methods" in str(results[1])
    assert await _values(db) == ["a", "b"]
    assert await db.write(_insert("c"))  # the writer is still healthy


async def test_on_commit_runs_on_the_loop_after_commit_and_never_for_a_failed_job(db):
    seen: list[tuple[str, bool, list[str]]] = []
    loop_thread = threading.get_ident()

    def check(name: str) -> None:
        # A connection of its own sees only committed data.
        other = sqlite3.connect(db.path)
        try:
            rows = [r[0] for r in other.execute("SELECT v FROM t ORDER BY rowid")]
        finally:
            other.close()
        seen.append((name, threading.get_ident() == loop_thread, rows))

    def job(name: str, fail: bool):
        async def run(tx: Tx) -> None:
            await tx.execute("INSERT INTO t (v) VALUES (?)", (name,))
            tx.on_commit(lambda: check(name))
            if fail:
                raise ValueError(name)
        return run

    await asyncio.gather(db.write(job("x", False)), db.write(job("y", True)), return_exceptions=True)
    assert seen == [("x", True, ["x"])]


async def test_a_failing_commit_fails_every_job_of_the_batch_and_keeps_none(db):
    # A deferred foreign key is checked only at COMMIT: every job succeeds, then the COMMIT fails.
    await db.write(lambda tx: tx.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
    await db.write(lambda tx: tx.execute(
        "CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"))
    before = db.commits
    results = await asyncio.gather(db.write(_insert("a")),
                                   db.write(lambda tx: tx.execute("INSERT INTO child (p) VALUES (42)")),
                                   return_exceptions=True)
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert db.commits == before
    assert await _values(db) == []
    assert await db.fetchval("SELECT count(*) FROM child") == 0
    assert await db.write(_insert("after"))  # the next batch commits as usual
    assert await _values(db) == ["after"]


async def test_tx_execute_gives_rowcount_and_lastrowid(db):
    await db.write(_insert("a"))
    await db.write(_insert("b"))
    cur = await db.write(lambda tx: tx.execute("UPDATE t SET v = v || '!'"))
    assert cur.rowcount == 2
    cur = await db.write(lambda tx: tx.execute("INSERT INTO t (v) VALUES ('c')"))
    assert cur.lastrowid == 3


async def test_read_runs_a_function_on_a_reader_connection(db):
    await db.write(_insert("a"))
    assert await db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 1
    with pytest.raises(sqlite3.OperationalError):  # readers are query-only
        await db.read(lambda conn: conn.execute("INSERT INTO t (v) VALUES ('no')"))


async def test_a_caller_cancelled_while_waiting_does_not_stop_its_job(db):
    waiting = asyncio.ensure_future(db.write(_insert("kept")))
    await asyncio.sleep(0)  # queued
    waiting.cancel()
    assert await db.write(_insert("next"))  # runs after the cancelled caller's batch
    assert await _values(db) == ["kept", "next"]
    assert waiting.cancelled()


async def test_committed_rows_reach_the_database_file_soon_without_a_checkpoint_in_any_commit(db, tmp_path):
    """The checkpointer copies the WAL into the database file shortly after commits; the writer's own
    automatic checkpoint (inside a COMMIT) is a far-off backstop, so 50 small commits never trigger it.
    Seen from outside: a copy of the database file alone (no -wal), as a naive backup takes it, is current."""
    for i in range(50):
        await db.write(_insert(f"v{i}"))
    copy = tmp_path / "file-only.sqlite3"
    rows = -1
    for _ in range(100):  # the checkpointer runs within a quarter second of a commit
        copy.write_bytes(db.path.read_bytes())
        conn = sqlite3.connect(copy)
        try:
            rows = conn.execute("SELECT count(*) FROM t").fetchone()[0]
        except sqlite3.OperationalError:  # not even the table reached the file yet
            rows = -1
        finally:
            conn.close()
            for extra in tmp_path.glob("file-only.sqlite3-*"):
                extra.unlink()
        if rows == 50:
            break
        await asyncio.sleep(0.05)
    assert rows == 50
    assert db.checkpoints >= 1
