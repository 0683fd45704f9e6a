"""Run the benchmarks: ``python -m benchmarks`` (the default set), ``python -m benchmarks
tokens listing`` (by name), ``python -m benchmarks --all`` (slow ones too), ``--list``.

Prints one table (median, p95, p99, target, met) and writes ``benchmarks/results/<module>.json``
per module plus ``benchmarks/results/summary.json``, each with the machine (cores, memory,
Python) and the load average at the start and end of the module. Exits 1 when a target is
missed or a module failed; a skipped figure (missing service) is neither.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import Result

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict[str, Any]:
    """The facts a figure depends on: cores, memory, Python, platform."""
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_mib": memory_kib // 1024,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _slow(module: str) -> str:
    """Why the module is left out of the default run ("" when it is not)."""
    source = (HERE / f"{module}.py").read_text()
    if "\nSLOW = " not in source:
        return ""
    return str(getattr(importlib.import_module(f"benchmarks.{module}"), "SLOW", ""))


def _modules(names: list[str], *, everything: bool) -> list[str]:
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if not names:
        return found if everything else [m for m in found if not _slow(m)]
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in names]
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; have {', '.join(found)}")
    return wanted


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"


def _print(module: str, results: list[Result], load: tuple[float, float]) -> None:
    print(f"\n{module}  (load average 1 min: {load[0]:.2f} at start, {load[1]:.2f} at end)")
    print(
        f"  {'metric':<58} {'median/value':>12} {'p95':>9} {'p99':>9} {'unit':<9} "
        f"{'target':<18} met"
    )
    for r in results:
        if r.skipped:
            print(f"  {r.metric:<58} skipped: {r.skipped}")
            continue
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        print(
            f"  {r.metric:<58} {_number(r.value):>12} {_number(r.p95):>9} {_number(r.p99):>9} "
            f"{r.unit:<9} {r.target:<18} {met}"
        )


def _run_module(module: str) -> tuple[list[Result], bool]:
    """The module's results, and whether it failed (an exception is reported, not raised)."""
    try:
        return importlib.import_module(f"benchmarks.{module}").run(), False
    except Exception as exc:
        traceback.print_exc()
        return [Result.skip(module, f"failed: {type(exc).__name__}: {exc}")], True


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def main() -> int:
    """Run the selected benchmarks; exit 1 when a target is missed or a module failed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all but slow ones)")
    parser.add_argument("--all", action="store_true", help="include the slow benchmarks")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args()
    # A stopped run still stops its servers and drops its scratch databases (``finally``).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.list:
        for module in _modules([], everything=True):
            why = _slow(module)
            print(f"{module:<24} {'slow: ' + why if why else 'default'}")
        return 0
    RESULTS.mkdir(exist_ok=True)
    facts = machine()
    print(
        f"machine: {facts['cores']} cores ({facts['cores_usable']} usable), "
        f"{facts['memory_mib']:,} MiB, Python {facts['python']}, {facts['platform']}"
    )
    bad = False
    summary: dict[str, Any] = {"started_at": _stamp(time.time()), "machine": facts, "modules": []}
    for module in _modules(args.names, everything=args.all):
        started, load_start = time.time(), os.getloadavg()[0]
        results, failed = _run_module(module)
        load = (load_start, os.getloadavg()[0])
        _print(module, results, load)
        bad |= failed or any(r.met is False for r in results)
        report = {
            "module": module,
            "command": f"python -m benchmarks {module.removeprefix('bench_')}",
            "started_at": _stamp(started),
            "seconds": round(time.time() - started, 1),
            "load_average_1min": {"start": load[0], "end": load[1]},
            "machine": facts,
            "results": [asdict(r) for r in results],
        }
        (RESULTS / f"{module}.json").write_text(json.dumps(report, indent=2) + "\n")
        summary["modules"].append(report)
    # Several runs may write the summary: keep modules measured earlier that this run skipped.
    path = RESULTS / "summary.json"
    ran = {m["module"] for m in summary["modules"]}
    try:
        earlier = json.loads(path.read_text()).get("modules", [])
    except (OSError, ValueError):
        earlier = []
    summary["modules"] = sorted(
        [m for m in earlier if m.get("module") not in ran] + summary["modules"],
        key=lambda m: str(m.get("module")),
    )
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nresults: {RESULTS}/<module>.json and {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
