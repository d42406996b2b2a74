"""The verification snippets in docs/handoff.md work against what Postcall sends."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from app.config import PROJECT_ROOT
from app.handoff.delivery import serialize, signature_headers
from app.handoff.secrets import generate_secret

BLOCKS = re.findall(r"```python\n(.*?)```", (PROJECT_ROOT / "docs" / "handoff.md").read_text(), re.S)


def test_the_standard_library_snippet_verifies_a_real_signature_and_refuses_a_forged_one() -> None:
    snippet = next(block for block in BLOCKS if "def verify(" in block)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # our own documentation
    secret, other = generate_secret(), generate_secret()
    body = serialize({"type": "call.approved", "timestamp": "t", "data": {"call_id": "c1"}})
    headers = signature_headers("msg_1", body, (other, secret), datetime.now(UTC))
    assert namespace["verify"](body.encode(), headers, secret)
    assert namespace["verify"](body.encode(), headers, other)
    assert not namespace["verify"](body.encode() + b" ", headers, secret)
    assert not namespace["verify"](body.encode(), headers, generate_secret())
