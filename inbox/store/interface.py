"""What a storage backend provides, as typed protocols: the seam a second backend (PostgreSQL, issue
15) implements beside ``db.Database`` (SQLite). Actions see a ``Store`` and, inside a write job, a
``Tx``; the realtime hub sees the store's ``EventBus``.

The contract beyond the signatures:
- ``Store.write(job)`` runs the job in one transaction and returns after COMMIT; a job only awaits
  its ``Tx`` (no network, no sleeps), and what must happen after COMMIT goes through
  ``Tx.on_commit``.
- Events are published after COMMIT, in commit order, with ids that follow commit order.
- Reads see every write whose ``write`` has returned.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol, Sequence, TypeVar, runtime_checkable

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]
Listener = Callable[[Any], None]


@runtime_checkable
class Reads(Protocol):
    async def fetchone(self, sql: str, params: Params = ()) -> Any: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]: ...

    async def fetchval(self, sql: str, params: Params = ()) -> Any: ...


@runtime_checkable
class Tx(Reads, Protocol):
    """The write connection as one job sees it, inside the batch's transaction."""

    async def execute(self, sql: str, params: Params = ()) -> Any: ...

    async def executemany(self, sql: str, rows: Any) -> None: ...

    async def insert(self, sql: str, params: Params = ()) -> int: ...

    def on_commit(self, callback: Callable[[], Any]) -> None: ...

    def nudge(self, name: str) -> None: ...

    def publish(self, event: Any) -> None: ...


@runtime_checkable
class EventBus(Protocol):
    """Committed events to every listener, in commit order: in one process (``bus.LocalBus``), or
    across processes (a Redis bus: issue 15)."""

    def subscribe(self, listener: Listener) -> None: ...

    def publish(self, event: Any) -> None: ...


@runtime_checkable
class Store(Reads, Protocol):
    bus: EventBus
    nudges: dict[str, Callable[[], None]]

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...

    async def read(self, fn: Callable[[Any], T]) -> T: ...

    async def cached_row(self, table: str, row_id: int) -> Any: ...
