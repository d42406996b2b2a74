"""An analyst role sees its own tenant in the analyst views and nothing else, enforced by PostgreSQL.

The test connects as the role itself (psycopg, trust auth on 127.0.0.1) and tries to read everything.
Roles are cluster-wide: each test uses a unique name and drops it, whatever happens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.analysts import (
    ANALYST_GROUP,
    AnalystRoleError,
    Revoked,
    RoleStatus,
    grant_analyst,
    list_analysts,
    revoke_analyst,
)
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.errors import ConfigError, NotFoundError
from tests.support.analytics import World, build_world
from tests.support.services import PG_HOST, PG_PORT, PG_USER

ROLLUP_VIEWS = ["analytics_call_days", "analytics_claim_days", "analytics_reason_days", "analytics_open_item_days",
                "analytics_agent_due", "analytics_run_days"]
VIEWS = ["analytics_calls", "analytics_runs", "analytics_claims", "analytics_evidence", "analytics_review_events",
         *ROLLUP_VIEWS]
TABLES = ["tenants", "users", "calls", "utterances", "extraction_runs", "claims", "evidence", "review_events",
          "analyst_roles", "alembic_version", "rollup_calls", "rollup_claims", "rollup_reasons", "rollup_open_items",
          "rollup_agent_due", "rollup_runs"]


@pytest.fixture
def pg_world(postgres_url: str) -> Iterator[tuple[str, sessionmaker[Session], World]]:
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    yield postgres_url, factory, build_world(factory)
    engine.dispose()


def _roles_dropped_after(name: str, *others: str) -> Iterator[str]:
    """`name`, and afterwards every role named (cluster-wide: dropped even when the test failed half-way)."""
    yield name
    with _pg(PG_USER, "postgres") as conn:
        for role in (name, *others):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def role_name() -> Iterator[str]:
    yield from _roles_dropped_after(f"pc_test_analyst_{uuid.uuid4().hex[:10]}")


def _pg(user: str, database: str) -> psycopg.Connection:
    """An autocommit connection to the test server as `user`."""
    return psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={user} dbname={database}", autocommit=True)


def _connect_as(url: str, role: str) -> psycopg.Connection:
    return _pg(role, make_url(url).database or "")


def test_analyst_sees_only_its_tenant_and_no_table(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    url, factory, world = pg_world
    with unit_of_work(factory) as session:
        granted = grant_analyst(session, role_name, "acme")
    assert granted.password and granted.tenant == "acme"

    with unit_of_work(factory) as session:
        # The owner (a superuser here) still sees every tenant through the same views.
        owner_tenants = set(session.scalars(text("SELECT DISTINCT tenant FROM analytics_claims")))
        for view in ROLLUP_VIEWS:
            assert set(session.scalars(text(f"SELECT DISTINCT tenant FROM {view}"))) == {"acme", "globex"}, view
        globex_claims = session.scalar(text("SELECT SUM(claims) FROM analytics_claim_days WHERE tenant = 'globex'"))
    assert owner_tenants == {"acme", "globex"}
    assert globex_claims

    with _connect_as(url, role_name) as conn:
        for view in VIEWS:
            tenants = {row[0] for row in conn.execute(f"SELECT tenant FROM {view}")}
            assert tenants == {"acme"}, view
        calls = {row[0] for row in conn.execute("SELECT call_id FROM analytics_calls")}
        assert calls == set(world.calls["acme"])
        assert conn.execute("SELECT COUNT(*) FROM analytics_claims WHERE tenant = 'globex'").fetchone() == (0,)
        # The rollups too: the other tenant's counts are not there, in any form.
        globex_sum = conn.execute("SELECT SUM(claims) FROM analytics_claim_days WHERE tenant = 'globex'").fetchone()
        assert globex_sum == (None,)
        assert conn.execute("SELECT COUNT(*) FROM analytics_run_days WHERE tenant <> 'acme'").fetchone() == (0,)
        # A call id of the other tenant, asked for directly, is not there either.
        other = world.calls["globex"][0]
        assert conn.execute("SELECT COUNT(*) FROM analytics_evidence WHERE call_id = %s", (other,)).fetchone() == (0,)

        # A condition that fails on a value shows the value in its error: behind the security barrier
        # it only ever sees the analyst's own tenant.
        for _ in range(3):
            with pytest.raises(psycopg.errors.InvalidTextRepresentation) as failed:
                conn.execute("SELECT * FROM analytics_claims WHERE CAST(external_id AS integer) = 0")
            assert "acme-" in str(failed.value) and "globex" not in str(failed.value)

        for table in TABLES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table} LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT token_hash FROM users")
        with pytest.raises(psycopg.Error):
            conn.execute("DELETE FROM analytics_calls")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE stolen (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SET ROLE {PG_USER}")
        # The one role it may become is its group; the views still follow the login.
        conn.execute(f"SET ROLE {ANALYST_GROUP}")
        assert {row[0] for row in conn.execute("SELECT DISTINCT tenant FROM analytics_claims")} == {"acme"}
        conn.execute("RESET ROLE")
        # Even turning read-only off, the role holds no write privilege anywhere.
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO analyst_roles (role_name, tenant_id, created_at) VALUES ('x', 1, now())")

    open_session = _connect_as(url, role_name)
    with unit_of_work(factory) as session:
        assert [row.role_name for row in list_analysts(session)] == [role_name]
        assert revoke_analyst(session, role_name) is Revoked.dropped
    with pytest.raises(psycopg.OperationalError):
        _connect_as(url, role_name).close()
    with pytest.raises(psycopg.OperationalError):  # a session open during the revoke was ended
        open_session.execute("SELECT count(*) FROM analytics_claims")
    open_session.close()


# Each row view: its newest-first order (as an analyst types it, no time window) and text columns whose
# values tell the tenants apart.
ROW_VIEW_SHAPES = {
    "analytics_calls": ("started_at DESC, call_id", ["tenant", "external_id", "agent_id"]),
    "analytics_runs": ("started_at DESC, run_id DESC", ["tenant", "external_id", "call_id"]),
    "analytics_claims": ("created_at DESC, claim_id DESC", ["tenant", "external_id", "text", "agent_id"]),
    "analytics_evidence": ("evidence_id DESC", ["tenant", "call_id", "quote"]),
    "analytics_review_events": ("created_at DESC, event_id DESC",
                                ["tenant", "external_id", "claim_text", "actor_name"]),
}


# How a cast to integer fails: not a number, or (a random hex id that begins with ten digits or more, such
# as "8451170807d4...") a number too large; both errors quote the value.
FAILED_CAST = (psycopg.errors.InvalidTextRepresentation, psycopg.errors.NumericValueOutOfRange)


def _failing_value(conn: psycopg.Connection, sql: str) -> str:
    """The value a failing cast shows in its error message."""
    with pytest.raises(FAILED_CAST) as failed:
        conn.execute(sql)
    message = str(failed.value)
    return message[message.index('"') + 1 : message.rindex('"')]


def test_row_views_filter_on_the_tables_whatever_the_query_shape(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    """The row views are plain views over tables with row-level security (migration 0014), so the planner
    may scan a table in time order and stop early; the filter still runs before any condition of the
    analyst's, in every shape."""
    url, factory, world = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "acme")
        # A decision in the other tenant too, on one of its items (the fixture's decisions are all acme's).
        session.execute(text(
            "INSERT INTO review_events (tenant_id, call_id, claim_id, actor_name, action, created_at) "
            "SELECT c.tenant_id, c.id, cl.id, 'sup-globex', 'claim_approved', now() "
            "FROM calls c JOIN claims cl ON cl.call_id = c.id WHERE c.external_id = 'globex-1' LIMIT 1"
        ))
    with unit_of_work(factory) as session:
        owner_newest: dict[str, list[tuple[object, ...]]] = {}
        # Every value each tenant shows in any of the views (a condition may run on a joined row of the
        # tenant that the view then leaves out, such as a call without decisions).
        values: dict[str, set[str]] = {"acme": set(), "globex": set()}
        by_column: dict[tuple[str, str], set[str]] = {}  # the other tenant's values of each view's column
        for view, (order, columns) in ROW_VIEW_SHAPES.items():
            owner_newest[view] = [tuple(row) for row in session.execute(
                text(f"SELECT * FROM {view} WHERE tenant = 'acme' ORDER BY {order} LIMIT 50")
            )]
            assert owner_newest[view], view
            for column in columns:
                tenants = set()
                for tenant, value in session.execute(text(f"SELECT tenant, CAST({column} AS text) FROM {view}")):
                    values[tenant].add(value)
                    tenants.add(tenant)
                    if tenant == "globex":
                        by_column.setdefault((view, column), set()).add(value)
                assert tenants == {"acme", "globex"}, (view, column)
        globex_only = values["globex"] - values["acme"]
        # (Both tenants had the same transcripts: some columns, such as quotes, hold no value of globex alone.)
        probes = {key: sorted(found & globex_only)[:3] for key, found in by_column.items()}
        assert {view for (view, _), found in probes.items() if found} == set(ROW_VIEW_SHAPES), probes

    with _connect_as(url, role_name) as conn:
        assert conn.execute("SHOW jit").fetchone() == ("off",)
        # A view's owner could read the tables; an analyst cannot become it.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE postcall_analyst_views")
        for view, (order, columns) in ROW_VIEW_SHAPES.items():
            newest = [tuple(row) for row in conn.execute(f"SELECT * FROM {view} ORDER BY {order} LIMIT 50")]
            assert newest == owner_newest[view], view
            assert conn.execute(f"SELECT COUNT(*) FROM {view} WHERE tenant = 'globex'").fetchone() == (0,), view
            for column in columns:
                for shape in (f"SELECT * FROM {view} WHERE CAST({column} AS integer) = 0",
                              f"SELECT * FROM {view} WHERE CAST({column} AS integer) = 0 ORDER BY {order} LIMIT 5",
                              f"SELECT COUNT(*) FROM {view} WHERE tenant = 'globex' AND CAST({column} AS integer) = 0"):
                    if "COUNT" not in shape:
                        shown = _failing_value(conn, shape)
                        assert shown in values["acme"] and shown not in globex_only, (view, column, shown)
                        continue
                    try:
                        # The other tenant's rows never reach the cast, so nothing fails, unless the planner
                        # casts a joined table's rows before the tenant join (a claim's call, by LEFT JOIN
                        # since 0015): those pass that table's own policy first, so the analyst's own.
                        assert conn.execute(shape).fetchone() == (0,), (view, column)
                    except FAILED_CAST as failed:
                        message = str(failed)
                        shown = message[message.index('"') + 1 : message.rindex('"')]
                        assert shown in values["acme"] and shown not in globex_only, (view, column, shown)
                # Aimed at one of the other tenant's values: the cast fails only if that row reaches it.
                for value in probes[view, column]:
                    aimed = f"CAST(CASE WHEN CAST({column} AS text) = %s THEN {column} END AS integer) = 0"
                    for shape in (f"SELECT * FROM {view} WHERE {aimed}",
                                  f"SELECT * FROM {view} WHERE {aimed} ORDER BY {order} LIMIT 5"):
                        assert conn.execute(shape, (value,)).fetchall() == [], (view, column, value)
        other = world.calls["globex"][0]
        for view in ROW_VIEW_SHAPES:
            assert conn.execute(f"SELECT COUNT(*) FROM {view} WHERE call_id = %s", (other,)).fetchone() == (0,)


def test_claims_are_filtered_by_their_own_tenant_column(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    """Migrations 0015 and 0019: a claim carries its call's tenant (held equal to it), and the claims policy
    and the claim views read that column, so an analyst's count of claims by tenant and time does not read
    calls."""
    url, factory, world = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "acme")
        # Every writer copies the call's tenant (here the pipeline's insert).
        mismatched, total = session.execute(text(
            "SELECT COUNT(*) FILTER (WHERE cl.tenant_id <> c.tenant_id), COUNT(*) "
            "FROM claims cl JOIN calls c ON c.id = cl.call_id"
        )).one()
        assert (mismatched, total > 0) == (0, True)
        acme_claims = session.scalar(text("SELECT COUNT(*) FROM analytics_claims WHERE tenant = 'acme'"))
        acme_evidence = session.scalar(text("SELECT COUNT(*) FROM analytics_evidence WHERE tenant = 'acme'"))
    assert acme_claims and acme_evidence

    count = "SELECT COUNT(*) FROM analytics_claims WHERE tenant = 'acme' AND created_at >= TIMESTAMPTZ '2000-01-01'"
    with _connect_as(url, role_name) as conn:
        assert conn.execute(count).fetchone() == (acme_claims,)
        assert conn.execute("SELECT COUNT(*) FROM analytics_evidence").fetchone() == (acme_evidence,)
        # The claim's call is always there (the LEFT JOIN in the views finds it).
        assert conn.execute("SELECT COUNT(*) FROM analytics_claims WHERE external_id IS NULL").fetchone() == (0,)
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {count}"))
        assert " on claims " in plan and " on calls " not in plan, plan

    # The column cannot say anything but the call's tenant (migration 0019): marking a claim as the other
    # tenant's is refused, and the acme analyst's count stays.
    first = world.calls["acme"][0]
    with pytest.raises(IntegrityError), unit_of_work(factory) as session:
        session.execute(text(
            "UPDATE claims SET tenant_id = (SELECT id FROM tenants WHERE slug = 'globex') "
            "WHERE id = (SELECT MIN(id) FROM claims WHERE call_id = :call)"
        ), {"call": first})
    with _connect_as(url, role_name) as conn:
        assert conn.execute("SELECT COUNT(*) FROM analytics_claims").fetchone() == (acme_claims,)


def test_a_role_unbound_from_its_tenant_sees_nothing(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    url, factory, _world = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "globex")
        session.execute(text("DELETE FROM analyst_roles"))  # binding lost; the role and its grants remain
    with _connect_as(url, role_name) as conn:
        for view in VIEWS:
            assert conn.execute(f"SELECT COUNT(*) FROM {view}").fetchone() == (0,), view


def test_grant_refuses_bad_names_unknown_tenants_and_existing_roles(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    _url, factory, _world = pg_world
    with pytest.raises(AnalystRoleError), unit_of_work(factory) as session:
        grant_analyst(session, 'x"; DROP TABLE calls; --', "acme")
    with pytest.raises(NotFoundError), unit_of_work(factory) as session:
        grant_analyst(session, role_name, "nope")
    with pytest.raises(AnalystRoleError), unit_of_work(factory) as session:
        grant_analyst(session, PG_USER, "acme")  # an existing role is never taken over
    with pytest.raises(NotFoundError), unit_of_work(factory) as session:
        revoke_analyst(session, PG_USER)  # nor dropped: only roles bound here by `grant`


def test_sqlite_is_single_tenant_for_analysts(sqlite_url: str) -> None:
    engine = create_db_engine(sqlite_url)
    try:
        with pytest.raises(ConfigError, match="single-tenant"), unit_of_work(make_session_factory(engine)) as session:
            grant_analyst(session, "ana", "acme")
    finally:
        engine.dispose()


def test_cli_grant_list_revoke(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from app.cli import app
    from app.config import get_settings

    url, _factory, _world = pg_world
    monkeypatch.setenv("POSTCALL_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    # No default tenant for an analyst: the tenant is named every time.
    unnamed = runner.invoke(app, ["analysts", "grant", role_name])
    assert unnamed.exit_code == 2 and "--tenant" in unnamed.output
    granted = runner.invoke(app, ["analysts", "grant", role_name, "--tenant", "globex", "--json"])
    assert granted.exit_code == 0, granted.output
    assert json.loads(granted.stdout)["tenant"] == "globex"
    listed = runner.invoke(app, ["analysts", "list", "--json"])
    assert json.loads(listed.stdout)["analysts"][0]["role"] == role_name
    assert json.loads(listed.stdout)["analysts"][0]["role_status"] == "ok"
    with _connect_as(url, role_name) as conn:
        assert {row[0] for row in conn.execute("SELECT tenant FROM analytics_calls")} == {"globex"}
    # The role dropped by hand: list flags its binding; a new grant of the name replaces it, saying so.
    with _pg(PG_USER, "postgres") as admin:
        admin.execute(f'DROP ROLE "{role_name}"')
    listed = runner.invoke(app, ["analysts", "list"])
    assert listed.exit_code == 0 and "role missing" in listed.output, listed.output
    assert json.loads(runner.invoke(app, ["analysts", "list", "--json"]).stdout)["analysts"][0]["role_status"] \
        == "missing"
    regranted = runner.invoke(app, ["analysts", "grant", role_name, "--tenant", "acme"])
    assert regranted.exit_code == 0, regranted.output
    assert "replaced" in regranted.output and "globex" in regranted.output
    assert runner.invoke(app, ["analysts", "revoke", role_name]).exit_code == 0
    assert runner.invoke(app, ["analysts", "grant", "Bad Name", "--tenant", "globex"]).exit_code == 2
    assert runner.invoke(app, ["analysts", "time-zone", "Mars/Base", "--tenant", "globex"]).exit_code == 2
    assert runner.invoke(app, ["analysts", "time-zone", "Europe/Berlin", "--tenant", "globex"]).exit_code == 0


def test_revoking_ends_access_even_when_the_analyst_owns_objects(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    # An analyst needs no privilege to create a large object, here or in any database of the server; a
    # DROP ROLE failing on that left the login and the binding in place and the analyst kept reading.
    url, factory, _ = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "acme")
    for database in (make_url(url).database or "", "postgres"):  # here, and in another database
        with _pg(role_name, database) as conn:
            conn.execute("BEGIN READ WRITE")
            conn.execute("SELECT lo_create(0)")
            conn.execute("COMMIT")
    try:
        with unit_of_work(factory) as session:
            assert revoke_analyst(session, role_name) is Revoked.disabled  # owns a large object in `postgres`
        with pytest.raises(psycopg.OperationalError):  # no login
            _connect_as(url, role_name).close()
        with _pg(PG_USER, make_url(url).database or "") as conn:
            assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role_name]).fetchone() \
                == (False,)
            assert not conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [role_name, ANALYST_GROUP]).fetchone()[0]
            # What it owned in this database went with the revoke.
            assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata WHERE lomowner = "
                                "(SELECT oid FROM pg_roles WHERE rolname = %s)", [role_name]).fetchone() == (0,)
        with unit_of_work(factory) as session:
            assert list_analysts(session) == []
    finally:
        with _pg(PG_USER, "postgres") as conn:
            conn.execute(f'DROP OWNED BY "{role_name}"')


@pytest.fixture
def login_name() -> Iterator[str]:
    """A second login (and its team role), for a role granted to another."""
    name = f"pc_test_login_{uuid.uuid4().hex[:10]}"
    yield from _roles_dropped_after(name, f"{name}_team")


def test_a_login_holding_the_group_through_another_role_sees_no_tenant(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str, login_name: str
) -> None:
    """Granting an analyst role to another login, or the group to a team role, passes on SELECT on the
    views; the filter must follow: such a login is not bound to a tenant, so it sees nothing (it saw every
    tenant while only direct members of the group were filtered)."""
    url, factory, _world = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "acme")
    team = f"{login_name}_team"
    with _pg(PG_USER, "postgres") as conn:
        conn.execute(f'CREATE ROLE "{login_name}" LOGIN IN ROLE "{role_name}"')  # holds the group at depth 2
        conn.execute(f'CREATE ROLE "{team}" NOLOGIN IN ROLE {ANALYST_GROUP}')
    with _connect_as(url, login_name) as conn:
        for view in VIEWS:
            assert conn.execute(f"SELECT COUNT(*) FROM {view}").fetchone() == (0,), view
    with _pg(PG_USER, "postgres") as conn:
        conn.execute(f'REVOKE "{role_name}" FROM "{login_name}"')
        conn.execute(f'GRANT "{team}" TO "{login_name}"')
    with _connect_as(url, login_name) as conn:
        for view in VIEWS:
            assert conn.execute(f"SELECT COUNT(*) FROM {view}").fetchone() == (0,), view
    # The analyst itself still sees its tenant, and the owner (a superuser here) every tenant.
    with _connect_as(url, role_name) as conn:
        assert {row[0] for row in conn.execute("SELECT DISTINCT tenant FROM analytics_claims")} == {"acme"}
        assert {row[0] for row in conn.execute("SELECT DISTINCT tenant FROM analytics_call_days")} == {"acme"}
    with unit_of_work(factory) as session:
        assert set(session.scalars(text("SELECT DISTINCT tenant FROM analytics_call_days"))) == {"acme", "globex"}
        assert set(session.scalars(text("SELECT DISTINCT tenant FROM analytics_calls"))) == {"acme", "globex"}


# Each view, with conditions an analyst can write from leakproof comparisons only (=, starts_with), each
# aimed at a value only the other tenant (globex) holds, and a value nobody holds. `_globex_secrets` makes
# those values.
SECRET = "Globex secret"
LEAKPROOF_PROBES: dict[str, list[tuple[str, str]]] = {
    "analytics_calls": [("external_id = {}", "globex-1"), ("starts_with(external_id, {})", "globex"),
                        ("team = {}", "globex-secret-team")],
    "analytics_runs": [("starts_with(error, {})", SECRET), ("external_id = {}", "globex-2")],
    "analytics_claims": [("starts_with(text, {})", SECRET), ("owner_name = {}", f"{SECRET} team"),
                         ("team = {}", "globex-secret-team")],
    "analytics_evidence": [("starts_with(quote, {})", SECRET)],
    "analytics_review_events": [("actor_name = {}", f"{SECRET} supervisor"), ("starts_with(claim_text, {})", SECRET)],
    "analytics_call_days": [("team = {}", "globex-secret-team")],
    "analytics_claim_days": [("team = {}", "globex-secret-team")],
    "analytics_reason_days": [("starts_with(reason, {})", SECRET.lower())],
    "analytics_open_item_days": [("owner_name = {}", f"{SECRET} team")],
    "analytics_agent_due": [("agent_id = {}", "G-1")],
    "analytics_run_days": [("team = {}", "globex-secret-team")],
}
NOBODY = "zz-nobody-holds-this"


def _globex_secrets(session: Session) -> None:
    """Values in globex's rows that acme's do not have (both tenants' transcripts are alike), written as
    the owner (the rollup triggers follow)."""
    globex = "(SELECT id FROM tenants WHERE slug = 'globex')"
    session.execute(text(f"UPDATE calls SET team = 'globex-secret-team' WHERE tenant_id = {globex}"))
    session.execute(text(
        f"UPDATE claims SET text = '{SECRET}: ' || text, text_masked = '{SECRET}: ' || text_masked, "
        f"owner_name = CASE WHEN kind = 'action_item' THEN '{SECRET} team' ELSE owner_name END "
        f"WHERE tenant_id = {globex}"))
    session.execute(text(f"UPDATE evidence SET quote_masked = '{SECRET} quote: ' || quote_masked "
                         f"WHERE claim_id IN (SELECT id FROM claims WHERE tenant_id = {globex})"))
    session.execute(text(f"UPDATE extraction_runs SET error = '{SECRET} error' "
                         f"WHERE call_id IN (SELECT id FROM calls WHERE tenant_id = {globex})"))
    session.execute(text(
        "INSERT INTO review_events (tenant_id, call_id, claim_id, actor_name, action, created_at) "
        f"SELECT c.tenant_id, c.id, cl.id, '{SECRET} supervisor', 'claim_approved', now() "
        "FROM calls c JOIN claims cl ON cl.call_id = c.id WHERE c.external_id = 'globex-1' LIMIT 1"))


def _plan(conn: psycopg.Connection, sql: str, value: str) -> str:
    """EXPLAIN ANALYZE's text (no timings, costs or totals: those vary by themselves), with `value` written
    as '?' so that plans of the same query with different values compare."""
    rows = conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", (value,)).fetchall()
    return "\n".join(row[0] for row in rows).replace(value, "?")


def test_explain_analyze_tells_an_analyst_nothing_of_another_tenants_rows(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    """An analyst's leakproof condition may run before the tenant filter. When the filter had subqueries (up
    to 0024), EXPLAIN ANALYZE showed whether they ran (`never executed`, loop counts) and so whether ANOTHER
    tenant had a row matching the condition: a loop over prefixes read other tenants' texts. Since 0025 the
    filter is a constant comparison: the plan of a condition that matches only the other tenant's row is
    the plan of one that matches nothing."""
    url, factory, _world = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "acme")
        _globex_secrets(session)
    assert set(LEAKPROOF_PROBES) == set(VIEWS)
    shapes = ("SELECT * FROM {view} WHERE {condition}", "SELECT count(*) FROM {view} WHERE {condition}")
    with unit_of_work(factory) as session:  # the owner: each probe does match rows, all of them globex's
        for view, probes in LEAKPROOF_PROBES.items():
            for condition, value in probes:
                sql = f"SELECT DISTINCT tenant FROM {view} WHERE {condition.format(':v')}"
                assert session.scalars(text(sql), {"v": value}).all() == ["globex"], (view, condition)
    leaks: dict[str, str] = {}  # query -> the two plans, where they differ
    with _connect_as(url, role_name) as conn:
        # An analyst may steer the planner too: joins driven from the view's first table, or not.
        for setting in ("RESET enable_nestloop", "SET enable_nestloop = off"):
            conn.execute(setting)
            for view, probes in LEAKPROOF_PROBES.items():
                for condition, value in probes:
                    for shape in shapes:
                        sql = shape.format(view=view, condition=condition.format("%s"))
                        aimed, missed = _plan(conn, sql, value), _plan(conn, sql, NOBODY)
                        if aimed != missed:
                            leaks[f"{setting}; {sql}"] = f"--- globex's value:\n{aimed}\n--- nobody's:\n{missed}"
                assert conn.execute(f"SELECT count(*) FROM {view} WHERE {condition.format('%s')}",
                                    (value,)).fetchone() == (0,)
    assert not leaks, f"{len(leaks)} queries tell globex's rows apart: {sorted(leaks)}\n" + next(iter(leaks.values()))


def test_the_tenant_filter_is_planned_as_a_constant(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    """postcall_analyst_tenant() is immutable: the planner evaluates it once and plans the analyst's tenant
    as a constant (no subplan, no read of analyst_roles while the query runs); the owner's plan has no
    tenant filter at all."""
    url, factory, _world = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "acme")
        acme = session.scalar(text("SELECT id FROM tenants WHERE slug = 'acme'"))
        owner_plan = "\n".join(session.scalars(text("EXPLAIN (COSTS OFF) SELECT * FROM analytics_claims")))
    assert "tenant_id =" not in owner_plan and "analyst" not in owner_plan, owner_plan
    with _connect_as(url, role_name) as conn:
        assert conn.execute("SELECT postcall_analyst_tenant()").fetchone() == (acme,)
        for view in VIEWS:
            plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN (COSTS OFF) SELECT count(*) FROM {view}"))
            assert f"tenant_id = {acme})" in plan or f"id = {acme})" in plan, (view, plan)
            assert "analyst_roles" not in plan and "pg_authid" not in plan and "InitPlan" not in plan, (view, plan)


def test_a_temporary_table_cannot_stand_in_for_the_bindings(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    """The function runs as its owner in the analyst's session: an analyst may create temporary tables
    (read-only is only a default), and a temporary `analyst_roles` naming the other tenant would be read
    first were the function's names not schema-qualified, with pg_temp last on its search path. Nor may
    an analyst create objects in the schema (operators or functions shadowing those others call)."""
    url, factory, _world = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "acme")
        globex = session.scalar(text("SELECT id FROM tenants WHERE slug = 'globex'"))
    with _connect_as(url, role_name) as conn:
        conn.execute("SET default_transaction_read_only = off")
        oid = conn.execute("SELECT oid FROM pg_roles WHERE rolname = session_user").fetchone()[0]  # type: ignore[index]
        conn.execute("CREATE TEMP TABLE analyst_roles (role_name text, tenant_id int, role_oid bigint, "
                     "created_at timestamptz)")
        conn.execute("INSERT INTO analyst_roles VALUES (session_user, %s, %s, now())", (globex, oid))
        for view in VIEWS:
            assert {row[0] for row in conn.execute(f"SELECT DISTINCT tenant FROM {view}")} == {"acme"}, view
        assert conn.execute("SELECT has_schema_privilege('public', 'CREATE')").fetchone() == (False,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE FUNCTION public.lower(character varying) RETURNS text LANGUAGE sql "
                         "AS 'SELECT ''x''::text'")
        # Dropped here, not left to the session's end: the server drops a closed session's temporary tables
        # after the client has gone, and the role's teardown (DROP ROLE) sometimes came first and failed.
        conn.execute("DROP TABLE pg_temp.analyst_roles")


def test_a_role_made_again_under_a_bound_name_is_not_bound(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    """A binding holds for the role it was made for (its oid), not for its name: a role dropped by hand and
    created again under the same name (roles are cluster-wide: a grant in another database does that) sees
    nothing. `list` flags such a binding, `revoke` removes it and leaves that other role alone, and a new
    grant of the name replaces a binding whose role is gone, saying so."""
    url, factory, _world = pg_world
    with unit_of_work(factory) as session:
        grant_analyst(session, role_name, "acme")
    with _pg(PG_USER, "postgres") as admin:
        admin.execute(f'DROP ROLE "{role_name}"')
    with unit_of_work(factory) as session:
        assert [row.role_status for row in list_analysts(session)] == [RoleStatus.missing]
    with _pg(PG_USER, "postgres") as admin:
        admin.execute(f'CREATE ROLE "{role_name}" LOGIN IN ROLE {ANALYST_GROUP}')
    with _connect_as(url, role_name) as conn:
        assert conn.execute("SELECT postcall_analyst_tenant()").fetchone() == (-1,)
        for view in VIEWS:
            assert conn.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,), view
    with unit_of_work(factory) as session:
        assert [row.role_status for row in list_analysts(session)] == [RoleStatus.other]
        # The name is taken by a role this database never granted: grant refuses it, revoke leaves it be.
        with pytest.raises(AnalystRoleError, match="already exists"), session.begin_nested():
            grant_analyst(session, role_name, "globex")
        assert revoke_analyst(session, role_name) is Revoked.binding_only
        assert list_analysts(session) == []
    with _pg(PG_USER, "postgres") as admin:
        assert admin.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role_name]).fetchone() == (True,)

    # A binding left behind by a role that is gone is replaced by the next grant of the name.
    with unit_of_work(factory) as session:
        session.execute(text("INSERT INTO analyst_roles (role_name, tenant_id, created_at, role_oid) "
                             "SELECT :name, id, now(), 1 FROM tenants WHERE slug = 'acme'"), {"name": role_name})
    with _pg(PG_USER, "postgres") as admin:
        admin.execute(f'DROP ROLE "{role_name}"')
    with unit_of_work(factory) as session:
        granted = grant_analyst(session, role_name, "globex")
    assert granted.replaced_tenant == "acme"
    with unit_of_work(factory) as session:
        assert [(row.tenant, row.role_status) for row in list_analysts(session)] == [("globex", RoleStatus.ok)]
    with _connect_as(url, role_name) as conn:
        assert {row[0] for row in conn.execute("SELECT DISTINCT tenant FROM analytics_calls")} == {"globex"}


def _scram_verifies(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier (RFC 5802/7677, as PostgreSQL stores it) is `password`'s."""
    import base64
    import hashlib
    import hmac

    scheme, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return (scheme == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == stored_key
            and hmac.new(salted, b"Server Key", "sha256").digest() == server_key)


def test_grant_sends_a_scram_verifier_never_the_password(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str
) -> None:
    """The server logs DDL statements (log_statement = 'ddl') and shows running ones (pg_stat_activity): the
    password is in none of them; CREATE ROLE carries its SCRAM-SHA-256 verifier, computed by libpq here. The
    new role gets the settings' connection limit and timeouts."""
    from sqlalchemy import event

    _url, factory, _world = pg_world
    engine = factory.kw["bind"]
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with unit_of_work(factory) as session:
            granted = grant_analyst(session, role_name, "acme")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert not [statement for statement in sent if granted.password in statement]
    (create,) = [statement for statement in sent if statement.startswith("CREATE ROLE")]
    assert "PASSWORD 'SCRAM-SHA-256$" in create
    stored_verifier = create.split("PASSWORD '", 1)[1].split("'", 1)[0]
    with _pg(PG_USER, "postgres") as admin:
        stored, limit, settings = admin.execute(
            "SELECT a.rolpassword, a.rolconnlimit, s.setconfig FROM pg_authid a "
            "LEFT JOIN pg_db_role_setting s ON s.setrole = a.oid AND s.setdatabase = 0 WHERE a.rolname = %s",
            [role_name]).fetchone() or (None, None, None)
    assert stored == stored_verifier and _scram_verifies(stored, granted.password)
    assert not _scram_verifies(stored, granted.password + "x")
    assert limit == 5
    assert {"default_transaction_read_only=on", "jit=off", "statement_timeout=300000",
            "idle_in_transaction_session_timeout=600000"} <= set(settings or [])


def test_rotate_gives_a_new_password_by_its_verifier_and_ends_open_sessions(
    pg_world: tuple[str, sessionmaker[Session], World], role_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from app.cli import app
    from app.config import get_settings

    url, factory, _world = pg_world
    monkeypatch.setenv("POSTCALL_DATABASE_URL", url)
    get_settings.cache_clear()
    with unit_of_work(factory) as session:
        granted = grant_analyst(session, role_name, "acme")
    open_session = _connect_as(url, role_name)
    assert open_session.execute("SELECT count(*) FROM analytics_calls").fetchone() is not None
    runner = CliRunner()
    rotated = runner.invoke(app, ["analysts", "rotate", role_name, "--json"])
    assert rotated.exit_code == 0, rotated.output
    answer = json.loads(rotated.stdout)
    assert answer["tenant"] == "acme" and answer["sessions_ended"] == 1
    new_password = answer["password"]
    assert new_password != granted.password and len(new_password) >= 20
    with _pg(PG_USER, "postgres") as admin:
        (stored,) = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role_name]).fetchone() \
            or (None,)
    assert stored is not None and _scram_verifies(stored, new_password)
    assert not _scram_verifies(stored, granted.password)
    # What the old password opened is over.
    with pytest.raises(psycopg.OperationalError):
        open_session.execute("SELECT 1")
    open_session.close()
    # The binding still holds: the role sees its tenant as before.
    with _connect_as(url, role_name) as conn:
        assert {row[0] for row in conn.execute("SELECT DISTINCT tenant FROM analytics_calls")} == {"acme"}
    # A name not granted here, or whose role is gone, is refused.
    assert runner.invoke(app, ["analysts", "rotate", "pc_no_such_analyst"]).exit_code != 0
    with _pg(PG_USER, "postgres") as admin:
        admin.execute(f'DROP ROLE "{role_name}"')
    gone = runner.invoke(app, ["analysts", "rotate", role_name])
    assert gone.exit_code != 0 and "grant again" in gone.output, gone.output
