"""The layers stay layered (issue 15): nothing below ``inbox/api`` imports from it, so actions, the
store, the hub and the delivery worker can be used without the HTTP layer, and errors come from
``inbox/errors.py``. Only the application (``app.py``) and the command line sit above ``api``. And
``inbox/store/`` is the only code that speaks SQL: a second backend replaces the store, nothing else."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
ABOVE_API = {"inbox/app.py", "inbox/cli.py", "inbox/__main__.py"}


def _imports(path: Path, package: str) -> list[str]:
    """Absolute names of every module a file of ``package`` imports (relative imports resolved)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append(name)
            found += [f"{name}.{alias.name}" for alias in node.names]
    return found


def test_nothing_below_api_imports_from_it():
    offenders = []
    for path in sorted((ROOT / "inbox").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("inbox/api/") or rel in ABOVE_API:
            continue
        package = ".".join(path.relative_to(ROOT).parts[:-1])
        bad = [name for name in _imports(path, package) if name == "inbox.api" or name.startswith("inbox.api.")]
        if bad:
            offenders.append(f"{rel}: {sorted(set(bad))}")
    assert not offenders, "modules below inbox/api import from it:\n" + "\n".join(offenders)


def test_the_check_sees_relative_and_absolute_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from ..api.problems import not_found\nfrom ..api import routing\nimport inbox.api.common\n")
    names = _imports(probe, "inbox.actions")
    assert {"inbox.api.problems", "inbox.api.routing", "inbox.api.common"} <= set(names)


# Statements and clauses as this code base writes them (keywords in capitals). Docstrings may talk
# about SQL; string literals anywhere else may not contain it.
SQL = re.compile(r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bDELETE\s+FROM\b|"
                 r"\bUPDATE\s+\w+\s+SET\b|\bCREATE\s+(TABLE|INDEX|TRIGGER)\b|\bPRAGMA\s+\w+|\bWHERE\b|\bJOIN\b")
PACKAGES = ("inbox", "auth", "media")


def _sql_literals(source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
            and SQL.search(node.value)]


def test_only_the_store_speaks_sql():
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("inbox/store/"):
                continue
            offenders += [f"{rel}:{line}: {text[:70]!r}" for line, text in _sql_literals(path.read_text())]
    assert not offenders, "SQL outside inbox/store/:\n" + "\n".join(offenders)


def test_the_sql_check_sees_statements_in_strings_and_f_strings_but_not_docstrings():
    probe = '''"""Talks about SELECT x FROM y in its docstring."""
def f(table, n):
    """So does this: DELETE FROM t."""
    a = "UPDATE users SET name = ? WHERE id = ?"
    b = f"SELECT * FROM {table} LIMIT {n}"
    c = "Delete a field (admin)"
    return a, b, c
'''
    assert [line for line, _ in _sql_literals(probe)] == [4, 5]


async def test_the_sqlite_store_is_a_store(tmp_path):
    """``inbox/store/interface.py`` is the contract a second backend implements; the SQLite one meets
    its shape (the behaviour is what the rest of the suite checks)."""
    from inbox.store.db import Database, Tx
    from inbox.store.interface import EventBus, Reads, Store
    from inbox.store.interface import Tx as TxProtocol

    db = Database(tmp_path / "shape.sqlite3")
    await db.open()
    try:
        assert isinstance(db, Store) and isinstance(db, Reads) and isinstance(db.bus, EventBus)
        seen = []
        db.bus.subscribe(seen.append)

        async def job(tx: Tx) -> None:
            assert isinstance(tx, TxProtocol)
            tx.on_commit(lambda: tx.publish("committed"))

        await db.write(job)
        assert seen == ["committed"]
    finally:
        await db.close()
