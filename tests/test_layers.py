"""The layers stay layered (issue 15): nothing below ``inbox/api`` imports from it, so actions, the
store, the hub and the delivery worker can be used without the HTTP layer, and errors come from
``inbox/errors.py``. Only the application (``app.py``) and the command line sit above ``api``."""

from __future__ import annotations

import ast
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
