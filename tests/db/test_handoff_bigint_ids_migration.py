"""Migration 0026: the hand-off tables' ids, keys and sequences are 64-bit on PostgreSQL; the two hand-over
views set aside for the change come back with what an operator had granted on them, both ways."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine
from tests.support.services import temporary_pg_database

COLUMNS = {("outbox", "id"), ("webhook_deliveries", "id"), ("webhook_deliveries", "outbox_id"),
           ("webhook_attempts", "id"), ("webhook_attempts", "delivery_id")}


def _types_and_grants(url: str) -> tuple[set[str], set[str], set[str]]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            types = {connection.scalar(text(
                "SELECT data_type FROM information_schema.columns WHERE table_name = :t AND column_name = :c"),
                {"t": table, "c": column}) for table, column in COLUMNS}
            sequences = set(connection.scalars(text(
                "SELECT data_type FROM information_schema.sequences WHERE sequence_name IN "
                "('outbox_id_seq', 'webhook_deliveries_id_seq', 'webhook_attempts_id_seq')")))
            grants = set(connection.scalars(text(
                "SELECT grantee || ':' || table_name FROM information_schema.role_table_grants "
                "WHERE table_name IN ('analytics_events', 'analytics_webhook_deliveries') AND grantee = 'PUBLIC'")))
        return types, sequences, grants
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_hand_off_ids_become_64_bit_and_the_views_keep_their_grants() -> None:
    with temporary_pg_database() as url:
        upgrade(url, "0025")
        engine = create_db_engine(url)
        with engine.begin() as connection:  # an operator's reporting access
            connection.execute(text("GRANT SELECT ON analytics_events, analytics_webhook_deliveries TO PUBLIC"))
        engine.dispose()
        granted = {"PUBLIC:analytics_events", "PUBLIC:analytics_webhook_deliveries"}
        assert _types_and_grants(url) == ({"integer"}, {"integer"}, granted)
        upgrade(url, "0026")
        assert _types_and_grants(url) == ({"bigint"}, {"bigint"}, granted)
        downgrade(url, "0025")
        assert _types_and_grants(url) == ({"integer"}, {"integer"}, granted)
