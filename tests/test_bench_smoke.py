"""Every benchmark still runs: each bench under bench/ with ``--smoke --json`` as a subprocess (its own
servers and load generators included, tiny sizes, seconds), then the suite's report writer on the
figures they wrote. No timed assertions: the figures must be there and positive, not fast.

Exit status 2 means "ran, checks passed, a target missed", which is fine in a smoke run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

# The figures each bench must report (prefixes of "figure"), in the order it reports them.
EXPECTED = {
    "decisions": ["record-level permission decisions/s in process (vs pycasbin FastEnforcer)",
                  "record-level permission decisions/s in process (absolute)"],
    "leads_list": [f"one page of leads (median), {who}, {page} page"
                   for who in ("M user", "G user", "stage-restricted") for page in ("first", "deep")],
    "realtime_fanout": ["chat messages delivered/s to", "chat messages delivered/s to",
                        "publish-to-receive p99 at", "publish-to-receive p99 at",
                        "memory per idle authenticated websocket"],
    "webhooks": ["signed chat webhooks committed durably/s"],
    "outbound": ["outbound replies delivered/s to a local provider", "server CPU per outbound reply delivered",
                 "reply p99 on a live channel with a dead provider on another",
                 "live channel's 201-to-delivery p99 with a dead provider on another"],
}

_runs: dict[str, tuple[subprocess.CompletedProcess, dict | None, Path]] = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-smoke")


def run_bench(name: str, workdir: Path) -> tuple[subprocess.CompletedProcess, dict | None, Path]:
    """Run ``bench/<name>.py --smoke --json`` once per module (the report test reuses the output)."""
    if name not in _runs:
        out = workdir / f"{name}.json"
        argv = [sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--json", str(out)]
        if name in ("leads_list", "realtime_fanout"):
            argv += ["--cache-dir", str(workdir / "cache")]   # a workspace of its own, built in a second
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150)
        data = json.loads(out.read_text()) if out.exists() else None
        _runs[name] = (proc, data, out)
    return _runs[name]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_bench_smoke_run_writes_its_figures(name: str, workdir: Path) -> None:
    proc, data, _ = run_bench(name, workdir)
    assert proc.returncode in (0, 2), f"{name} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert data is not None, f"{name} wrote no JSON\n{proc.stdout[-2000:]}"
    assert data["bench"] == name and data["ok"] is True and data["smoke"] is True
    figures = data["figures"]
    assert len(figures) == len(EXPECTED[name])
    for f, prefix in zip(figures, EXPECTED[name]):
        assert f["figure"].startswith(prefix), (f["figure"], prefix)
        assert set(f) >= {"figure", "ours", "baseline", "unit", "ratio", "target", "met"}
        assert isinstance(f["met"], bool)
        assert f["target"].split()[0] in (">=", "<=")
        assert f["ours"] > 0, f
        if f["baseline"] is None:            # an absolute target: no ratio
            assert f["ratio"] is None
        else:
            assert f["baseline"] > 0 and f["ratio"] > 0, f
            assert f["ratio"] == pytest.approx(f["ours"] / f["baseline"], rel=0.01)


def test_decisions_smoke_checked_every_answer_against_pycasbin(workdir: Path) -> None:
    proc, data, _ = run_bench("decisions", workdir)
    assert data is not None and data["ok"], proc.stdout[-2000:]
    first = data["figures"][0]
    assert first["decisions_checked"] == 2000
    assert "0 disagreements" in proc.stdout
    assert 0 < first["allowed_share"] < 1          # the mix has both answers


@pytest.mark.timeout(240)
def test_suite_report_writer_renders_table_chart_and_keeps_the_page(workdir: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import suite
    finally:
        sys.path.remove(str(BENCH))
    results = tmp_path / "results"
    results.mkdir()
    for name in EXPECTED:
        _, data, out = run_bench(name, workdir)
        assert data is not None, name
        (results / out.name).write_text(out.read_text())
    outcomes, machine, _, smoke = suite.load_outcomes(results)
    assert [o.bench.name for o in outcomes] == list(EXPECTED) and smoke
    # a failed bench is marked in the table, and the others are still written
    outcomes.append(suite.Outcome(suite.Bench("broken", 1), "failed", 1, 0.5, [], "exit status 1", "broken.log"))

    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nHand-written intro.\n\n## Lists\n\nAnalysis that must stay.\n")
    chart = tmp_path / "performance.png"
    for _ in range(2):   # the second run replaces the block instead of adding one
        block = suite.write_report(outcomes, machine, 12.0, page, chart, smoke)
    text = page.read_text()
    assert text.count(suite.START) == 1 and text.count(suite.END) == 1
    assert text.startswith("# Performance\n\n" + suite.START)
    assert "Hand-written intro." in text and "Analysis that must stay." in text
    assert f"{machine['cores']} cores" in block and f"SQLite {machine['sqlite']}" in block
    assert "| figure | ours | baseline | ratio | target | met |" in block
    for prefixes in EXPECTED.values():
        for prefix in prefixes:
            assert f"| {prefix}" in block, prefix
    assert "**broken: FAILED**" in block
    assert "![ratio to target per figure](performance.png)" in block
    png = chart.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000

    # the command-line path: --render from saved JSON into another page
    page2 = tmp_path / "other.md"
    proc = subprocess.run([sys.executable, str(BENCH / "suite.py"), "--render", str(results), "--page", str(page2)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert suite.START in page2.read_text() and (tmp_path / "other.png").exists()
