"""Peak memory and time of `postcall export` on a loaded database, one child process per format.

    python -m bench.analysts.load --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench --calls 170000
    python -m bench.analysts.export_memory --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench

Each export runs as its own `postcall export` process writing to a file; its peak resident set size
and CPU time come from the kernel's accounting for that child (os.wait4), so nothing in this process
skews them. Wall time depends on what else the machine runs; CPU time less so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import make_url


def _claims(url: str, tenant: str) -> int:
    parsed = make_url(url)
    dsn = f"host={parsed.host} port={parsed.port or 5432} user={parsed.username} dbname={parsed.database}"
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM claims cl JOIN calls c ON c.id = cl.call_id AND cl.run_id = c.current_run_id "
            "JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = %s",
            (tenant,),
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--tenant", default="bench-main")
    parser.add_argument("--formats", default="jsonl,csv,parquet")
    args = parser.parse_args()
    print(f"current claims of {args.tenant}: {_claims(args.url, args.tenant):,}")
    postcall = Path(sys.executable).with_name("postcall")
    env = {**os.environ, "POSTCALL_DATABASE_URL": args.url}
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for fmt in args.formats.split(","):
            target = Path(folder) / f"export.{fmt}"
            started = time.perf_counter()
            process = subprocess.Popen(
                [str(postcall), "export", "--tenant", args.tenant, "--format", fmt, "--output", str(target)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            _pid, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - started
            if status != 0:
                raise SystemExit(f"export {fmt} failed: {process.stderr.read().decode() if process.stderr else ''}")
            result = {"format": fmt, "seconds": round(elapsed, 1),
                      "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                      "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                      "file_mb": round(target.stat().st_size / 1e6, 1)}
            results.append(result)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
