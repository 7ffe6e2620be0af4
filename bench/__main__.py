"""Run the benchmarks: `python -m bench` runs every bench/*.py that defines `main()`;
`python -m bench forecast_accuracy replay` runs only those. Each writes bench/results/<name>.json
and .md itself. Exits non-zero if any benchmark raised (the others still run)."""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = argv or discover()
    unknown = [n for n in names if n not in discover()]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; have {', '.join(discover())}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "main", None)
        if not callable(run):
            continue  # a helper module, not a benchmark
        print(f"== bench {name}", flush=True)
        started = time.perf_counter()
        try:
            run([])
        except Exception:  # noqa: BLE001 - report and go on to the next benchmark
            traceback.print_exc()
            failed.append(name)
        print(f"== bench {name}: {time.perf_counter() - started:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
