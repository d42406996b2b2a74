"""The cookbook of docs/data-model.md as data: question number -> its SQL blocks. Read by the test that
runs every query on a fixture database and by the latency benchmark, so both use the page as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"
QUESTION = re.compile(r"^### (\d+)\. (.+?)$(.*?)(?=^### |^## |\Z)", re.MULTILINE | re.DOTALL)
SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)


def cookbook() -> dict[int, tuple[str, list[str]]]:
    """Question number -> (question, SQL blocks: one, or one per backend marked `-- postgresql` / `-- sqlite`)."""
    section = DOC.read_text().split("## Cookbook", 1)[1]
    return {int(m.group(1)): (m.group(2), SQL_BLOCK.findall(m.group(3))) for m in QUESTION.finditer(section)}


def for_backend(blocks: list[str], dialect: str) -> str:
    marked = [b for b in blocks if b.lstrip().startswith(("-- postgresql", "-- sqlite"))]
    if not marked:
        assert len(blocks) == 1, "an unmarked question has one query"
        return blocks[0]
    return next(b for b in marked if b.lstrip().startswith(f"-- {dialect}"))
