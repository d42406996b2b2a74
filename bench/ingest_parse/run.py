"""CPU time of parsing vendor JSON (and every other shipped format), and the cost of one large word-level
response, each in this process.

    .venv/bin/python -m bench.ingest_parse.run [--data DIR]    # or: make bench-ingest-parse

Small files: the samples, the test fixtures and the speech-to-text outputs in DIR/stt_formats when there
are any, parsed 20 times, best of 5, CPU time per file. Large: a Deepgram response of 190,000 diarized
words (19.7 MB, just under the fragment limit of 20,000 utterances), CPU time and the growth of the
process's peak resident set size (ru_maxrss) while parsing it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from app.config import PROJECT_ROOT
from app.ingest.loader import parse_bytes

ROUNDS, REPEATS = 5, 20
LARGE_WORDS = 190_000


def small_files(data_dir: Path) -> list[Path]:
    folders = [PROJECT_ROOT / "samples", PROJECT_ROOT / "tests" / "ingest" / "fixtures", data_dir / "stt_formats"]
    return sorted(p for folder in folders if folder.is_dir() for p in folder.rglob("*.json"))


def cpu_per_file(files: list[Path]) -> float:
    documents = [(path.name, path.read_bytes()) for path in files]
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(REPEATS):
            for name, data in documents:
                parse_bytes(data, source_name=name)
        best = min(best, time.process_time() - started)
    return best / (REPEATS * len(documents))


def large_deepgram() -> tuple[float, float, float, int]:
    """Size (MB), CPU seconds, peak growth (MB) and utterances of one large Deepgram response."""
    words = [
        {"word": f"w{i}", "punctuated_word": f"w{i}", "start": i * 0.3, "end": i * 0.3 + 0.2, "speaker": i // 40 % 2}
        for i in range(LARGE_WORDS)
    ]
    response = {"metadata": {"request_id": "bench"},
                "results": {"channels": [{"alternatives": [{"transcript": "", "words": words}]}]}}
    data = json.dumps(response).encode()
    del words, response
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    parsed = parse_bytes(data, source_name="large_deepgram.json", max_utterances=20_000)
    cpu = time.process_time() - started
    growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    return len(data) / 1e6, cpu, growth_kb / 1024, len(parsed.transcript.utterances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    # The large case first: the peak it reports must not be hidden by an earlier, larger one.
    size, cpu, growth, utterances = large_deepgram()
    print(f"large Deepgram response: {size:.1f} MB, {utterances} utterances, {cpu:.2f} s CPU, peak +{growth:.0f} MB")
    files = small_files(args.data)
    print(f"small files: {cpu_per_file(files) * 1000:.2f} ms CPU per file ({len(files)} files)")


if __name__ == "__main__":
    main()
