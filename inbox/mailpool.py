"""Inbound email is parsed in worker processes, never on the event loop: the standard library's
parser is pure Python and CPU-bound, so on the loop one hostile message stalled every request, and
in a thread it would still hold the GIL. A worker gives each message a CPU-time budget on top of the
structural limits (``mail.Limits``): the parser has superlinear corners the limits cannot all
foresee, and past the budget the message is refused, not waited for.

One pool per server process, started on the first email with ``INBOX_MAIL_WORKERS`` processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import mail

_pool: ProcessPoolExecutor | None = None


class Unavailable(Exception):
    """A worker died under a message (killed, out of memory); the next message gets a new pool."""


async def parse(raw: bytes, limits: mail.Limits, *, workers: int, seconds: float) -> dict[str, Any]:
    global _pool
    if _pool is None:
        # spawn: a fork of a process running SQLite and event-loop threads is not safe.
        _pool = ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_start_worker)
    pool = _pool
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, _parse_within, raw, limits, seconds)
    except BrokenProcessPool:
        if _pool is pool:
            _pool = None
        pool.shutdown(wait=False)
        raise Unavailable("the email parser stopped; send the message again") from None


def _start_worker() -> None:
    signal.signal(signal.SIGVTALRM, _out_of_time)
    # A worker whose server was killed (SIGKILL skips every cleanup) exits instead of lingering.
    parent = multiprocessing.parent_process()
    if parent is not None:
        def exit_with_parent() -> None:
            parent.join()
            os._exit(0)
        threading.Thread(target=exit_with_parent, daemon=True).start()


def _out_of_time(signum, frame) -> None:
    raise _OverBudget()


class _OverBudget(BaseException):
    """Not an ``Exception``: nothing inside the parser (its own error boundary included) catches it."""


def _parse_within(raw: bytes, limits: mail.Limits, seconds: float) -> dict[str, Any]:
    """``mail.parse`` under a CPU-time alarm (ITIMER_VIRTUAL: the worker's own CPU, so a busy machine
    does not refuse mail that a quiet one accepts). Tasks run on the worker's main thread, where
    signal handlers run."""
    try:
        signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
        try:
            return mail.parse(raw, limits)
        finally:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    except _OverBudget:  # also when it rang just as the parse ended, before the timer was cleared
        raise mail.over(f"taken more than {seconds:g} s of CPU to parse", seconds, "INBOX_MAIL_PARSE_SECONDS") from None
