"""CPU per handed-over call on the ingest path, this checkout beside another revision.

    .venv/bin/python -m bench.ingest_cpu.run --calls 400 --rounds 3 --against b8d6ad9

The real calls bench/cpu uses (every Harper Valley Bank call, then TweetSumm dialogs) as transcript files
in Postcall's native JSON, each with its agent id and external id. Each side (a fresh PostgreSQL database
on the machine's server per round; POSTCALL_TEST_PG_PORT picks another) parses every file's bytes
(`parse_bytes`, format auto-detected) and stores it as a new queued call, one unit of work per call, as
`POST /api/calls` and `postcall ingest` do (bench/ingest_cpu/side.py). Reported per call: the median
main-thread CPU of the parse and of the store (with its commit), and the PostgreSQL backend's CPU. The
sides alternate round after round; each figure is the median of its rounds. At the end the stored calls
and utterances of both sides are compared (ids and moments left out): they must be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.answers.run import real_transcripts
from bench.cpu.run import compared_sides, run_side

FIGURES = ("parse_ms", "store_ms", "store_mean_ms", "backend_ms")


def native_file(external_id: str, transcript: object) -> str:
    """The transcript as a native JSON file (docs/formats.md), as a contact-center system would send it."""
    from app.schemas.transcript import Transcript

    assert isinstance(transcript, Transcript)
    meta = transcript.metadata
    return json.dumps({
        "external_id": external_id,
        "agent_id": meta.agent_id or f"agent-{len(external_id) % 7}",
        "team": meta.team,
        "language": meta.language,
        "utterances": [{"speaker": u.speaker, "role": u.role.value, "text": u.text, "start": u.start, "end": u.end}
                       for u in transcript.utterances],
    }, ensure_ascii=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=400, help="measured calls per side and round")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="REVISION", help="also measure this git revision (e.g. main)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="postcall-ingest-cpu-"))
    try:
        files = work / "files.json"
        files.write_text(json.dumps([[external_id, native_file(external_id, transcript)]
                                     for external_id, transcript in real_transcripts(args.warmup + args.calls)]),
                         encoding="utf-8")
        sides = compared_sides(args.against, work, extra_packages=("bench/ingest_cpu",))
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sides}
        dumps: dict[str, Path] = {}
        for number in range(args.rounds):
            for name, root in sides:
                out, dumps[name] = work / f"{number}-{name}.json", work / f"{name}.dump.json"
                measured = run_side([sys.executable, "-m", "bench.ingest_cpu.side", "--files", str(files),
                                     "--warmup", str(args.warmup), "--out", str(out), "--dump", str(dumps[name])],
                                    root, out)
                rounds[name].append(measured)
                print(f"  round {number + 1} {name}: "
                      + ", ".join(f"{key} {measured[key]:.3f}" for key in FIGURES), flush=True)
        print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"{args.calls} calls per side and round, median of {args.rounds} rounds")
        print(f"{'CPU ms per call':>18} " + " ".join(f"{name:>16}" for name, _ in sides))
        for key in FIGURES:
            print(f"{key:>18} " + " ".join(f"{statistics.median(r[key] for r in rounds[name]):>16.3f}"
                                             for name, _ in sides))
        if args.against:
            before, after = (json.loads(dumps[name].read_text(encoding="utf-8")) for name, _ in sides)
            same = before == after
            print(f"stored calls and utterances, {args.against} vs this checkout: "
                  f"{'identical' if same else 'DIFFERENT'} ({len(after)} calls)")
            return 0 if same else 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
