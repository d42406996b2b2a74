"""Bad input and bad setup at the command line: one line naming the problem and an exit code, never a
traceback; data never drives the terminal (issue: bad input never reaches a 500 or a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app

runner = CliRunner()

HOSTILE_TEXT = "I will refund [/red] the $30 fee [green]grounded[/green] \x1b[31mnow\x1b[0m today."


def _use_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from app.config import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"{args} raised {result.exception!r}")
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def migrated() -> None:
    code, _, err = _invoke("db", "upgrade")
    assert code == 0, err


def _native(path: Path, external_id: str, lines: list[tuple[str, str]]) -> Path:
    path.write_text(json.dumps({
        "external_id": external_id,
        "utterances": [{"speaker": speaker, "role": speaker.lower(), "text": text} for speaker, text in lines],
    }), encoding="utf-8")
    return path


# ------------------------------------------------------------------ 6. data is escaped, never markup


def test_markup_and_escape_sequences_in_a_transcript_are_printed_as_text(migrated: None, tmp_path: Path) -> None:
    call = _native(tmp_path / "hostile.json", "[/red]ext-[bold]1", [
        ("Agent", "Thank you for calling Acme Bank."),
        ("Customer", "I was charged a $30 late fee [/red] although I paid on time."),
        ("Agent", HOSTILE_TEXT),
    ])
    code, out, err = _invoke("process", str(call))
    assert code == 0, err
    assert "[/red]ext-[bold]1" in out
    shown_code, shown, shown_err = _invoke("show", "[/red]ext-[bold]1")
    assert shown_code == 0, shown_err
    assert "[/red]ext-[bold]1" in shown
    assert "[/red]" in shown.replace("[/red]ext-[bold]1", "")  # the utterance text, as written
    for output in (out, err, shown, shown_err):
        assert "\x1b" not in output  # the escape sequence is shown as \x1b, never sent
    assert "\\x1b" in shown


def test_a_markup_like_error_message_does_not_crash_the_cli(migrated: None, tmp_path: Path) -> None:
    folder = tmp_path / "[bold]"
    folder.mkdir()
    bad = folder / "[red]broken.json"
    bad.write_text('{"utterances": [', encoding="utf-8")
    code, _, err = _invoke("ingest", str(bad), "--no-enqueue")
    assert code == 1
    assert "[bold]/[red]broken.json" in err


# ------------------------------------------------------- 8. bad database URLs: one line, exit 2


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://postgres@127.0.0.1:5432/postcall", "postgres://"),
        ("mysql://root@127.0.0.1/postcall", "unsupported database 'mysql'"),
        ("garbage", "not a database URL"),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/postcall_does_not_exist_0", "cannot use the database"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/postcall", "cannot use the database"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["show", "x"], ["ingest", "{file}", "--no-enqueue"],
                                     ["db", "upgrade"], ["users", "list"]])
def test_a_bad_database_url_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, expected: str, command: list[str]
) -> None:
    _use_env(monkeypatch, POSTCALL_DATABASE_URL=url)
    call = _native(tmp_path / "c.json", "c-1", [("Agent", "Hello."), ("Customer", "Hi.")])
    code, out, err = _invoke(*[part.replace("{file}", str(call)) for part in command])
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err


@pytest.mark.parametrize("command", [["status"], ["show", "x"], ["users", "list"], ["reconcile"],
                                     ["worker", "--concurrency", "1"]])
def test_read_only_commands_do_not_create_a_sqlite_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    folder = tmp_path / "nothing" / "here"
    # (A worker is refused before it takes any message: started, it failed every call it took.)
    _use_env(monkeypatch, POSTCALL_DATABASE_URL=f"sqlite:///{folder / 'postcall.db'}")
    code, _, err = _invoke(*command)
    assert code == 2
    assert "postcall db upgrade" in err
    assert not (tmp_path / "nothing").exists()


# ----------------------------------------------------------- 4. one bad file never stops a batch


def test_a_lone_surrogate_file_is_reported_and_the_rest_of_the_batch_is_stored(
    migrated: None, tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    _native(folder / "a.json", "a", [("Agent", "Hello."), ("Customer", "Hi.")])
    (folder / "b.json").write_text('{"external_id": "b", "utterances": [{"speaker": "A", "text": "x\\ud800"}]}',
                                   encoding="utf-8")
    _native(folder / "c.json", "c", [("Agent", "Hello again."), ("Customer", "Hi again.")])
    code, out, _ = _invoke("ingest", str(folder), "--no-enqueue", "--json")
    assert code == 1
    files = {Path(f["file"]).name: f for f in json.loads(out)["files"]}
    assert files["a.json"]["status"] == "created"
    assert "surrogate" in files["b.json"]["error"]
    assert files["c.json"]["status"] == "created"


# -------------------------------------------------- 10. process shows the warnings ingest shows


def test_process_shows_ingest_warnings_in_text_mode(migrated: None, tmp_path: Path) -> None:
    call = tmp_path / "mono.txt"
    call.write_text("Agent: Thank you for calling.\nAgent: I will send the form today.\n", encoding="utf-8")
    code, _, err = _invoke("process", str(call))
    assert code == 0, err
    assert "warning:" in err and "only one speaker" in err


@pytest.mark.parametrize(("variable", "value"), [
    ("POSTCALL_WORKER_CONCURRENCY", "abc"), ("POSTCALL_REDACT_FOR_LLM", "maybe"), ("POSTCALL_LOG_LEVEL", "LOUD"),
    ("POSTCALL_RETENTION_DAYS", "3000000"),
])
def test_a_malformed_setting_is_one_line_and_exit_2(tmp_path: Path, variable: str, value: str) -> None:
    # The real entry point (`postcall`), where settings are read before any command: a traceback before.
    env = {**os.environ, variable: value, "POSTCALL_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run([sys.executable, "-m", "app.cli", "status"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 3
    assert variable in done.stderr or value in done.stderr


def test_a_misspelled_setting_stops_the_command(tmp_path: Path) -> None:
    # Ignored before: `postcall` ran on the default SQLite file in the working directory.
    env = {**os.environ, "POSTCALL_DATABSE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run([sys.executable, "-m", "app.cli", "status"], env=env, capture_output=True, text=True,
                          timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "POSTCALL_DATABSE_URL is not a setting" in done.stderr and "POSTCALL_DATABASE_URL?" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing created


def test_an_empty_path_is_refused_not_read_as_the_working_directory(
    migrated: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unset shell variable ("postcall ingest $CALLS") gave Path(""), the working directory: every
    # transcript-like file there was ingested.
    _native(tmp_path / "stray.json", "stray", [("Agent", "Hello."), ("Customer", "Hi.")])
    monkeypatch.chdir(tmp_path)
    for command in ("ingest", "process"):
        code, out, err = _invoke(command, "")
        assert code == 2, (command, out, err)
        assert "empty path" in err and "stray" not in out + err


def test_a_named_pipe_is_refused_instead_of_waiting_for_a_writer(migrated: None, tmp_path: Path) -> None:
    pipe = tmp_path / "call.json"
    os.mkfifo(pipe)
    done = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(pipe)], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ})
    assert done.returncode == 1, done.stderr
    assert "not a regular file" in done.stderr


def test_export_to_a_folder_or_a_missing_folder_is_one_line_and_no_partial_file(
    migrated: None, tmp_path: Path
) -> None:
    code, _, err = _invoke("process", str(_native(tmp_path / "c.json", "c-1", [
        ("Agent", "I will send the form today."), ("Customer", "Thanks.")])))
    assert code == 0, err
    folder = tmp_path / "out"
    folder.mkdir()
    code, _, err = _invoke("export", "-o", str(folder))
    assert code == 2 and "directory" in err, err  # (typer wraps its box: "is a" may end a line)
    code, _, err = _invoke("export", "-o", str(tmp_path / "missing" / "x.jsonl"))
    assert code == 2 and "cannot write" in err and "Traceback" not in err, err
    code, _, err = _invoke("export", "-o", str(folder / "x.jsonl"))
    assert code == 0, err
    assert [p.name for p in folder.iterdir()] == ["x.jsonl"]  # renamed into place, nothing partial left
    assert json.loads((folder / "x.jsonl").read_text(encoding="utf-8").splitlines()[0])


@pytest.mark.parametrize("args", [
    ("reconcile", "--stuck-after", "99999999999999999999999"),
    ("webhooks", "disable", "99999999999999999999"),
    ("webhooks", "replay", "0"),
    ("batches", "cancel", "0"),
    ("batches", "--limit", "-5"),
    ("serve", "--port", "70000"),
])
def test_numbers_out_of_range_are_refused_by_their_option(migrated: None, args: tuple[str, ...]) -> None:
    code, _, err = _invoke(*args)
    assert code == 2, err
    assert "Invalid value" in err


def test_a_binary_file_given_to_batches_import_is_one_line(migrated: None, tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_bytes(b"\x9d\xff\x00binary")
    code, _, err = _invoke("batches", "import", "1", str(answers))
    assert code == 2 and "is not UTF-8 text" in err and "Traceback" not in err


def test_export_keeps_a_files_permissions_and_writes_through_links_and_pipes(migrated: None, tmp_path: Path) -> None:
    code, _, err = _invoke("process", str(_native(tmp_path / "c.json", "c-2", [
        ("Agent", "I will send the form today."), ("Customer", "Thanks.")])))
    assert code == 0, err
    private = tmp_path / "private.jsonl"
    private.touch()
    private.chmod(0o600)  # made private for an unmasked export: it must stay so
    assert _invoke("export", "-o", str(private), "--unmasked")[0] == 0
    assert private.stat().st_mode & 0o777 == 0o600 and private.read_text(encoding="utf-8")
    link = tmp_path / "link.jsonl"
    link.symlink_to(private)
    assert _invoke("export", "-o", str(link))[0] == 0
    assert link.is_symlink() and link.read_text(encoding="utf-8") == private.read_text(encoding="utf-8")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = subprocess.Popen(["cat", str(pipe)], stdout=subprocess.PIPE)  # a pipe: written as it goes
    code, _, err = _invoke("export", "-o", str(pipe))
    piped, _ = reader.communicate(timeout=30)
    assert code == 0, err
    assert piped and json.loads(piped.splitlines()[0])
