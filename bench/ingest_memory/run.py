"""Peak memory of ingesting one large transcript, each case in a fresh process.

    .venv/bin/python -m bench.ingest_memory.run            # or: make bench-ingest-memory

For each case a child process builds the input, records its resident set size (RSS), resets the kernel's
peak counter (/proc/self/clear_refs), runs the case, and reads the peak (VmHWM): "growth" is how far the
peak rose above the RSS before the case, i.e. what the case itself cost. Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MB = 1024 * 1024
BODY_BYTES = 20 * MB

CASES: dict[str, str] = {
    "native, 700k tiny utterances (refused at the default limit)": "tiny_native",
    "native, 700k tiny utterances, limit lifted to 10M (what the limit prevents)": "tiny_native_unbounded",
    "native, 20k utterances of ~1 KB (at the limit, accepted)": "long_native",
    "native, 20k utterances of ~1 KB, parsed and stored (SQLite)": "long_native_stored",
    "webvtt, 20 MB of tiny cues (refused)": "tiny_vtt",
    "text, 20 MB of tiny lines (refused)": "tiny_text",
}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _tiny_native() -> bytes:
    one = '{"speaker":"A","text":"x"},'
    count = (BODY_BYTES - 100) // len(one)
    return ('{"external_id":"big","utterances":[' + one * (count - 1) + one[:-1] + "]}").encode()


def _long_native() -> bytes:
    text = ("I will refund the late fee to your card today and send a confirmation email. " * 13)[:1000]
    utterances = [{"speaker": "Agent" if n % 2 else "Customer", "text": f"{n} {text}"} for n in range(20_000)]
    return json.dumps({"external_id": "long", "utterances": utterances}).encode()


def _tiny_vtt() -> bytes:
    cue = "00:00:01.000 --> 00:00:02.000\nx\n\n"
    return ("WEBVTT\n\n" + cue * (BODY_BYTES // len(cue))).encode()


def _tiny_text() -> bytes:
    return ("A: x\n" * (BODY_BYTES // 5)).encode()


def child(case: str, workdir: str) -> None:
    """Run one case in this process and print its measurements as JSON."""
    from app.errors import IngestError
    from app.ingest import parse_bytes

    builders = {"tiny_native": _tiny_native, "tiny_native_unbounded": _tiny_native, "long_native": _long_native,
                "long_native_stored": _long_native, "tiny_vtt": _tiny_vtt, "tiny_text": _tiny_text}
    data = builders[case]()
    limit = 10_000_000 if case == "tiny_native_unbounded" else None
    session_factory = None
    if case == "long_native_stored":
        from app.db.migrate import upgrade
        from app.db.session import create_db_engine, make_session_factory

        url = f"sqlite:///{workdir}/bench.db"
        upgrade(url)
        session_factory = make_session_factory(create_db_engine(url))
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    started = time.perf_counter()
    outcome = "accepted"
    try:
        parsed = parse_bytes(data, source_name="big", max_bytes=BODY_BYTES + MB, max_utterances=limit)
        outcome = f"accepted, {len(parsed.transcript.utterances):,} utterances"
        if session_factory is not None:
            from app.db.session import unit_of_work
            from app.pipeline.store import store_transcript

            with unit_of_work(session_factory) as session:
                store_transcript(session, parsed.transcript, tenant="bench", external_id="long")
            outcome += ", stored"
    except IngestError as exc:
        outcome = f"refused: {exc.problem[:70]}"
    seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    print(json.dumps({"bytes": len(data), "rss_before_kib": before, "peak_kib": peak, "seconds": seconds,
                      "outcome": outcome}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="var/bench-ingest-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir)
        return
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    print(f"{'case':<78} {'body':>7} {'growth':>8} {'x body':>7} {'time':>7}  outcome")
    for title, case in CASES.items():
        (Path(args.workdir) / "bench.db").unlink(missing_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "bench.ingest_memory.run", "--child", case, "--workdir", args.workdir],
            capture_output=True, text=True, check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        growth_mb = (row["peak_kib"] - row["rss_before_kib"]) / 1024
        body_mb = row["bytes"] / MB
        print(f"{title:<78} {body_mb:>5.1f}MB {growth_mb:>6.0f}MB {growth_mb / body_mb:>6.1f}x "
              f"{row['seconds']:>6.2f}s  {row['outcome']}")


if __name__ == "__main__":
    main()
