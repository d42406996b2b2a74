"""PostgreSQL login roles for analysts, each bound to one tenant.

An analyst role is a read-only LOGIN role, a member of the `postcall_analyst` group (which holds SELECT
on the analyst views and nothing else), listed in `analyst_roles` with its tenant. The views show a member
of the group only its tenant's rows, and no rows at all once its binding is gone: isolation is enforced
by the database, for psql and BI tools alike, not by the application (the row views through row-level
security on the tables they read, applied to their owner `postcall_analyst_views`, migration 0014; the
rollup views through a security barrier, migration 0011).

Roles are cluster-wide in PostgreSQL; the binding is per database. SQLite has no roles: an analyst given
the SQLite file reads every tenant, so SQLite is single-tenant for analysts.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

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


@dataclass(frozen=True)
class AnalystRoleRow:
    role_name: str
    tenant: str
    created_at: datetime


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
    return session.scalar(text("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :n"), {"n": role_name}) is not None


def grant_analyst(session: Session, role_name: str, tenant: str) -> GrantedRole:
    """Create `role_name`: LOGIN, read-only, sees only `tenant` in the analyst views. Flushes; never commits.

    The password is random and returned once (only PostgreSQL keeps its hash).
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
    password = secrets.token_urlsafe(PASSWORD_BYTES)  # [A-Za-z0-9_-] only: safe inside the literal below
    # DDL takes no bind parameters; the name is checked against ROLE_NAME and quoted.
    session.execute(text(
        f'CREATE ROLE "{role_name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT '
        f"PASSWORD '{password}' IN ROLE {ANALYST_GROUP}"
    ))
    session.execute(text(f'ALTER ROLE "{role_name}" SET default_transaction_read_only = on'))
    # The views' row-level security adds per-row checks whose estimated cost switches JIT compilation on
    # for queries that read tens of thousands of rows; compiling took longer than the query (1.3 s of
    # 2.8 s for one day's claims at 1M calls, docs/benchmarks.md).
    session.execute(text(f'ALTER ROLE "{role_name}" SET jit = off'))
    session.add(AnalystRole(role_name=role_name, tenant_id=tenant_row.id))
    session.flush()
    return GrantedRole(role_name=role_name, tenant=tenant, password=password)


def revoke_analyst(session: Session, role_name: str) -> bool:
    """Take an analyst role made by grant_analyst (and only such a role) out of use, and drop it when it can
    be dropped; True when it was. Flushes; never commits.

    Access ends whatever the role owns: its binding goes (the views show it nothing), it loses LOGIN and
    the analyst group (no view at all). Then what it owns in this database is dropped and the role with
    it. An analyst can own objects the operator never granted (`BEGIN READ WRITE; SELECT lo_create(0)`
    needs no privilege, in any database of the cluster): a DROP ROLE failing on those left the role, its
    binding and its login in place, so the analyst kept reading. Now that failure leaves a disabled role
    behind (False), which the caller reports."""
    _require_postgresql(session)
    _check_name(role_name)
    bound = session.get(AnalystRole, role_name)
    if bound is None:
        raise NotFoundError(f"no analyst role {role_name!r} in this database")
    session.execute(delete(AnalystRole).where(AnalystRole.role_name == role_name))
    if not _role_exists(session, role_name):
        session.flush()
        return True
    session.execute(text(f'ALTER ROLE "{role_name}" NOLOGIN'))
    session.execute(text(f'REVOKE {ANALYST_GROUP} FROM "{role_name}"'))
    # Sessions already open keep running under NOLOGIN; end them (needs the right to signal them: a
    # superuser, pg_signal_backend, or membership; without it their next query on a view is refused: no group).
    _in_savepoint(session, f"SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "  # noqa: S608
                           f"WHERE usename = '{role_name}'")
    dropped = _in_savepoint(session, f'DROP OWNED BY "{role_name}"') and _in_savepoint(
        session, f'DROP ROLE "{role_name}"')  # fails when it owns objects in another database
    session.flush()
    return dropped


def _in_savepoint(session: Session, statement: str) -> bool:
    """Run `statement` in a savepoint; False (the transaction still usable) when the server refused it."""
    try:
        with session.begin_nested():
            session.execute(text(statement))
    except DBAPIError:
        return False
    return True


def list_analysts(session: Session) -> list[AnalystRoleRow]:
    rows = session.execute(
        select(AnalystRole.role_name, Tenant.slug, AnalystRole.created_at)
        .join(Tenant, Tenant.id == AnalystRole.tenant_id)
        .order_by(Tenant.slug, AnalystRole.role_name)
    ).all()
    return [AnalystRoleRow(name, slug, created) for name, slug, created in rows]
