"""``inbox serve | init | demo | audit verify | listen``: configuration by flags, then INBOX_* variables, then defaults."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import sys
import time
from pathlib import Path

from auth.passwords import Hasher

from . import logs
from .config import Config
from .store.db import Database

log = logging.getLogger("inbox")


def _config(args: argparse.Namespace) -> Config:
    return Config.from_env(data_dir=Path(args.data_dir) if args.data_dir else None,
                           host=getattr(args, "host", None), port=getattr(args, "port", None))


async def _with_db(config: Config, fn):
    db = Database(config.db_path, synchronous=config.sqlite_synchronous)
    await db.open()
    try:
        return await fn(db, Hasher(time_cost=config.argon2_time_cost, memory_cost=config.argon2_memory_kib))
    finally:
        await db.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .app import create_app

    config = _config(args)
    logs.setup(config.log_level)
    loop = None
    try:
        import uvloop  # the faster loop when the platform has it
        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    log.info("starting", extra={"host": config.host, "port": config.port, "db": str(config.db_path)})
    app = create_app(config)
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(app, host=config.host, port=config.port, loop=loop,
                access_log_class=logs.AccessLogger, print=None, shutdown_timeout=10)
    return 0


async def _freeze_startup_objects(app) -> None:
    """Keep the garbage collector's full collections rare. A full collection walks every tracked
    object with the loop stopped: with 1,000 sockets, 15-20 ms, and at a high message rate one came
    every 2 s, each freeing nothing (measured with gc.callbacks in the fan-out bench). So: move
    everything allocated at start-up (modules, routes, caches: ~60,000 objects) out of its sight,
    and collect the young generation less often (10,000 allocations, not 700), which gives request
    and event objects time to die young instead of being promoted; then none came in the bench."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    gc.callbacks.append(_GcWatch())


class _GcWatch:
    """Logs every collection that stops the loop for 5 ms or more (a full one, usually): such a pause
    delays every delivery in flight, so it should be visible in the logs rather than guessed at."""

    SLOW = 0.005

    def __init__(self) -> None:
        self.started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = time.perf_counter() - self.started
        if took >= self.SLOW:
            log.warning("slow garbage collection", extra={"generation": info["generation"],
                                                           "ms": round(took * 1000, 1),
                                                           "collected": info["collected"]})


def cmd_init(args: argparse.Namespace) -> int:
    from .workspace import SetupError, init_workspace

    config = _config(args)
    password = os.environ.get("INBOX_ADMIN_PASSWORD") or getpass.getpass("Password for the first admin: ")
    try:
        uid = asyncio.run(_with_db(config, lambda db, h: init_workspace(
            db, h, config, name=args.workspace, email=args.email, admin_name=args.name, password=password)))
    except SetupError as exc:
        print(f"inbox init: {exc}", file=sys.stderr)
        return 2
    print(f"Workspace {args.workspace!r} created in {config.data_dir}; administrator {args.email} (user {uid}).")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import load_demo, logins

    config = _config(args)
    created = asyncio.run(_with_db(config, lambda db, h: load_demo(db, h, config)))
    print("Demo workspace " + ("created" if created else "already present") + f" in {config.data_dir}.")
    print("Sign in with:")
    for email, password, what in logins():
        print(f"  {email:<22} {password:<18} ({what})")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Exit 0: intact; 1: the chain breaks (the row is named); 2: the log could not be read."""
    import sqlite3

    from .store.activity import verify_file

    path = _config(args).db_path
    if not path.is_file():
        print(f"inbox audit verify: no database at {path}", file=sys.stderr)
        return 2
    def progress(n: int) -> None:  # stderr, so stdout holds only the verdict
        print(f"... {n} rows verified", file=sys.stderr, flush=True)

    try:
        broken, walk = verify_file(path, progress=progress, every=args.progress_every)
    except sqlite3.Error as exc:
        print(f"inbox audit verify: cannot read the activity log in {path}: {exc}", file=sys.stderr)
        return 2
    if broken:
        print(f"Activity log BROKEN at row {broken.row_id}: {broken.reason}. "
              f"The {walk.rows} rows before it are intact.")
        return 1
    # A hash chain cannot show that rows were cut off the end: keep the head hash somewhere else and
    # compare it with the next run.
    print(f"Activity log intact: {walk.rows} rows; head hash {walk.prev}.")
    return 0


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return int(raw)


def cmd_listen(args: argparse.Namespace) -> int:
    from .listen import listen

    if not args.token:
        print("give --token (or INBOX_TOKEN): sign in with POST /api/v1/auth/login", file=sys.stderr)
        return 2
    try:
        return asyncio.run(listen(args.url, args.token, args.last_event_id))
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP and websocket server")
    serve.add_argument("--host", help="address to listen on (INBOX_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (INBOX_PORT, default 8080)")
    serve.add_argument("--data-dir", help="where the database and media live (INBOX_DATA_DIR, default ./data)")
    serve.set_defaults(fn=cmd_serve)

    init = sub.add_parser("init", help="create the workspace and its first administrator")
    init.add_argument("--data-dir")
    init.add_argument("--workspace", default="Workspace")
    init.add_argument("--email", required=True)
    init.add_argument("--name", required=True)
    init.set_defaults(fn=cmd_init)

    demo = sub.add_parser("demo", help="load a demo workspace (once) and print its logins")
    demo.add_argument("--data-dir")
    demo.set_defaults(fn=cmd_demo)

    audit = sub.add_parser("audit", help="check the activity log").add_subparsers(dest="audit", required=True)
    verify = audit.add_parser("verify", help="walk the hash chain; exit 1 and name the first bad row if broken")
    verify.add_argument("--data-dir")
    verify.add_argument("--progress-every", type=_positive, default=100_000, metavar="N",
                        help="print a progress line on stderr every N rows (default 100000)")
    verify.set_defaults(fn=cmd_audit_verify)

    listen = sub.add_parser("listen", help="print a user's live events as JSON lines (resumes after drops)")
    listen.add_argument("--token", default=os.environ.get("INBOX_TOKEN"),
                        help="a session token from POST /api/v1/auth/login (or INBOX_TOKEN)")
    listen.add_argument("--url", default="ws://127.0.0.1:8080/api/v1/ws")
    listen.add_argument("--last-event-id", type=int, default=None, help="resume after this event id")
    listen.set_defaults(fn=cmd_listen)

    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
