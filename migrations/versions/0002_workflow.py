"""workflow: dedup, scoring, batches, labeling, audits, manifests, auth

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from _triggers import drop_append_only, make_append_only
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


IMMUTABLE = ("audits", "manifests", "manifest_rows")


def upgrade() -> None:
    op.create_table(
        "dedup_index_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("max_image_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.SmallInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_dedup_index_state")),
    )
    op.create_table(
        "dup_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("representative_id", sa.Integer(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("max_distance", sa.Integer(), nullable=False),
        sa.Column("methods", sa.String(length=64), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["dup_groups.id"],
            name=op.f("fk_dup_groups_merged_into_id_dup_groups"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dup_groups")),
    )
    op.create_table(
        "guidelines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "classes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("label_config", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guidelines")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_guidelines_name_version")),
        sa.UniqueConstraint("sha256", name=op.f("uq_guidelines_sha256")),
    )
    op.create_table(
        "manifests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.String(length=71), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column(
            "splits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "selection",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column(
            "split_counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("body_key", sa.String(length=256), nullable=False),
        sa.Column("parquet_key", sa.String(length=256), nullable=False),
        sa.Column("datasheet_key", sa.String(length=256), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["manifests.id"], name=op.f("fk_manifests_parent_id_manifests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifests")),
        sa.UniqueConstraint("name", name=op.f("uq_manifests_name")),
    )
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manifests_content_hash"), ["content_hash"], unique=False
        )

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=80), nullable=False),
        sa.Column(
            "classes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "input_spec",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("has_embedding", sa.Boolean(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "sha256", name=op.f("uq_model_versions_name_sha256")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
    )
    op.create_table(
        "vendors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendors")),
        sa.UniqueConstraint("name", name=op.f("uq_vendors_name")),
    )
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        sa.Column("connection", sa.String(length=64), nullable=True),
        sa.Column("ls_user_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=256), nullable=True),
        sa.Column("mapped_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendors.id"], name=op.f("fk_annotators_vendor_id_vendors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotators")),
        sa.UniqueConstraint(
            "connection", "ls_user_id", name=op.f("uq_annotators_connection_ls_user_id")
        ),
        sa.UniqueConstraint("name", name=op.f("uq_annotators_name")),
    )
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_annotators_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "queues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("guideline_id", sa.Integer(), nullable=False),
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("overlap", sa.Double(), nullable=False),
        sa.Column("gold", sa.Double(), nullable=False),
        sa.Column("due_days", sa.Double(), nullable=True),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("pull_cursor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guideline_id"], ["guidelines.id"], name=op.f("fk_queues_guideline_id_guidelines")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendors.id"], name=op.f("fk_queues_vendor_id_vendors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queues")),
        sa.UniqueConstraint("name", name=op.f("uq_queues_name")),
    )
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queues_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendors.id"], name=op.f("fk_users_vendor_id_vendors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_tokens_prefix")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("queue_id", sa.Integer(), nullable=True),
        sa.Column("parent_batch_id", sa.Integer(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("overlap", sa.Double(), nullable=False),
        sa.Column("gold", sa.Double(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_batches_model_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_batch_id"], ["batches.id"], name=op.f("fk_batches_parent_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queues.id"], name=op.f("fk_batches_queue_id_queues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_queue_id"), ["queue_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_batches_status"), ["status"], unique=False)

    op.create_table(
        "dup_edges",
        sa.Column("image_a_id", sa.Integer(), nullable=False),
        sa.Column("image_b_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("distance", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_a_id"],
            ["images.id"],
            name=op.f("fk_dup_edges_image_a_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_b_id"],
            ["images.id"],
            name=op.f("fk_dup_edges_image_b_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_a_id", "image_b_id", "method", name=op.f("pk_dup_edges")),
    )
    with op.batch_alter_table("dup_edges", schema=None) as batch_op:
        batch_op.create_index("ix_dup_edges_image_b_id", ["image_b_id"], unique=False)

    op.create_table(
        "predictions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column(
            "probs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("predicted_class", sa.String(length=128), nullable=False),
        sa.Column("predicted_score", sa.Double(), nullable=False),
        sa.Column("least_confidence", sa.Double(), nullable=False),
        sa.Column("margin", sa.Double(), nullable=False),
        sa.Column("entropy", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_predictions_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_predictions_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint(
            "model_version_id", "image_id", name=op.f("uq_predictions_model_version_id_image_id")
        ),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_predictions_image_id"), ["image_id"], unique=False)
        batch_op.create_index(
            "ix_predictions_model_version_id_entropy", ["model_version_id", "entropy"], unique=False
        )
        batch_op.create_index(
            "ix_predictions_model_version_id_least_confidence",
            ["model_version_id", "least_confidence"],
            unique=False,
        )
        batch_op.create_index(
            "ix_predictions_model_version_id_margin", ["model_version_id", "margin"], unique=False
        )

    op.create_table(
        "audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("gate", sa.Double(), nullable=False),
        sa.Column("pass_rate", sa.Double(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("report_json_key", sa.String(length=256), nullable=True),
        sa.Column("report_html_key", sa.String(length=256), nullable=True),
        sa.Column("relabel_batch_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_audits_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["relabel_batch_id"], ["batches.id"], name=op.f("fk_audits_relabel_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audits")),
    )
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audits_batch_id"), ["batch_id"], unique=False)

    op.create_table(
        "image_claims",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_image_claims_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_claims_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_image_claims")),
    )
    with op.batch_alter_table("image_claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_claims_batch_id"), ["batch_id"], unique=False)

    op.create_table(
        "label_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("guideline_id", sa.Integer(), nullable=True),
        sa.Column("task", sa.String(length=128), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_key", sa.String(length=256), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["annotators.id"],
            name=op.f("fk_label_versions_annotator_id_annotators"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_label_versions_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["guideline_id"],
            ["guidelines.id"],
            name=op.f("fk_label_versions_guideline_id_guidelines"),
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_label_versions_image_id_images")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["label_versions.id"],
            name=op.f("fk_label_versions_supersedes_id_label_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_versions")),
        sa.UniqueConstraint("source_key", name=op.f("uq_label_versions_source_key")),
    )
    with op.batch_alter_table("label_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_versions_annotator_id"), ["annotator_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_label_versions_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_label_versions_image_id"), ["image_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_label_versions_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_label_versions_task"), ["task"], unique=False)

    op.create_table(
        "batch_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("is_overlap", sa.Boolean(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("gold_label_version_id", sa.Integer(), nullable=True),
        sa.Column("required_annotations", sa.Integer(), nullable=False),
        sa.Column("ls_task_id", sa.Integer(), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_items_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["gold_label_version_id"],
            ["label_versions.id"],
            name=op.f("fk_batch_items_gold_label_version_id_label_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_batch_items_image_id_images")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_items")),
        sa.UniqueConstraint("batch_id", "image_id", name=op.f("uq_batch_items_batch_id_image_id")),
        sa.UniqueConstraint("item_key", name=op.f("uq_batch_items_item_key")),
    )
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_items_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_batch_items_image_id"), ["image_id"], unique=False)

    op.create_table(
        "manifest_rows",
        sa.Column("content_hash", sa.String(length=71), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=32), nullable=False),
        sa.Column("label_version_id", sa.Integer(), nullable=True),
        sa.Column(
            "label",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("dup_group_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_manifest_rows_image_id_images")
        ),
        sa.ForeignKeyConstraint(
            ["label_version_id"],
            ["label_versions.id"],
            name=op.f("fk_manifest_rows_label_version_id_label_versions"),
        ),
        sa.PrimaryKeyConstraint("content_hash", "sha256", name=op.f("pk_manifest_rows")),
    )
    with op.batch_alter_table("manifest_rows", schema=None) as batch_op:
        batch_op.create_index("ix_manifest_rows_image_id", ["image_id"], unique=False)

    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dup_group_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_images_dup_group_id"), ["dup_group_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_images_dup_group_id_dup_groups"),
            "dup_groups",
            ["dup_group_id"],
            ["id"],
            ondelete="SET NULL",
        )
    for table in IMMUTABLE:
        make_append_only(table)


def downgrade() -> None:
    for table in IMMUTABLE:
        drop_append_only(table)
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_images_dup_group_id_dup_groups"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_images_dup_group_id"))
        batch_op.drop_column("dup_group_id")

    with op.batch_alter_table("manifest_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_manifest_rows_image_id")

    op.drop_table("manifest_rows")
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_items_image_id"))
        batch_op.drop_index(batch_op.f("ix_batch_items_batch_id"))

    op.drop_table("batch_items")
    with op.batch_alter_table("label_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_versions_task"))
        batch_op.drop_index(batch_op.f("ix_label_versions_status"))
        batch_op.drop_index(batch_op.f("ix_label_versions_image_id"))
        batch_op.drop_index(batch_op.f("ix_label_versions_batch_id"))
        batch_op.drop_index(batch_op.f("ix_label_versions_annotator_id"))

    op.drop_table("label_versions")
    with op.batch_alter_table("image_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_claims_batch_id"))

    op.drop_table("image_claims")
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audits_batch_id"))

    op.drop_table("audits")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_model_version_id_margin")
        batch_op.drop_index("ix_predictions_model_version_id_least_confidence")
        batch_op.drop_index("ix_predictions_model_version_id_entropy")
        batch_op.drop_index(batch_op.f("ix_predictions_image_id"))

    op.drop_table("predictions")
    with op.batch_alter_table("dup_edges", schema=None) as batch_op:
        batch_op.drop_index("ix_dup_edges_image_b_id")

    op.drop_table("dup_edges")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_status"))
        batch_op.drop_index(batch_op.f("ix_batches_queue_id"))

    op.drop_table("batches")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queues_vendor_id"))

    op.drop_table("queues")
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotators_vendor_id"))

    op.drop_table("annotators")
    op.drop_table("vendors")
    op.drop_table("model_versions")
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manifests_content_hash"))

    op.drop_table("manifests")
    op.drop_table("guidelines")
    op.drop_table("dup_groups")
    op.drop_table("dedup_index_state")
