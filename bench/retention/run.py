"""The retention purge's time against the number of expired calls, this checkout beside another revision.

    .venv/bin/python -m bench.retention.run --calls 16000 --calls 32000 --calls 64000 --against 1bbc8de
    .venv/bin/python -m bench.retention.run --retry --calls 16000 --calls 32000 --calls 64000 --against 1bbc8de
    .venv/bin/python -m bench.retention.run --reconcile --calls 16000 --calls 64000 --against 5fb3728

Each size gets a fresh PostgreSQL database (POSTCALL_TEST_PG_PORT picks the server) holding that many calls
of one tenant, all past its one-day period, inserted as rows of calls alone (tests/support/call_rows.py: no
transcript, runs or claims, so the figures are the calls' own cost and a lower bound); then
`purge_expired` deletes them, timed whole. The sides alternate size by size. Before the purge committed
per chunk, it deleted every expired call in one transaction: each deleted call updates its tenant's counter
row, PostgreSQL walks every version of a row that the same transaction made on each update, and the time
grew faster than the calls (docs/benchmarks.md, retention). `--retry` times `postcall retry`'s requeue of
that many failed calls instead (one transaction before, 500 calls per transaction now). `--reconcile` times
ONE reconciler pass over that many calls stuck in queued (as after Redis lost its queue): a pass took at
most 500 calls before (the beat runs one a minute), every stuck call now; "left" is what the pass left stuck.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench.cpu.run import compared_sides, run_side


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, action="append", help="expired calls (repeatable; default 16000)")
    parser.add_argument("--against", metavar="REVISION", help="also measure this git revision (e.g. main)")
    parser.add_argument("--retry", action="store_true", help="time the requeue of failed calls, not the purge")
    parser.add_argument("--reconcile", action="store_true", help="time one reconciler pass over stuck calls")
    args = parser.parse_args(argv)
    sizes = args.calls or [16_000]
    work = Path(tempfile.mkdtemp(prefix="postcall-retention-"))
    try:
        sides = compared_sides(args.against, work, extra_packages=("bench/retention", "tests/support"))
        rows: dict[int, dict[str, dict[str, float]]] = {size: {} for size in sizes}
        for size in sizes:
            for name, root in sides:
                out = work / f"{name}-{size}.json"
                mode = ["--retry"] if args.retry else ["--reconcile"] if args.reconcile else []
                measured = run_side([sys.executable, "-m", "bench.retention.side", "--calls", str(size),
                                     "--out", str(out), *mode], root, out)
                if measured["done"] + measured["left"] != size or (measured["left"] and not args.reconcile):
                    raise SystemExit(f"{name}: handled {measured['done']} of {size}, {measured['left']} left")
                rows[size][name] = measured
                verb = "requeued" if args.retry or args.reconcile else "purged"
                print(f"  {name}: {measured['done']} of {size} calls {verb} in {measured['seconds']:.1f} s, "
                      f"{measured['left']} left", flush=True)
        names = [name for name, _ in sides]
        print(f"{'calls':>14} " + " ".join(f"{name + ' s':>22} {'ms/call':>8} {'left':>7}" for name in names))
        for size in sizes:
            cells = " ".join(
                f"{row['seconds']:>22.1f} {1000 * row['seconds'] / row['done']:>8.2f} {row['left']:>7}"
                for row in (rows[size][name] for name in names))
            print(f"{size:>14} {cells}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
