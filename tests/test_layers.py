"""Import-layer contracts: the pipeline never reaches up into the worker, the web app or
the CLI; providers, the verifier, ingestion and schemas never touch the database layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT

APP = PROJECT_ROOT / "app"

# package -> modules it must never import (at any depth, including imports inside functions)
FORBIDDEN = {
    "app.pipeline": ("app.worker", "app.web", "app.cli"),
    "app.handoff": ("app.worker", "app.web", "app.cli"),
    "app.text": ("app.db", "app.models", "app.pipeline", "app.llm", "app.worker", "app.web", "app.cli"),
    "app.llm": ("app.db", "app.models", "app.pipeline", "app.worker", "app.web", "app.cli"),
    "app.grounding": ("app.db", "app.models", "app.pipeline", "app.llm", "app.worker", "app.web", "app.cli"),
    "app.ingest": ("app.db", "app.models", "app.pipeline", "app.llm", "app.worker", "app.web", "app.cli"),
    "app.schemas": ("app.db", "app.models", "app.pipeline", "app.llm", "app.worker", "app.web", "app.cli"),
    "app.models": ("app.pipeline", "app.llm", "app.worker", "app.web", "app.cli"),
    # Personal-data detection and masking are pure text functions: models, the pipeline and the web use them.
    "app.privacy": ("app.db", "app.models", "app.pipeline", "app.llm", "app.worker", "app.web", "app.cli"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports(package: str) -> None:
    folder = APP / package.removeprefix("app.").replace(".", "/")
    files = sorted(folder.rglob("*.py"))
    assert files, f"no modules found for {package}"
    violations = [
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[package])
    ]
    assert violations == []
