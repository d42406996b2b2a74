"""CPU per call: Postcall's `process_call` (this checkout, and optionally main's code) beside langextract.

    .venv/bin/python -m bench.cpu.run                      # this checkout (+ langextract if .venv-bench exists)
    .venv/bin/python -m bench.cpu.run --against main       # also a clean copy of the `main` branch, same run

The same real calls (the 42 Harper Valley Bank calls, then TweetSumm dialogs, from the shared data) go
through each side,
one after another, answered by one zero-delay local model server in this process (bench/answers/model.py
for Postcall; the same quotes in langextract's format for langextract). Each side runs in its own process
(bench/cpu/side.py, bench/cpu/langextract_side.py); see those for what is measured. With `--against`, the
stored results of both versions are dumped and compared (bench/answers/stored.py): they must be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

from app.config import PROJECT_ROOT
from app.llm.scripted_server import ScriptedOpenAIServer
from bench.answers.model import quoting_answer
from bench.answers.run import real_transcripts
from bench.answers.stored import differences

BENCH_VENV_PYTHON = PROJECT_ROOT / ".venv-bench" / "bin" / "python"
# What the copy of another revision borrows from this checkout: the benchmark code itself.
BENCH_PACKAGES = ("bench/answers", "bench/cpu")
ROWS = ("claim", "redact", "provider", "verify", "dedup", "persist", "persist.run", "persist.claims",
        "persist.handoff_event", "persist.write", "total", "process_cpu", "wall")


def answer(user_text: str) -> dict[str, Any]:
    """Postcall's questions get `quoting_answer`; langextract's the same quotes as its extractions."""
    if "\nQ: " not in f"\n{user_text}":
        return quoting_answer(user_text)
    dialog = f"\n{user_text}".rsplit("\nQ: ", 1)[1].rsplit("\nA:", 1)[0]
    lines = []
    for index, line in enumerate(dialog.splitlines()):
        role, _, text = line.partition(": ")
        if text:
            lines.append(f"[{index}] {role} ({role}): {text}")
    quoted = quoting_answer("\n".join(lines))
    extractions: list[dict[str, Any]] = []
    for kind in ("reason", "outcome"):
        if quoted.get(kind):
            extractions.append({kind: quoted[kind]["text"]})
    extractions += [{"summary": item["text"]} for item in quoted["summary"]]
    extractions += [{"action_item": item["text"], "action_item_attributes": {"owner": item["owner"]}}
                    for item in quoted["action_items"]]
    return {"extractions": extractions}


def revision_copy(revision: str, into: Path, extra_packages: tuple[str, ...] = ()) -> Path:
    """A clean copy of `revision` (git archive) with this checkout's benchmark packages (and
    `extra_packages`, folders of this checkout) put in place of its own."""
    archive = subprocess.run(["git", "archive", revision], cwd=PROJECT_ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    for package in (*BENCH_PACKAGES, *extra_packages):
        shutil.rmtree(into / package, ignore_errors=True)
        shutil.copytree(PROJECT_ROOT / package, into / package)
    return into


def compared_sides(against: str | None, work: Path, extra_packages: tuple[str, ...] = ()) -> list[tuple[str, Path]]:
    """(name, code tree) of each side: `against`'s copy first when given, then this checkout."""
    sides = [("this checkout", PROJECT_ROOT)]
    if against:
        sides.insert(0, (against, revision_copy(against, work / "revision", extra_packages=extra_packages)))
    return sides


def run_side(command: list[str], cwd: Path, out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(command, cwd=cwd, env=env, check=True)
    return dict(json.loads(out.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="measured calls per side")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--against", metavar="REVISION", help="also measure this git revision (e.g. main)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the Postcall sides, alternating")
    parser.add_argument("--no-langextract", action="store_true")
    parser.add_argument("--json", type=Path, help="write every side's figures here")
    parser.add_argument("--timings", choices=["batched", "immediate"], default="batched",
                        help="how runs' late timings are written (bench/cpu/side.py; default batched, as workers do)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="postcall-bench-cpu-"))
    try:
        calls = real_transcripts(args.warmup + args.calls)
        calls_file = work / "calls.json"
        calls_file.write_text(json.dumps([[external_id, t.model_dump(mode="json")] for external_id, t in calls]),
                              encoding="utf-8")
        sides: list[tuple[str, Path]] = []
        if args.against:
            sides.append((args.against, revision_copy(args.against, work / "revision")))
        sides.append(("this checkout", PROJECT_ROOT))
        with ScriptedOpenAIServer(answer) as server:
            # The sides alternate, round after round, so a change in the machine's load (it is shared)
            # falls on every side alike; each side's figure is the median of its rounds.
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in sides}
            for number in range(args.rounds):
                for name, root in sides:
                    out, dump = work / f"{name}-{number}.json", work / f"{name}-{number}.dump.json"
                    measured = run_side(
                        [sys.executable, "-m", "bench.cpu.side", "--calls-file", str(calls_file), "--base-url",
                         server.base_url, "--warmup", str(args.warmup), "--out", str(out), "--dump", str(dump),
                         "--timings", args.timings],
                        root, out)
                    measured["dump"] = str(dump)
                    rounds[name].append(measured)
            results = {name: combined(measured) for name, measured in rounds.items()}
            if not args.no_langextract and BENCH_VENV_PYTHON.exists():
                out = work / "langextract.json"
                results["langextract"] = run_side(
                    [str(BENCH_VENV_PYTHON), str(PROJECT_ROOT / "bench" / "cpu" / "langextract_side.py"),
                     "--calls-file", str(calls_file), "--base-url", server.base_url, "--warmup", str(args.warmup),
                     "--out", str(out)], work, out)
        report(results, args.against)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
        if args.against:
            before = json.loads(Path(results[args.against]["dump"]).read_text(encoding="utf-8"))
            after = json.loads(Path(results["this checkout"]["dump"]).read_text(encoding="utf-8"))
            found = differences(before, after)
            print(f"stored results of {len(after)} calls, {args.against} vs this checkout: "
                  f"{'identical' if not found else f'{len(found)} differences'}")
            for line in found[:20]:
                print("  ", line)
            return 1 if found else 0
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def combined(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's rounds as one result: per stage, the median of the rounds' p50 and the mean of means."""
    stages = rounds[0]["p50_ms"].keys()
    return {
        **rounds[0],
        "rounds": len(rounds),
        "p50_ms": {stage: statistics.median(r["p50_ms"][stage] for r in rounds) for stage in stages},
        "mean_ms": {stage: statistics.fmean(r["mean_ms"][stage] for r in rounds) for stage in stages},
        "postgres_backend_cpu_ms_per_call": statistics.fmean(r["postgres_backend_cpu_ms_per_call"] for r in rounds),
        **{key: statistics.median(r[key] for r in rounds)
           for key in ("loop_process_cpu_ms_per_call", "loop_backend_cpu_ms_per_call") if key in rounds[0]},
        "p50_ms_per_round": [r["p50_ms"]["total"] for r in rounds],
    }


def report(results: dict[str, dict[str, Any]], against: str | None) -> None:
    load = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    names = list(results)
    print(f"{'CPU ms per call, p50 (mean)':28}" + "".join(f"{name[:22]:>24}" for name in names))
    for row in ROWS:
        cells = []
        for name in names:
            p50, mean = results[name]["p50_ms"].get(row), results[name]["mean_ms"].get(row)
            cells.append(f"{p50:.2f} ({mean:.2f})" if p50 is not None else "")
        if any(cells):
            print(f"{row:28}" + "".join(f"{cell:>24}" for cell in cells))
    cells = [f"{results[n]['postgres_backend_cpu_ms_per_call']:.2f}" if "postgres_backend_cpu_ms_per_call"
             in results[n] else "none" for n in names]
    print(f"{'PostgreSQL backend CPU':28}" + "".join(f"{cell:>24}" for cell in cells))
    for key, label in (("timings", "late timings written"), ("loop_process_cpu_ms_per_call", "loop: process CPU"),
                       ("loop_backend_cpu_ms_per_call", "loop: PostgreSQL CPU")):
        values = [results[n].get(key) for n in names]
        cells = [value if isinstance(value, str) else "" if value is None else f"{value:.2f}" for value in values]
        print(f"{label:28}" + "".join(f"{cell:>24}" for cell in cells))
    cells = [{True: "yes", False: "no"}.get(results[n].get("heap_frozen"), "") for n in names]
    print(f"{'startup objects frozen (gc)':28}" + "".join(f"{cell:>24}" for cell in cells))
    cells = [" ".join(f"{total:.1f}" for total in results[n].get("p50_ms_per_round", [])) for n in names]
    print(f"{'total p50 of each round':28}" + "".join(f"{cell:>24}" for cell in cells))


if __name__ == "__main__":
    sys.exit(main())
