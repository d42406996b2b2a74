"""edited_unverified_items_flagged: an item edited into words its evidence does not support is undecided

A reviewer's edit is verified again on the item's evidence; one the transcript does not support used to count
as decided, so a call holding it kept `flagged_items` at 0 and bulk approval ("every item verified") approved
it. It now counts as undecided until a reviewer approves it as written (app/review.py `undecided_unverified`).
The count each current extraction keeps on its call is brought up to date here: data only.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05 07:40:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0030'
down_revision: str | None = '0029'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EDITED_UNVERIFIED = ("FROM claims cl WHERE cl.run_id = calls.current_run_id AND cl.grounding_status = 'ungrounded' "
                      "AND cl.review_status = 'edited'")
_UNDECIDED = ("FROM claims cl WHERE cl.run_id = calls.current_run_id AND cl.grounding_status = 'ungrounded' "
              "AND cl.review_status IN ('pending', 'edited')")


def upgrade() -> None:
    # Only calls holding such an item change; a decided call's count is kept as it is by every decision path.
    op.execute(f"UPDATE calls SET flagged_items = (SELECT COUNT(*) {_UNDECIDED}) "  # noqa: S608 - constant SQL
               f"WHERE EXISTS (SELECT 1 {_EDITED_UNVERIFIED})")


def downgrade() -> None:
    pending = ("FROM claims cl WHERE cl.run_id = calls.current_run_id AND cl.grounding_status = 'ungrounded' "
               "AND cl.review_status = 'pending'")
    op.execute(f"UPDATE calls SET flagged_items = (SELECT COUNT(*) {pending}) "  # noqa: S608 - constant SQL
               f"WHERE EXISTS (SELECT 1 {_EDITED_UNVERIFIED})")
