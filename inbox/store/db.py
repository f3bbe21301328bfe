"""SQLite access: one writer thread that owns the write connection, and a pool of reader threads.

Writes are *jobs* (async functions given a ``Tx``). The writer takes the jobs that are waiting and
runs them as one ``BEGIN IMMEDIATE`` transaction, each inside its own SAVEPOINT so a failing job rolls
back alone, then commits once (group commit: a commit per row gives a few thousand rows/s, batching
far more). A job's future resolves only after COMMIT, so a handler that awaits ``db.write`` answers
2xx only for durable data; a failing COMMIT fails every job of its batch.

Why a batch runs in one thread, in one hop: a thread hand-off costs tens of microseconds, far more
than a typical statement, and with a hop per statement a delivery spent most of its CPU switching
threads. So the whole batch (BEGIN, every job's statements, COMMIT) runs in one dedicated thread on
a plain ``sqlite3`` connection, and the event loop waits for it once. The ``Tx`` methods stay
``async`` (every job is written as a coroutine) but never suspend, so the thread drives each job's
coroutine to completion with ``send(None)``. A job that awaits anything else (a sleep, a future,
the network) is failed alone with a RuntimeError: jobs must only touch the database, and anything
slow inside one stalls every write behind it.

Job code runs in the writer thread, so it must not touch event-loop state: what has to happen on
the loop (publishing events to the hub) goes through ``Tx.on_commit``, whose callbacks run on the
loop thread after COMMIT, in job order, as do the futures' results.

Reads run on their own connections (WAL lets them run beside the writer), one hop per read.

WAL checkpoints (copying committed pages from the WAL into the database file, then a fsync of that
file) run in a thread of their own, off the commit path. SQLite's default runs one inside whichever
COMMIT crosses 1,000 WAL pages, so one write in a few hundred waited milliseconds for it. The
checkpointer is PASSIVE: it never blocks the writer or a reader, and whatever it cannot copy yet it
copies on its next round. The writer keeps an automatic checkpoint only as a backstop, far above
what the checkpointer lets the WAL reach, in case the checkpointer cannot keep up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Sequence, TypeVar

from .bus import LocalBus
from .interface import EventBus
from .migrate import apply_migrations
from .rowcache import RowCache
from .space import out_of_space

log = logging.getLogger("inbox.store")
T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]

# Larger batches amortise the fsync further but delay the first job's answer; 256 keeps a batch
# within a few tens of milliseconds of SQLite work for typical jobs.
MAX_BATCH = 256
# At most one checkpoint per interval, and only after commits: a round is two fsyncs, and running
# one per commit would double the disk flushes of a busy writer.
CHECKPOINT_INTERVAL = 0.25
BACKSTOP_AUTOCHECKPOINT = 20_000  # pages (80 MB of WAL): reached only if the checkpointer falls behind

_SUSPENDED = ("a write job awaited something other than its Tx; jobs may only await Tx methods "
              "(they run to completion in the writer thread, which has no event loop)")


class Tx:
    """The write connection as seen by one job, inside its savepoint. Used only in the writer thread."""

    __slots__ = ("_conn", "_after_commit", "_bus", "_nudges")

    def __init__(self, conn: sqlite3.Connection, bus: EventBus | None = None,
                 nudges: dict[str, Callable[[], None]] | None = None) -> None:
        self._conn = conn
        self._after_commit: list[Callable[[], Any]] = []
        self._bus = bus if bus is not None else LocalBus()
        self._nudges = nudges if nudges is not None else {}

    async def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._conn.executemany(sql, rows)

    async def insert(self, sql: str, params: Params = ()) -> int:
        return self._conn.execute(sql, params).lastrowid

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return self._conn.execute(sql, params).fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def on_commit(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` on the event loop after this job's data is committed (never if it rolls back)."""
        self._after_commit.append(callback)

    def nudge(self, name: str) -> None:
        """After commit, wake whoever registered ``name`` in ``Database.nudges`` (the outbox worker
        waits on new rows this way instead of polling); nothing when nobody did."""
        waker = self._nudges.get(name)
        if waker is not None:
            self._after_commit.append(waker)

    def publish(self, event: Any) -> None:
        """Hand a committed event to the database's bus (the websocket hub listens there). Call it
        from an ``on_commit`` callback: listeners live on the event loop."""
        self._bus.publish(event)


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Tx], Awaitable[Any]], future: asyncio.Future) -> None:
        self.fn, self.future = fn, future


_STOP = object()


def _connect(path: Path, synchronous: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _private_files(path: Path) -> None:
    """The database holds every password hash and message: it is the owner's alone. SQLite gives its
    -wal and -shm files the database file's mode, so creating that file 0600 first covers all three
    whatever the umask; a file left readable by an older version is tightened."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)
        except FileNotFoundError:
            pass


def _drive(awaitable: Awaitable[T]) -> T:
    """Run a job's coroutine to completion without an event loop; it must never suspend."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise RuntimeError(_SUSPENDED)


def run_batch_sync(conn: sqlite3.Connection, batch: list[_Job], bus: EventBus,
                   nudges: dict[str, Callable[[], None]] | None = None
                   ) -> list[tuple[_Job, Tx, Any, BaseException | None]]:
    """One transaction for the whole batch, in the writer thread. Returns each job's outcome; raises
    (after rolling back) when the transaction itself fails, which fails every job."""
    outcomes: list[tuple[_Job, Tx, Any, BaseException | None]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for job in batch:
            tx = Tx(conn, bus, nudges)
            conn.execute("SAVEPOINT job")
            try:
                result = _drive(job.fn(tx))
            except Exception as exc:  # the job's own failure: undo it alone
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((job, tx, None, exc))
            else:
                conn.execute("RELEASE job")
                outcomes.append((job, tx, result, None))
        conn.execute("COMMIT")
    except BaseException:
        for _, tx, _, _ in outcomes:  # nothing will run them; see Database._run_batch
            tx._after_commit.clear()
        if conn.in_transaction:  # a failed COMMIT may already have rolled back
            try:
                conn.execute("ROLLBACK")
            except Exception:
                log.exception("rollback failed")
        raise
    return outcomes


class Database:
    def __init__(self, path: Path, *, readers: int = 3, synchronous: str = "FULL") -> None:
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = path
        self._n_readers = readers
        self._synchronous = synchronous
        self._writer: sqlite3.Connection | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._jobs: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._checkpoint_thread: ThreadPoolExecutor | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_task: asyncio.Task | None = None
        self._committed = asyncio.Event()  # set after each commit; the checkpointer waits on it
        self.checkpoints = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rows = RowCache()  # channels and inboxes, for webhooks: see rowcache.py
        self.commits = 0  # observable group-commit behaviour for benchmarks and metrics
        # Each committed event, in commit order (``Tx.publish``): the seam for fan-out, in process
        # today; a bus across processes (issue 15) implements the same ``interface.EventBus``.
        self.bus: EventBus = LocalBus()
        self.nudges: dict[str, Callable[[], None]] = {}  # see Tx.nudge

    async def open(self) -> None:
        _private_files(self.path)
        loop = self._loop = asyncio.get_running_loop()
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="inbox-db-writer")
        try:
            # Opened in the writer thread and, with check_same_thread, usable only there.
            self._writer = await loop.run_in_executor(self._write_thread, _connect, self.path, self._synchronous)
            await loop.run_in_executor(self._write_thread, apply_migrations, self._writer)
            await loop.run_in_executor(self._write_thread, self.rows.install, self._writer)
            await loop.run_in_executor(self._write_thread, self._writer.execute,
                                       f"PRAGMA wal_autocheckpoint={BACKSTOP_AUTOCHECKPOINT}")
        except BaseException:
            await self._close_writer()
            raise
        self._read_threads = ThreadPoolExecutor(self._n_readers, thread_name_prefix="inbox-db-reader")
        self._checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="inbox-db-checkpoint")
        self._task = asyncio.create_task(self._run_writer(), name="inbox-db-writer")
        self._checkpoint_task = asyncio.create_task(self._run_checkpointer(), name="inbox-db-checkpoint")

    async def close(self) -> None:
        if self._task is not None:
            self._jobs.put_nowait(_STOP)
            await self._task
            self._task = None
        await self._close_checkpointer()
        if self._read_threads is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._read_threads.shutdown, True)
            self._read_threads = None
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        await self._close_writer()

    async def _close_checkpointer(self) -> None:
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            try:
                await self._checkpoint_task
            except asyncio.CancelledError:
                pass
            self._checkpoint_task = None
        if self._checkpoint_thread is not None:
            # A round already running finishes first; closing the writer later checkpoints the rest.
            await asyncio.get_running_loop().run_in_executor(None, self._checkpoint_thread.shutdown, True)
            self._checkpoint_thread = None
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    async def _close_writer(self) -> None:
        if self._write_thread is None:
            return
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(self._write_thread, self._writer.close)
            self._writer = None
        self._write_thread.shutdown(wait=True)
        self._write_thread = None

    # --- writes ---

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``fn`` in a transaction on the write connection; return after COMMIT."""
        if self._task is None:
            raise RuntimeError("database is not open")
        future = self._loop.create_future()  # the loop kept at open: get_running_loop costs a getpid() on 3.11
        self._jobs.put_nowait(_Job(fn, future))
        # No shield needed: a caller cancelled while waiting cancels only this future; the job still
        # runs and commits, and the writer skips futures that are already done.
        return await future

    async def _run_writer(self) -> None:
        conn = self._writer
        assert conn is not None
        while True:
            first = await self._jobs.get()
            if first is _STOP:
                return
            batch = [first]
            stop_after = False
            while len(batch) < MAX_BATCH and not self._jobs.empty():
                nxt = self._jobs.get_nowait()
                if nxt is _STOP:
                    stop_after = True
                    break
                batch.append(nxt)
            await self._run_batch(conn, batch)
            if stop_after:
                return

    async def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(self._write_thread, run_batch_sync, conn, batch, self.bus,
                                                 self.nudges)
        except Exception as exc:
            self.rows.settle()
            if not out_of_space(exc):  # a full disk is reported once, by whoever awaited the job
                log.exception("write batch failed; rolled back %d jobs", len(batch))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.commits += 1
        self._committed.set()
        self.rows.settle()  # before any answer: whoever learns of a change never meets the old row
        for job, tx, result, exc in outcomes:
            callbacks, tx._after_commit = tx._after_commit, []
            # Emptied first: a callback usually closes over its Tx (``lambda: tx.publish(event)``), and
            # that cycle would leave every job's data to the cyclic collector instead of refcounting.
            if exc is None:
                for callback in callbacks:
                    try:
                        callback()
                    except Exception:
                        log.exception("after-commit callback failed")
            if job.future.done():
                continue
            if exc is not None:
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)

    # --- checkpoints ---

    def _checkpoint_round(self) -> None:
        """One PASSIVE checkpoint, in the checkpointer's thread, on its own connection."""
        if self._checkpoint_conn is None:
            # check_same_thread off only so close() can close it once the thread is gone.
            self._checkpoint_conn = _connect(self.path, self._synchronous, check_same_thread=False)
        self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    async def _run_checkpointer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._committed.wait()
            self._committed.clear()
            try:
                await loop.run_in_executor(self._checkpoint_thread, self._checkpoint_round)
                self.checkpoints += 1
            except sqlite3.Error as exc:  # e.g. the disk is full: the writer's backstop still bounds the WAL
                if out_of_space(exc):
                    log.warning("WAL checkpoint failed: out of disk space; will retry after the next commit")
                else:
                    log.exception("WAL checkpoint failed; will retry after the next commit")
            await asyncio.sleep(CHECKPOINT_INTERVAL)

    # --- reads (WAL lets them run beside the writer) ---

    def _reader(self) -> sqlite3.Connection:
        """This reader thread's own connection, opened on its first read."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread off only so close() can close it from the loop once the thread is gone.
            conn = _connect(self.path, self._synchronous, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in a reader thread: for reads that stream or take several statements."""
        if self._read_threads is None:
            raise RuntimeError("database is not open")
        return await asyncio.get_running_loop().run_in_executor(self._read_threads, lambda: fn(self._reader()))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return await self.read(lambda conn: conn.execute(sql, params).fetchone())

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self.read(lambda conn: conn.execute(sql, params).fetchall())

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def cached_row(self, table: str, row_id: int) -> sqlite3.Row | None:
        """``SELECT * FROM table WHERE id = ?`` from memory when it can be (channels and inboxes only)."""
        return await self.rows.get(self, table, row_id)
