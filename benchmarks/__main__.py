"""Run the benchmarks: ``python -m benchmarks`` (all) or ``python -m benchmarks tokens``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks import Result

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _modules(names: list[str]) -> list[str]:
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if not names:
        return found
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in names]
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; have {', '.join(found)}")
    return wanted


def _print(module: str, results: list[Result]) -> None:
    print(f"\n{module}")
    print(f"  {'metric':<52} {'value':>12} {'unit':<10} {'target':<16} met")
    for r in results:
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        print(f"  {r.metric:<52} {r.value:>12.2f} {r.unit:<10} {r.target:<16} {met}")


def main() -> int:
    """Run the selected benchmarks; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    missed = False
    for module in _modules(args.names):
        started = time.time()
        results: list[Result] = importlib.import_module(f"benchmarks.{module}").run()
        _print(module, results)
        missed |= any(r.met is False for r in results)
        (RESULTS / f"{module}.json").write_text(
            json.dumps(
                {
                    "module": module,
                    "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                    "seconds": round(time.time() - started, 1),
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "platform": platform.platform(),
                    },
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
