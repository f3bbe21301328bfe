"""The in-process event bus: each committed event to every listener of this process, in commit
order (``Tx.publish`` runs on the event loop after COMMIT). A bus across processes implements the
same ``interface.EventBus``."""

from __future__ import annotations

from typing import Any

from .interface import Listener


class LocalBus:
    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def publish(self, event: Any) -> None:
        for listener in self.listeners:
            listener(event)
