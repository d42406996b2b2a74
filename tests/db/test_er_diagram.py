"""The committed ER diagram source (docs/diagrams/er.dot) is what the generator makes of the current tables."""

from __future__ import annotations

import importlib.util

from app.config import PROJECT_ROOT

GENERATOR = PROJECT_ROOT / "docs" / "diagrams" / "er.py"


def test_er_diagram_matches_the_models() -> None:
    spec = importlib.util.spec_from_file_location("er_diagram", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (PROJECT_ROOT / "docs" / "diagrams" / "er.dot").read_text()
    assert module.dot_source() == committed, "run `python docs/diagrams/er.py` and commit er.dot and er.svg"
    assert "analyst_roles" in committed and "due_date" in committed
    assert (PROJECT_ROOT / "docs" / "diagrams" / "er.svg").stat().st_size > 0
