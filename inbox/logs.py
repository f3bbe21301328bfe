"""Structured logs: one JSON object per line, with whatever ``extra`` a call site passes."""

from __future__ import annotations

import logging
import sys

import orjson
from aiohttp.abc import AbstractAccessLogger

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class AccessLogger(AbstractAccessLogger):
    """aiohttp access log as structured lines."""

    def log(self, request, response, duration: float) -> None:
        self.logger.info("request", extra={"method": request.method, "path": request.path,
                                           "status": response.status, "ms": round(duration * 1000, 2),
                                           "remote": request.remote})



