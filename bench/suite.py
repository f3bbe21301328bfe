"""Run every benchmark under bench/, each in its own process with a time budget, collect their
figures (``--json``) and write the summary of docs/performance.md and the chart docs/performance.png.

    .venv/bin/python bench/suite.py                  # everything (what `make bench` runs), < 10 minutes
    .venv/bin/python bench/suite.py --smoke          # each bench for about a second; report in bench/results/
    .venv/bin/python bench/suite.py --only decisions --only webhooks
    .venv/bin/python bench/suite.py --render bench/results   # rewrite the report from saved JSON only

Each bench is ``python bench/<name>.py --json FILE`` (plus ``--smoke``): its own servers and load
generators run as their own processes, as they always do; this process only starts it, shows its
output, stops it (its whole process group) when its budget or the suite's total runs out, and reads
the JSON. A bench that fails (exit status 1, killed, no JSON) is marked in the table and the others
still run and are written; then the suite exits 1. A target missed is a result, not a failure: the
exit status stays 0 (``--strict``: 2).

The summary is written between ``<!-- bench:summary:start -->`` and ``<!-- bench:summary:end -->`` in
the page (added under its title if missing); the rest of the page is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import common  # bench/common.py: this script's own folder is first on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
START, END = "<!-- bench:summary:start -->", "<!-- bench:summary:end -->"
TOTAL_BUDGET = 590.0        # seconds for the whole suite: `make bench` stays under 10 minutes


@dataclass
class Bench:
    name: str
    budget: float           # seconds, full run (cold caches included)
    smoke_budget: float = 60.0
    what: str = ""


# Order: the short in-process one first, then the servers. Budgets are ceilings measured with cold
# caches on the 2-core reference machine (docs/performance.md gives the last run's durations).
BENCHES = [
    Bench("decisions", 60, what="permission decisions in process vs pycasbin"),
    Bench("leads_list", 200, what="lead lists over 1,000,000 leads vs admin"),
    Bench("realtime_fanout", 300, what="1,000 websockets vs raw aiohttp broadcast"),
    Bench("webhooks", 130, what="signed durable webhooks vs no-op aiohttp POST"),
    Bench("outbound", 150, what="outbound replies to a local provider; reply p99 with a dead provider"),
]


@dataclass
class Outcome:
    bench: Bench
    status: str = "not run"        # "ok" | "failed" | "timeout" | "not run"
    exit_code: int | None = None
    seconds: float = 0.0
    figures: list[dict] = field(default_factory=list)
    note: str = ""
    log: str = ""
    others: float | None = None    # cores' worth of CPU that processes outside the bench used meanwhile

    def to_json(self) -> dict:
        return {"bench": self.bench.name, "status": self.status, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 1), "note": self.note, "log": self.log,
                "others_cores": None if self.others is None else round(self.others, 2), "figures": self.figures}


def say(msg: str = "") -> None:
    print(msg, flush=True)


# --- the machine -------------------------------------------------------------------------------

def machine() -> dict:
    cpu = common.cpu_model()
    usable = len(common.usable_cpus())
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"cores": usable, "cores_online": os.cpu_count(), "cpu": cpu, "arch": platform.machine(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "os": f"{platform.system()} {platform.release()}", "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


# --- running ----------------------------------------------------------------------------------

def machine_busy() -> float | None:
    """CPU seconds the whole machine has spent busy (not idle or waiting on I/O), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu() -> float:
    """CPU seconds of this process and of its waited-for children (a bench and the servers it stopped)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

def run_one(b: Bench, out_dir: Path, smoke: bool, budget: float, extra: list[str]) -> Outcome:
    """Run ``bench/<name>.py`` in its own process group, echo its output, stop it at ``budget``."""
    o = Outcome(b)
    json_path = out_dir / f"{b.name}.json"
    log_path = out_dir / f"{b.name}.log"
    json_path.unlink(missing_ok=True)
    o.log = str(log_path)
    argv = [sys.executable, "-u", str(HERE / f"{b.name}.py"), "--json", str(json_path)] + (["--smoke"] if smoke else [])
    argv += extra
    say(f"== {b.name} ({b.what}); budget {budget:.0f} s: {' '.join(argv[2:])}")
    busy0, own0 = machine_busy(), own_cpu()
    t = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)   # its servers and generators share its group
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        buf = b""
        timed_out = False
        while True:
            chunk = None
            try:
                chunk = proc.stdout.read()
            except BlockingIOError:
                pass
            if chunk:
                log.write(chunk.decode(errors="replace"))
                buf += chunk
                *lines, buf = buf.replace(b"\r", b"\n").split(b"\n")
                for line in lines:
                    if line.strip():
                        say(f"  {time.monotonic() - t:6.1f}s | {line.decode(errors='replace')}")
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
            if time.monotonic() - t > budget and proc.poll() is None:
                timed_out = True
                say(f"  {b.name}: over its budget of {budget:.0f} s; stopping its process group")
                _stop_group(proc)
        if buf.strip():
            say(f"  {time.monotonic() - t:6.1f}s | {buf.decode(errors='replace')}")
    o.seconds = time.monotonic() - t
    o.exit_code = proc.returncode
    busy1 = machine_busy()
    if busy0 is not None and busy1 is not None and o.seconds > 0:
        o.others = max(0.0, (busy1 - busy0 - (own_cpu() - own0)) / o.seconds)
    data = None
    if json_path.exists():
        try:
            data = json.loads(json_path.read_text())
        except ValueError as e:
            o.note = f"unreadable JSON: {e}"
    if timed_out:
        o.status, o.note = "timeout", f"stopped after its budget of {budget:.0f} s"
    elif o.exit_code not in (0, 2):
        o.status, o.note = "failed", f"exit status {o.exit_code}" + (f": {data.get('error')}" if data and data.get("error") else "")
    elif data is None:
        o.status, o.note = "failed", o.note or "no JSON written"
    elif not data.get("ok", False) or not data.get("figures"):
        o.status, o.note = "failed", data.get("error") or "its checks failed"
    else:
        o.status = "ok"
    if data:
        o.figures = data.get("figures", [])
    say(f"== {b.name}: {o.status} in {o.seconds:.1f} s" + (f" ({o.note})" if o.note else "")
        + (f"; other processes used {o.others:.2f} cores meanwhile" if o.others is not None else ""))
    return o


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGINT to the bench's process group (each bench stops its servers on it), SIGKILL after 15 s."""
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# --- the report -------------------------------------------------------------------------------

def _num(x, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, (int, float)) and x != x:
        return "nan"
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:,.1f}"
    else:
        s = f"{x:,.2f}"
    return f"{s} {unit}".strip()


def _threshold(target: str) -> tuple[str, float]:
    import re

    op, rest = target.split(None, 1)
    return op, float(re.match(r"[\d,.]+", rest.strip()).group().replace(",", ""))


def margin(f: dict) -> float | None:
    """How far a figure is from its target, as one number where >= 1 means met: ratio / threshold for
    ">=" targets, threshold / ratio for "<=" targets (for an absolute target, ``ours`` for the ratio)."""
    value = f.get("ratio") if f.get("baseline") is not None else f.get("ours")
    if value is None or value != value or not f.get("target"):
        return None
    op, th = _threshold(f["target"])
    if op == ">=":
        return value / th if th else None
    return th / value if value else None


def render_summary(outcomes: list[Outcome], m: dict, wall: float, chart_name: str | None, smoke: bool) -> str:
    lines = []
    add = lines.append
    add(START)
    add("## Summary (generated by `make bench`)")
    add("")
    add(f"Machine: **{m['cores']} cores** usable ({m['cores_online']} online), {m['cpu']} ({m['arch']}), "
        f"Python {m['python']}, SQLite {m['sqlite']}, {m['os']}. Run {m['date']}"
        + (f" at commit `{m['commit']}`" if m.get("commit") else "")
        + f"; the suite took {wall:.0f} s" + (" (**smoke run**: tiny sizes, figures not meaningful)" if smoke else "")
        + ".")
    add("")
    add("Every figure is ours against a baseline measured in the same run on the same machine (ratio ="
        " ours / baseline; the target applies to the ratio, or to ours where there is no baseline)."
        " Each bench runs as its own process and starts its own servers and load generators as separate"
        " processes (decisions are in-process by nature); each bench's section below says how it checks"
        " that its load generator is not the limit (the server's core busy while the generators' is not,"
        " and the baseline driven by one and by two generator processes).")
    add("")
    add("| figure | ours | baseline | ratio | target | met |")
    add("|---|---:|---:|---:|---|---|")
    for o in outcomes:
        if o.status != "ok":
            add(f"| **{o.bench.name}: {o.status.upper()}** ({o.note}; log `{Path(o.log).name}`) | - | - | - | - | **no** |")
        for f in o.figures:
            unit = f.get("unit", "")
            base = _num(f.get("baseline"), unit) if f.get("baseline") is not None else "-"
            if f.get("baseline_name") and f.get("baseline") is not None:
                base += f" ({f['baseline_name']})"
            ratio = _num(f.get("ratio")) if f.get("ratio") is not None else "-"
            met = "yes" if f.get("met") else "**no**"
            add(f"| {f['figure']} | {_num(f.get('ours'), unit)} | {base} | {ratio} | {f.get('target', '')} | {met} |")
    add("")
    figs = [f for o in outcomes for f in o.figures]
    met = sum(1 for f in figs if f.get("met"))
    failed = [o.bench.name for o in outcomes if o.status != "ok"]
    add(f"Targets met: {met} of {len(figs)}." + (f" Failed: {', '.join(failed)}." if failed else "")
        + " Time per bench: " + ", ".join(f"{o.bench.name} {o.seconds:.0f} s" for o in outcomes) + ".")
    busy = [o for o in outcomes if o.others is not None]
    if busy:
        add("")
        add("Other processes on the machine (outside the benches' own processes) used on average: "
            + ", ".join(f"{o.others:.2f} cores during {o.bench.name}" for o in busy) + "."
            + (" Above ~0.25 cores the figures of that bench are skewed (it shares the cores it measures on)."
               if any(o.others > 0.25 for o in busy) else ""))
    add("")
    if chart_name:
        add(f"![ratio to target per figure]({chart_name})")
        add("")
    add(END)
    return "\n".join(lines)


def write_chart(outcomes: list[Outcome], path: Path, m: dict, smoke: bool) -> None:
    """Horizontal bars: each figure's distance to its target (>= 1 met), log scale, target line at 1."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f, margin(f)) for o in outcomes for f in o.figures]
    rows = [(f, v) for f, v in rows if v is not None and v > 0]
    rows.reverse()     # top to bottom in table order
    fig, ax = plt.subplots(figsize=(11, 0.5 * max(3, len(rows)) + 1.4), dpi=110)
    if rows:
        labels = [f["figure"] if len(f["figure"]) <= 70 else f["figure"][:67] + "..." for f, _ in rows]
        values = [v for _, v in rows]
        colors = ["#2e7d32" if f.get("met") else "#c62828" for f, _ in rows]
        # bars grow from the target line (1): to the right when met, to the left when missed
        ax.barh(range(len(rows)), [abs(v - 1.0) or 0.01 for v in values], left=[min(v, 1.0) for v in values],
                color=colors, height=0.6)
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.set_xscale("log")
        lo, hi = min(values + [1.0]), max(values + [1.0])
        ax.set_xlim(lo / 2.5, hi * 60)   # room for the labels right of the longest bar
        ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
        for i, (f, v) in enumerate(rows):
            shown = f"ratio {_num(f['ratio'])}" if f.get("ratio") is not None else _num(f.get("ours"), f.get("unit", ""))
            ax.text(max(v, 1.0) * 1.08, i, f"{shown} (target {f['target']})", va="center", fontsize=7.5)
    else:
        ax.text(0.5, 0.5, "no figures", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("distance to target: ratio / target for '>=', target / ratio for '<=' (>= 1 is met; log scale)",
                  fontsize=8)
    ax.set_title(f"Benchmarks: {m['cores']} cores, {m['cpu']}, Python {m['python']}, {m['date']}"
                 + (" (smoke run)" if smoke else ""), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def update_page(page: Path, block: str) -> None:
    """Replace the marked block, or put it under the page's title (first line) if there is none."""
    text = page.read_text() if page.exists() else "# Performance\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        first, _, rest = text.partition("\n")
        text = first + "\n\n" + block + "\n\n" + rest.lstrip("\n")
    page.write_text(text)


def write_report(outcomes: list[Outcome], m: dict, wall: float, page: Path, chart: Path, smoke: bool) -> str:
    write_chart(outcomes, chart, m, smoke)
    try:
        chart_name = os.path.relpath(chart, page.parent)
    except ValueError:
        chart_name = str(chart)
    block = render_summary(outcomes, m, wall, chart_name, smoke)
    update_page(page, block)
    return block


def load_outcomes(results_dir: Path) -> tuple[list[Outcome], dict, float, bool]:
    """Outcomes saved by a run (``suite.json``), or else every ``<bench>.json`` in the directory."""
    saved = results_dir / "suite.json"
    by_name = {b.name: b for b in BENCHES}
    if saved.exists():
        data = json.loads(saved.read_text())
        outs = []
        for d in data["outcomes"]:
            o = Outcome(by_name.get(d["bench"], Bench(d["bench"], 0)), d["status"], d["exit_code"], d["seconds"],
                        d["figures"], d.get("note", ""), d.get("log", ""), d.get("others_cores"))
            outs.append(o)
        return outs, data["machine"], data["wall_seconds"], data.get("smoke", False)
    outs, smoke = [], False
    for b in BENCHES:
        p = results_dir / f"{b.name}.json"
        if p.exists():
            d = json.loads(p.read_text())
            smoke = smoke or d.get("smoke", False)
            outs.append(Outcome(b, "ok" if d.get("ok") and d.get("figures") else "failed", 0, 0.0,
                                d.get("figures", []), "" if d.get("ok") else "its checks failed", str(p)))
    return outs, machine(), 0.0, smoke


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="each bench for about a second (tiny sizes)")
    ap.add_argument("--only", action="append", choices=[b.name for b in BENCHES], help="run only this bench (repeat)")
    ap.add_argument("--results", default=str(HERE / "results"), help="JSON and logs (default bench/results)")
    ap.add_argument("--page", help="the Markdown page to update (default docs/performance.md; with --smoke, "
                                   "<results>/performance.md)")
    ap.add_argument("--chart", help="the PNG chart (default next to the page: performance.png)")
    ap.add_argument("--budget", type=float, default=TOTAL_BUDGET, help=f"seconds for the whole suite ({TOTAL_BUDGET:g})")
    ap.add_argument("--render", metavar="DIR", help="only rewrite the report from the JSON saved in DIR")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = ap.parse_args()
    out_dir = Path(args.render or args.results)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = Path(args.page) if args.page else (out_dir / "performance.md" if args.smoke else ROOT / "docs/performance.md")
    chart = Path(args.chart) if args.chart else page.with_suffix(".png")

    if args.render:
        outcomes, m, wall, smoke = load_outcomes(out_dir)
        write_report(outcomes, m, wall, page, chart, smoke)
        say(f"Wrote the summary into {page} and the chart {chart}")
        return 0 if outcomes and all(o.status == "ok" for o in outcomes) else 1

    m = machine()
    say(f"Bench suite{' (smoke)' if args.smoke else ''}: {m['cores']} cores usable, {m['cpu']}, Python {m['python']}, "
        f"SQLite {m['sqlite']}; total budget {args.budget:.0f} s; results in {out_dir}")
    t0 = time.monotonic()
    outcomes = []
    for b in BENCHES:
        if args.only and b.name not in args.only:
            continue
        left = args.budget - (time.monotonic() - t0)
        budget = min(b.smoke_budget if args.smoke else b.budget, left)
        if budget < 5:
            o = Outcome(b, "timeout", note="the suite's total budget ran out before it started")
            say(f"== {b.name}: not started, the suite's budget is spent")
        else:
            o = run_one(b, out_dir, args.smoke, budget, [])
        outcomes.append(o)
    wall = time.monotonic() - t0
    (out_dir / "suite.json").write_text(json.dumps({"machine": m, "wall_seconds": round(wall, 1), "smoke": args.smoke,
                                                    "outcomes": [o.to_json() for o in outcomes]}, indent=1) + "\n")
    block = write_report(outcomes, m, wall, page, chart, args.smoke)
    say("")
    say(block.replace(START, "").replace(END, "").strip())
    say("")
    say(f"Wrote the summary into {page} and the chart {chart}; JSON and logs in {out_dir}. Wall time {wall:.0f} s.")
    if any(o.status != "ok" for o in outcomes):
        return 1
    if args.strict and not all(f.get("met") for o in outcomes for f in o.figures):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
