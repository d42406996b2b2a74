"""The langextract side of the CPU benchmark: `lx.extract` per dialog against the same local model server.

Runs in its own venv (`.venv-bench`: langextract is not a Postcall dependency) and imports nothing from
Postcall. Each dialog is the same call the Postcall side processes, as "role: text" lines; the model server
answers langextract's prompts with statements quoting the dialog (bench/cpu/run.py). Per dialog it takes
the process's CPU time (langextract sends its requests from worker threads) and writes nothing anywhere.

    .venv-bench/bin/python bench/cpu/langextract_side.py --calls-file F --base-url URL --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

PROMPT = ("Extract the call's reason, its outcome, summary statements and action items. "
          "Use exact text from the dialog for extractions; do not paraphrase.")


def dialog_text(transcript: dict[str, Any]) -> str:
    return "\n".join(f"{u['role']}: {u['text']}" for u in transcript["utterances"])


def main(argv: list[str] | None = None) -> int:
    import langextract as lx
    from langextract.providers.openai import OpenAILanguageModel

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls-file", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)

    calls = json.loads(args.calls_file.read_text(encoding="utf-8"))
    examples = [lx.data.ExampleData(
        text="customer: I lost my card yesterday\nagent: I will send you a new card within 5 business days",
        extractions=[
            lx.data.Extraction(extraction_class="reason", extraction_text="I lost my card yesterday"),
            lx.data.Extraction(extraction_class="action_item",
                               extraction_text="I will send you a new card within 5 business days",
                               attributes={"owner": "agent", "due": "within 5 business days"}),
        ],
    )]
    model = OpenAILanguageModel(model_id="scripted-demo", api_key="local-no-key", base_url=args.base_url,
                                max_workers=1)
    cpu: list[float] = []
    wall: list[float] = []
    extractions = 0
    for number, (_external_id, transcript) in enumerate(calls):
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        document = lx.extract(text_or_documents=dialog_text(transcript), prompt_description=PROMPT,
                              examples=examples, model=model, fence_output=False, use_schema_constraints=False,
                              show_progress=False, max_workers=1)
        if number < args.warmup:
            continue
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
        extractions += len(document.extractions or [])
    import importlib.metadata

    result = {
        "langextract": importlib.metadata.version("langextract"),
        "calls": len(cpu),
        "extractions_per_call": extractions / max(1, len(cpu)),
        "p50_ms": {"total": 1000 * statistics.median(cpu), "wall": 1000 * statistics.median(wall)},
        "mean_ms": {"total": 1000 * statistics.fmean(cpu), "wall": 1000 * statistics.fmean(wall)},
    }
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
