"""Reads of pending calls against the batch-mode backlog, this checkout beside another revision.

    .venv/bin/python -m bench.pending.run --done 200000 --batch 100000 --sync 2000 --against 5fb3728

Each side gets a fresh PostgreSQL database (POSTCALL_TEST_PG_PORT picks the server) at its own head, holding
`--done` processed calls, `--batch` batch-mode calls queued six hours ago (waiting for a batch) and `--sync`
synchronous calls queued a minute ago, as rows of calls alone; analyzed. Then, median of `--repeat` each:
a whole `/metrics` scrape (`render_latest`, the broker a local Redis), one reconciler pass (nothing is
stuck: the pass is its lookup), and the batch collector's count of calls waiting for a batch. Before
migration 0023 the pending-calls index held no LLM mode, so the scrape's oldest pending call and the
reconciler's lookup read every waiting batch-mode call (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench.cpu.run import compared_sides, run_side

FIGURES = ("scrape_ms", "reconcile_ms", "batch_waiting_ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--done", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--sync", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--against", metavar="REVISION", help="also measure this git revision (e.g. main)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="postcall-pending-"))
    try:
        sides = compared_sides(args.against, work, extra_packages=("bench/pending", "tests/support"))
        rows = {}
        for name, root in sides:
            out = work / f"{name}.json"
            rows[name] = run_side([sys.executable, "-m", "bench.pending.side", "--done", str(args.done),
                                   "--batch", str(args.batch), "--sync", str(args.sync), "--repeat",
                                   str(args.repeat), "--out", str(out)], root, out)
            print(f"  {name}: " + ", ".join(f"{key} {rows[name][key]:.2f}" for key in FIGURES), flush=True)
        print(f"{'ms, median':>18} " + " ".join(f"{name:>16}" for name, _ in sides))
        for key in FIGURES:
            print(f"{key:>18} " + " ".join(f"{rows[name][key]:>16.2f}" for name, _ in sides))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
