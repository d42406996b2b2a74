"""`postcall ingest` on what an integrator probe sent: files of several calls, a declared encoding, and errors
that name the format (text and --json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"{args} raised {result.exception!r}")
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def migrated() -> None:
    code, _, err = _invoke("db", "upgrade")
    assert code == 0, err


def _native(external_id: str | None, greeting: str) -> dict[str, object]:
    call: dict[str, object] = {"utterances": [
        {"speaker": "Agent", "role": "agent", "text": greeting},
        {"speaker": "Customer", "role": "customer", "text": "Hi, my card is blocked."},
    ]}
    if external_id is not None:
        call["external_id"] = external_id
    return call


def test_a_json_array_of_calls_stores_each_and_reports_the_bad_one(migrated: None, tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    bad = {"utterances": [{"speaker": "Agent", "text": ""}]}
    path.write_text(json.dumps([_native("arr-a", "Hello."), bad, _native(None, "Good morning.")]), encoding="utf-8")
    code, out, _ = _invoke("ingest", str(path), "--no-enqueue", "--json")
    assert code == 1  # one call failed
    files = json.loads(out)["files"]
    assert [(f["position"], f["status"]) for f in files] == [("[0]", "created"), ("[1]", None), ("[2]", "created")]
    # Without its own id a call is named by its file and what it says, not its place in the file.
    assert files[0]["external_id"] == "arr-a" and files[1]["external_id"] is None
    assert re.fullmatch(r"batch-[0-9a-f]{10}", files[2]["external_id"])
    assert files[1]["format"] == "native"
    assert "batch.json[1]: utterances[0].text" in files[1]["error"]
    assert "read as format native" in files[1]["error"]


def test_ndjson_stores_each_line_and_names_lines_in_text_output(
    migrated: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "b.ndjson").write_text(
        json.dumps(_native("nd-a", "Hello.")) + "\n{oops\n" + json.dumps(_native(None, "Hey.")) + "\n",
        encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # short paths: lines that the terminal width does not wrap
    code, out, err = _invoke("ingest", "in/b.ndjson", "--no-enqueue")  # a file named is read whatever its name
    assert code == 1
    assert "in/b.ndjson line 1 (native)" in out
    assert "in/b.ndjson line 3 (native)" in out and re.search(r"b-[0-9a-f]{10}", out)
    assert "in/b.ndjson line 2: column 2: invalid JSON" in err
    assert "1 file, 3 calls: 2 stored, 0 replaced, 0 updated, 0 unchanged, 1 failed" in out


def test_an_error_names_the_format_in_json_output(migrated: None, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"utterances": [{"speaker": "A", "text": "hi", "start": -1}]}), encoding="utf-8")
    code, out, _ = _invoke("ingest", str(path), "--no-enqueue", "--json")
    assert code == 1
    (result,) = json.loads(out)["files"]
    assert result["format"] == "native"
    assert "(read as format native, detected from the content)" in result["error"]


def test_encoding_option_reads_latin_1(migrated: None, tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("Agent: Bienvenue, ici Hélène.\nCustomer: J'ai été débité deux fois.\n".encode("latin-1"))
    code, out, _ = _invoke("ingest", str(path), "--no-enqueue", "--json")
    assert code == 1
    assert "--encoding" in json.loads(out)["files"][0]["error"]
    code, out, _ = _invoke("ingest", str(path), "--no-enqueue", "--json", "--encoding", "latin-1")
    assert code == 0, out
    assert json.loads(out)["files"][0]["status"] == "created"
    code, _, err = _invoke("ingest", str(path), "--no-enqueue", "--encoding", "klingon")
    assert code == 2
    assert "unknown encoding 'klingon'" in err
    code, _, err = _invoke("ingest", str(path), "--no-enqueue", "--encoding", "utf7")
    assert code == 2
    assert "UTF-7" in err


def test_inserting_a_call_keeps_the_other_calls_ids(migrated: None, tmp_path: Path) -> None:
    # Ids made from positions shifted when a call was inserted, and --replace then overwrote other
    # conversations' stored calls.
    path = tmp_path / "batch.json"
    first, second = _native(None, "Hello."), _native(None, "Good morning.")
    path.write_text(json.dumps([first, second]), encoding="utf-8")
    code, out, _ = _invoke("ingest", str(path), "--no-enqueue", "--json")
    assert code == 0, out
    ids = [f["external_id"] for f in json.loads(out)["files"]]
    path.write_text(json.dumps([_native(None, "Good evening."), first, second]), encoding="utf-8")
    code, out, _ = _invoke("ingest", str(path), "--no-enqueue", "--json", "--replace")
    assert code == 0, out
    files = json.loads(out)["files"]
    assert [f["status"] for f in files] == ["created", "unchanged", "unchanged"]
    assert [f["external_id"] for f in files[1:]] == ids


def test_two_calls_of_one_file_with_one_id_say_so(migrated: None, tmp_path: Path) -> None:
    path = tmp_path / "dups.json"
    path.write_text(json.dumps([_native("same", "Hello."), _native("same", "Bye."), _native(None, "Hi."),
                                _native(None, "Hi.")]), encoding="utf-8")
    code, out, _ = _invoke("ingest", str(path), "--no-enqueue", "--json")
    assert code == 1
    files = json.loads(out)["files"]
    assert [f["status"] for f in files] == ["created", None, "created", None]
    assert f"is also that of {path}[0], in the same file" in files[1]["error"]
    assert "two calls of one file would be one call" in files[1]["error"]
    assert "two files" not in files[1]["error"]
    assert "the two calls say the same" in files[3]["error"]
