"""batch_counts filled for every batch with items, so the first progress page after the
upgrade does not count a whole catalog's label versions itself

The counts are the definition of ``dataops.labeling.progress`` at this revision (written out
here: a revision never imports dataops): items; sent (a Label Studio task); answered (a live
answer: a version nothing supersedes, not a deletion record); accepted (a live answer
accepted or adjudicated); rejected (a live answer rejected, none accepted); live answers;
sent overlap and gold items. Progress reads count again any batch written since.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILL = """
INSERT INTO batch_counts (batch_id, items, sent, answered, accepted, rejected, answers,
                          overlap_items, gold_items, computed_at)
SELECT bi.batch_id,
       count(bi.id),
       sum(CASE WHEN bi.ls_task_id IS NOT NULL THEN 1 ELSE 0 END),
       sum(CASE WHEN la.answers > 0 THEN 1 ELSE 0 END),
       sum(CASE WHEN la.accepted = 1 THEN 1 ELSE 0 END),
       sum(CASE WHEN la.rejected = 1 AND la.accepted = 0 THEN 1 ELSE 0 END),
       coalesce(sum(la.answers), 0),
       sum(CASE WHEN bi.ls_task_id IS NOT NULL AND bi.is_overlap THEN 1 ELSE 0 END),
       sum(CASE WHEN bi.ls_task_id IS NOT NULL AND bi.is_gold THEN 1 ELSE 0 END),
       CURRENT_TIMESTAMP
FROM batch_items bi
LEFT JOIN (
    SELECT lv.batch_id, lv.image_id, count(*) AS answers,
           max(CASE WHEN lv.status IN ('accepted', 'adjudicated') THEN 1 ELSE 0 END) AS accepted,
           max(CASE WHEN lv.status = 'rejected' THEN 1 ELSE 0 END) AS rejected
    FROM label_versions lv
    WHERE lv.batch_id IS NOT NULL
      AND lv.status <> 'deleted'
      AND NOT EXISTS (SELECT 1 FROM label_versions n WHERE n.supersedes_id = lv.id)
    GROUP BY lv.batch_id, lv.image_id
) la ON la.batch_id = bi.batch_id AND la.image_id = bi.image_id
WHERE NOT EXISTS (SELECT 1 FROM batch_counts c WHERE c.batch_id = bi.batch_id)
GROUP BY bi.batch_id
"""


def upgrade() -> None:
    op.execute(FILL)


def downgrade() -> None:
    op.execute("DELETE FROM batch_counts")
