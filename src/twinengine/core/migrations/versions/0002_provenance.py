"""Provenance: PROV documents, their elements (shared across documents) and relations.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prov_documents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32)),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("namespaces", sa.JSON),
        sa.Column("attributes", sa.JSON),
    )
    op.create_index("ix_prov_documents_run", "prov_documents", ["run_id"])
    op.create_table(
        "prov_elements",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("start_time", sa.DateTime(timezone=True)),
        sa.Column("end_time", sa.DateTime(timezone=True)),
        sa.Column("attributes", sa.JSON),
        sa.Column("document_id", sa.String(32)),
    )
    op.create_table(
        "prov_relations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("bundle", sa.Text),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("object", sa.Text, nullable=False),
        sa.Column("attributes", sa.JSON),
    )
    op.create_index("ix_prov_relations_subject", "prov_relations", ["subject"])
    op.create_index("ix_prov_relations_object", "prov_relations", ["object"])
    op.create_index("ix_prov_relations_document", "prov_relations", ["document_id"])
    op.create_table(
        "prov_members",
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("element_id", sa.Text, nullable=False),
        sa.Column("bundle", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("document_id", "element_id", "bundle"),
    )
    op.create_index("ix_prov_members_element", "prov_members", ["element_id"])


def downgrade() -> None:
    for table in ("prov_members", "prov_relations", "prov_elements", "prov_documents"):
        op.drop_table(table)
