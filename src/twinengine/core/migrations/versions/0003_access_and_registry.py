"""Access control and the workflow registry: users, tokens, projects, memberships,
registered workflows, uploads; runs and PROV documents belong to a project.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("admin", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("oidc_subject", sa.Text),
        sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_tokens_user", "tokens", ["user_name"])
    op.create_table(
        "projects",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("project", "user_name"),
    )
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("cwl_class", sa.String(32)),
        sa.Column("label", sa.Text),
        sa.Column("doc", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("main", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("interface", sa.JSON),
        sa.Column("layout", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64)),
        sa.UniqueConstraint("project", "name", "version", name="uq_workflows_version"),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64)),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("project", sa.String(64)))
        batch.add_column(sa.Column("workflow_id", sa.String(32)))
        batch.add_column(sa.Column("created_by", sa.String(64)))
    op.create_index("ix_runs_project", "runs", ["project", "created_at"])
    with op.batch_alter_table("prov_documents") as batch:
        batch.add_column(sa.Column("project", sa.String(64)))


def downgrade() -> None:
    op.drop_index("ix_runs_project", "runs")
    with op.batch_alter_table("prov_documents") as batch:
        batch.drop_column("project")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("created_by")
        batch.drop_column("workflow_id")
        batch.drop_column("project")
    for table in ("uploads", "workflows", "memberships", "projects", "tokens", "users"):
        op.drop_table(table)
