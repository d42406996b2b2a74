"""PostgreSQL login roles for analysts, each bound to one tenant.

An analyst role is a read-only LOGIN role, a member of the `postcall_analyst` group (which holds SELECT
on the analyst views and nothing else), listed in `analyst_roles` with its tenant. The views show a member
of the group only its tenant's rows, and no rows at all once its binding is gone: isolation is enforced
by the database, for psql and BI tools alike, not by the application (the row views through row-level
security on the tables they read, applied to their owner `postcall_analyst_views`, migration 0014; the
rollup views through a security barrier, migration 0011). Since migration 0025 the filter compares each
row's tenant with `postcall_analyst_tenant()`, which the planner evaluates once per query (an analyst's
EXPLAIN ANALYZE shows a constant, nothing that runs per row), and which accepts a binding only for the
role it was made for: the binding keeps the role's oid, so a later role of the same name is not bound.

Roles are cluster-wide in PostgreSQL; the binding is per database. SQLite has no roles: an analyst given
the SQLite file reads every tenant, so SQLite is single-tenant for analysts.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import psycopg
from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.config import get_settings
from app.errors import ConfigError, NotFoundError, PostcallError
from app.models import AnalystRole, Tenant
from app.pipeline.calls import find_tenant

ANALYST_GROUP = "postcall_analyst"
# Owns the row views; the tables' row-level security policies filter what it reads for an analyst.
VIEW_OWNER = "postcall_analyst_views"
# Lower case, no quoting surprises, within PostgreSQL's 63-byte identifier limit.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
PASSWORD_BYTES = 24


class AnalystRoleError(PostcallError):
    """An analyst role cannot be created or removed as asked."""


@dataclass(frozen=True)
class GrantedRole:
    role_name: str
    tenant: str
    password: str
    # The tenant of a binding of the same name left behind by a role that is gone, which this grant replaced.
    replaced_tenant: str | None = None


class RoleStatus(StrEnum):
    """Whether a binding's role is there (`ok`), gone (`missing`), or another role of the same name, made
    after the bound one was dropped (`other`): the views show that role nothing."""

    ok = "ok"
    missing = "missing"
    other = "other"


@dataclass(frozen=True)
class AnalystRoleRow:
    role_name: str
    tenant: str
    created_at: datetime
    role_status: RoleStatus = RoleStatus.ok


class Revoked(StrEnum):
    """What `revoke_analyst` did."""

    dropped = "dropped"  # the role is gone (or was already), and its binding
    disabled = "disabled"  # no login, no view, no binding; the role owns objects elsewhere and stays
    binding_only = "binding_only"  # the role of that name is not the one bound here: only the binding went


def _require_postgresql(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        raise ConfigError(
            "analyst roles need PostgreSQL: SQLite has no roles, so it is single-tenant for analysts "
            "(whoever has the file reads every tenant)"
        )


def _check_name(role_name: str) -> None:
    if not ROLE_NAME.fullmatch(role_name):
        raise AnalystRoleError(
            f"invalid role name {role_name!r}: use 1-63 lower-case letters, digits or '_', not starting with a digit"
        )


def _role_exists(session: Session, role_name: str) -> bool:
    return _role_oid(session, role_name) is not None


def _role_oid(session: Session, role_name: str) -> int | None:
    oid = session.scalar(text("SELECT CAST(oid AS bigint) FROM pg_catalog.pg_roles WHERE rolname = :n"),
                         {"n": role_name})
    return None if oid is None else int(oid)


def scram_verifier(session: Session, role_name: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of `password` for `role_name`, computed here by libpq (a random salt,
    libpq's iteration count): what PostgreSQL stores, sent in place of the password, so that the password
    is in no statement the server sees (or logs: `log_statement = 'ddl'` logs CREATE ROLE)."""
    driver = session.connection().connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise ConfigError("analyst roles need the psycopg driver (postgresql+psycopg://...)")
    verifier = driver.pgconn.encrypt_password(password.encode(), role_name.encode(), b"scram-sha-256")
    text_form = verifier.decode("ascii")
    # Base64 and the scheme's '$' and ':' only: safe inside the literal below.
    if not text_form.startswith("SCRAM-SHA-256$") or "'" in text_form or "\\" in text_form:
        raise AnalystRoleError("libpq returned no SCRAM-SHA-256 verifier for the password")
    return text_form


def _role_settings() -> list[str]:
    """ALTER ROLE ... SET clauses for a new analyst role, from the settings."""
    settings = get_settings()
    clauses = [
        "default_transaction_read_only = on",
        # The views' row-level security adds per-row checks whose estimated cost switches JIT compilation
        # on for queries that read tens of thousands of rows; compiling took longer than the query (1.3 s
        # of 2.8 s for one day's claims at 1M calls, docs/benchmarks.md).
        "jit = off",
    ]
    if settings.analyst_statement_timeout_seconds > 0:
        clauses.append(f"statement_timeout = {int(settings.analyst_statement_timeout_seconds * 1000)}")
    if settings.analyst_idle_in_transaction_timeout_seconds > 0:
        clauses.append("idle_in_transaction_session_timeout = "
                       f"{int(settings.analyst_idle_in_transaction_timeout_seconds * 1000)}")
    return clauses


def grant_analyst(session: Session, role_name: str, tenant: str) -> GrantedRole:
    """Create `role_name`: LOGIN, read-only, sees only `tenant` in the analyst views. Flushes; never commits.

    The password is random and returned once: the server is sent its SCRAM-SHA-256 verifier only, and
    keeps nothing else. A binding of the same name whose role is gone (dropped by hand) is replaced, and
    `replaced_tenant` says whose it was. The binding records the new role's oid: the views show its tenant
    to this role only, never to a later role of the same name.
    """
    _require_postgresql(session)
    _check_name(role_name)
    tenant_row = find_tenant(session, tenant)
    if tenant_row is None:
        raise NotFoundError(f"no tenant {tenant!r}")
    if not _role_exists(session, ANALYST_GROUP):
        raise ConfigError(
            f"the group role {ANALYST_GROUP} is missing: run `postcall db upgrade` as a role with CREATEROLE "
            f"(or create it: CREATE ROLE {ANALYST_GROUP} NOLOGIN)"
        )
    if not _role_exists(session, VIEW_OWNER):
        raise ConfigError(
            f"the role {VIEW_OWNER} that owns the analyst views is missing, so the views are not granted to "
            f"analysts: create it (CREATE ROLE {VIEW_OWNER} NOLOGIN NOBYPASSRLS) and migrate revision 0014 "
            "again as a role with CREATEROLE"
        )
    if _role_exists(session, role_name):
        raise AnalystRoleError(f"a PostgreSQL role named {role_name!r} already exists (roles are cluster-wide)")
    # The role is gone but its binding is here: it was dropped by hand (or by a revoke in another database
    # of the server). The binding names the old role's oid and binds nobody; this grant takes its place.
    stale = session.get(AnalystRole, role_name)
    replaced_tenant = None
    if stale is not None:
        replaced_tenant = session.scalar(select(Tenant.slug).where(Tenant.id == stale.tenant_id))
        session.delete(stale)
        session.flush()
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    verifier = scram_verifier(session, role_name, password)
    limit = get_settings().analyst_connection_limit
    # DDL takes no bind parameters; the name is checked against ROLE_NAME and quoted, the verifier checked.
    # On the driver, as written: the verifier's ':' would read as a bind parameter to text().
    session.connection().exec_driver_sql(
        f'CREATE ROLE "{role_name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT '
        f"CONNECTION LIMIT {int(limit) if limit > 0 else -1} PASSWORD '{verifier}' IN ROLE {ANALYST_GROUP}"
    )
    for clause in _role_settings():
        session.execute(text(f'ALTER ROLE "{role_name}" SET {clause}'))
    session.add(AnalystRole(role_name=role_name, tenant_id=tenant_row.id, role_oid=_role_oid(session, role_name)))
    session.flush()
    return GrantedRole(role_name=role_name, tenant=tenant, password=password, replaced_tenant=replaced_tenant)


def revoke_analyst(session: Session, role_name: str) -> Revoked:
    """Take an analyst role made by grant_analyst (and only such a role) out of use, and drop it when it can
    be dropped. Flushes; never commits.

    Access ends whatever the role owns: its binding goes (the views show it nothing), it loses LOGIN and
    the analyst group (no view at all). Then what it owns in this database is dropped and the role with
    it. An analyst can own objects the operator never granted (`BEGIN READ WRITE; SELECT lo_create(0)`
    needs no privilege, in any database of the cluster): a DROP ROLE failing on those left the role, its
    binding and its login in place, so the analyst kept reading. Now that failure leaves a disabled role
    behind (`disabled`), which the caller reports.

    A role of that name that is not the role bound here (the bound one was dropped by hand and the name
    taken again, perhaps by a grant in another database of the server) is left alone: only the binding
    goes (`binding_only`)."""
    _require_postgresql(session)
    _check_name(role_name)
    bound = session.get(AnalystRole, role_name)
    if bound is None:
        raise NotFoundError(f"no analyst role {role_name!r} in this database")
    bound_oid = bound.role_oid
    session.execute(delete(AnalystRole).where(AnalystRole.role_name == role_name))
    oid = _role_oid(session, role_name)
    if oid is None:
        session.flush()
        return Revoked.dropped
    if oid != bound_oid:
        session.flush()
        return Revoked.binding_only
    session.execute(text(f'ALTER ROLE "{role_name}" NOLOGIN'))
    session.execute(text(f'REVOKE {ANALYST_GROUP} FROM "{role_name}"'))
    # Sessions already open keep running under NOLOGIN; end them (needs the right to signal them: a
    # superuser, pg_signal_backend, or membership; without it their next query on a view is refused: no group).
    end_analyst_sessions(session, role_name)
    dropped = _in_savepoint(session, f'DROP OWNED BY "{role_name}"') and _in_savepoint(
        session, f'DROP ROLE "{role_name}"')  # fails when it owns objects in another database
    session.flush()
    return Revoked.dropped if dropped else Revoked.disabled


@dataclass(frozen=True)
class RotatedPassword:
    role_name: str
    tenant: str
    password: str


def rotate_analyst_password(session: Session, role_name: str) -> RotatedPassword:
    """Give an analyst role made by grant_analyst a new random password (returned once; the server is sent
    its SCRAM-SHA-256 verifier only, as on grant). Refused for a name whose role is not the one bound here.
    Flushes; never commits. Sessions the old password opened go on: `end_analyst_sessions` after the commit
    ends them (before it, the old password could still open new ones)."""
    _require_postgresql(session)
    _check_name(role_name)
    bound = session.get(AnalystRole, role_name)
    if bound is None:
        raise NotFoundError(f"no analyst role {role_name!r} in this database")
    oid = _role_oid(session, role_name)
    if oid is None or oid != bound.role_oid:
        raise AnalystRoleError(
            f"the role {role_name!r} is {'gone' if oid is None else 'not the one granted here'}: "
            f"revoke its binding (postcall analysts revoke {role_name}) and grant again")
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    verifier = scram_verifier(session, role_name, password)
    # As in grant_analyst: the name checked against ROLE_NAME and quoted, the verifier checked; on the driver.
    session.connection().exec_driver_sql(f'ALTER ROLE "{role_name}" PASSWORD \'{verifier}\'')
    session.flush()
    tenant = session.scalar(select(Tenant.slug).where(Tenant.id == bound.tenant_id)) or str(bound.tenant_id)
    return RotatedPassword(role_name=role_name, tenant=tenant, password=password)


def end_analyst_sessions(session: Session, role_name: str) -> int | None:
    """End the open sessions of `role_name` (a rotation after a leak must end what the old password opened):
    how many, or None when this login may not signal them (a superuser, pg_signal_backend or membership is
    needed): then some may have ended before the refusal, and the rest go on until they disconnect."""
    _check_name(role_name)
    try:
        with session.begin_nested():
            return sum(1 for ended in session.scalars(text(
                "SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = :n"),
                {"n": role_name}) if ended)
    except DBAPIError:
        return None


def _in_savepoint(session: Session, statement: str) -> bool:
    """Run `statement` in a savepoint; False (the transaction still usable) when the server refused it."""
    try:
        with session.begin_nested():
            session.execute(text(statement))
    except DBAPIError:
        return False
    return True


def list_analysts(session: Session) -> list[AnalystRoleRow]:
    """The bindings of this database, each with whether its role is still the one bound (PostgreSQL)."""
    rows = session.execute(
        select(AnalystRole.role_name, Tenant.slug, AnalystRole.created_at, AnalystRole.role_oid)
        .join(Tenant, Tenant.id == AnalystRole.tenant_id)
        .order_by(Tenant.slug, AnalystRole.role_name)
    ).all()
    postgresql = session.get_bind().dialect.name == "postgresql"
    listed = []
    for name, slug, created, bound_oid in rows:
        status = RoleStatus.ok
        if postgresql:
            oid = _role_oid(session, name)
            status = (RoleStatus.missing if oid is None else RoleStatus.ok if oid == bound_oid
                      else RoleStatus.other)
        listed.append(AnalystRoleRow(name, slug, created, status))
    return listed
