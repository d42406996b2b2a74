"""The upload route (POST /api/calls) honours the charset its Content-Type declares (app/web/api.py passes it
to the parser), and refuses one Python has no codec for with a 4xx naming it; explicit query values win over
a plain-text header's."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from app.db.session import create_db_engine, make_session_factory
from app.models import Call, UserRole
from tests.support.services import migrated_sqlite_database
from tests.web.world import bearer, client_for, seed_user

LATIN_1_CALL = "Agent: Bienvenue chez Acme, ici Hélène.\nCustomer: J'ai été débité deux fois.\n".encode("latin-1")


def test_an_upload_is_read_in_its_declared_charset(tmp_path: Path) -> None:
    url = migrated_sqlite_database(str(tmp_path / "upload.db"))
    factory = make_session_factory(create_db_engine(url))
    headers = bearer(seed_user(factory, tenant="acme", name="admin", role=UserRole.admin))
    with client_for(url) as client:
        undeclared = client.post("/api/calls", params={"external_id": "latin-0"}, content=LATIN_1_CALL,
                                 headers={**headers, "Content-Type": "text/plain"})
        assert undeclared.status_code == 422
        assert "charset" in undeclared.text
        unknown = client.post("/api/calls", params={"external_id": "latin-1"}, content=LATIN_1_CALL,
                              headers={**headers, "Content-Type": "text/plain; charset=klingon"})
        assert unknown.status_code == 422
        assert "unknown encoding 'klingon'" in unknown.text
        utf7 = client.post("/api/calls", params={"external_id": "utf7"}, content=b"Agent: +ADw-b+AD4-hi\n",
                           headers={**headers, "Content-Type": "text/plain; charset=UTF-7"})
        assert utf7.status_code == 422
        assert "UTF-7" in utf7.text
        declared = client.post("/api/calls", params={"external_id": "latin-2"}, content=LATIN_1_CALL,
                               headers={**headers, "Content-Type": "text/plain; charset=ISO-8859-1"})
        assert declared.status_code == 202, declared.text
        detail = client.get(f"/api/calls/{declared.json()['call_id']}", headers=headers).json()
    assert "Hélène" in str(detail)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 1  # nothing stored from the refusals


def test_utf8_labelled_iso_8859_1_and_json_with_a_charset_are_stored_right(tmp_path: Path) -> None:
    # Clients (Apache HttpClient's FileEntity with TEXT_PLAIN) label raw UTF-8 files ISO-8859-1; JSON has no
    # charset (RFC 8259). An empty charset parameter is ignored, not a 422.
    url = migrated_sqlite_database(str(tmp_path / "upload.db"))
    factory = make_session_factory(create_db_engine(url))
    headers = bearer(seed_user(factory, tenant="acme", name="admin", role=UserRole.admin))
    text = "Agent: Bonjour, café.\nCustomer: Très bien.\n".encode()
    native = '{"utterances": [{"speaker": "Agent", "text": "Grüezi"}, {"speaker": "Customer", "text": "Très bien"}]}'
    with client_for(url) as client:
        sent = [
            client.post("/api/calls", params={"external_id": "t1"}, content=text,
                        headers={**headers, "Content-Type": "text/plain; charset=ISO-8859-1"}),
            client.post("/api/calls", params={"external_id": "t2"}, content=native.encode(),
                        headers={**headers, "Content-Type": "application/json; charset=ISO-8859-1"}),
            client.post("/api/calls", params={"external_id": "t3"}, content=text,
                        headers={**headers, "Content-Type": "text/plain; charset="}),
        ]
        assert [answer.status_code for answer in sent] == [202, 202, 202], [answer.text for answer in sent]
        assert any("was overridden" in w for w in sent[0].json()["warnings"])
        stored = [[u["text"] for u in client.get(f"/api/calls/{answer.json()['call_id']}",
                                                  headers=headers).json()["utterances"]] for answer in sent]
    assert stored == [["Bonjour, café.", "Très bien."], ["Grüezi", "Très bien"], ["Bonjour, café.", "Très bien."]]


HEADER_BODY = b"Call ID: 5551234\nTeam: Retention\nQueue: Billing\n\nAgent: Thanks for calling.\nCustomer: My card.\n"


def test_explicit_values_win_over_a_plain_text_header(tmp_path: Path) -> None:
    url = migrated_sqlite_database(str(tmp_path / "upload.db"))
    factory = make_session_factory(create_db_engine(url))
    admin = bearer(seed_user(factory, tenant="acme", name="admin", role=UserRole.admin))
    supervisor = bearer(seed_user(factory, tenant="acme", name="sue", role=UserRole.supervisor, team="billing"))
    with client_for(url) as client:
        own_id = client.post("/api/calls", params={"external_id": "CRM-77"}, content=HEADER_BODY,
                             headers={**admin, "Content-Type": "text/plain"})
        assert own_id.status_code == 202, own_id.text
        assert own_id.json()["external_id"] == "CRM-77"
        assert ("the header's Call ID '5551234' was overridden by the query's external_id 'CRM-77'"
                in own_id.json()["warnings"])
        by_team = client.post("/api/calls", params={"external_id": "CRM-78"},
                              content=HEADER_BODY.replace(b"Call ID: 5551234\n", b""),
                              headers={**supervisor, "Content-Type": "text/plain"})
        assert by_team.status_code == 202, by_team.text
        assert any("the header's Team 'Retention' was overridden" in w for w in by_team.json()["warnings"])
        # The supervisor sees the call they handed over: it is their team's.
        assert client.get(f"/api/calls/{by_team.json()['call_id']}", headers=supervisor).status_code == 200
        # Without an explicit value the header fills the field.
        filled = client.post("/api/calls", content=HEADER_BODY.replace(b"5551234", b"5551235"),
                             headers={**admin, "Content-Type": "text/plain"})
        assert filled.status_code == 202 and filled.json()["external_id"] == "5551235"
        # A native JSON field that differs from the query is still a conflict.
        native = b'{"external_id": "X-1", "utterances": [{"speaker": "Agent", "text": "hi"}]}'
        conflict = client.post("/api/calls", params={"external_id": "CRM-79"}, content=native,
                               headers={**admin, "Content-Type": "application/json"})
        assert conflict.status_code == 422
