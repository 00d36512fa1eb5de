"""Runs and step executions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workflow", sa.Text, nullable=False),
        sa.Column("workflow_hash", sa.String(64)),
        sa.Column("job_order", sa.JSON),
        sa.Column("inputs", sa.JSON),
        sa.Column("outputs", sa.JSON),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("outdir", sa.Text),
        sa.Column("work_dir", sa.Text),
        sa.Column("executor", sa.String(64)),
        sa.Column("options", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("exit_code", sa.Integer),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index("ix_runs_state", "runs", ["state"])
    op.create_table(
        "steps",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("tool", sa.Text),
        sa.Column("kind", sa.String(32)),
        sa.Column("cache_key", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("wall_time", sa.Float),
        sa.Column("peak_memory", sa.BigInteger),
        sa.Column("inputs", sa.JSON),
        sa.Column("outputs", sa.JSON),
        sa.Column("command_line", sa.JSON),
        sa.Column("stdout_uri", sa.Text),
        sa.Column("stderr_uri", sa.Text),
        sa.Column("outdir", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("reused_from", sa.String(32)),
    )
    op.create_index("ix_steps_run", "steps", ["run_id"])
    op.create_index("ix_steps_cache", "steps", ["cache_key", "state"])


def downgrade() -> None:
    op.drop_index("ix_steps_cache", "steps")
    op.drop_index("ix_steps_run", "steps")
    op.drop_table("steps")
    op.drop_index("ix_runs_state", "runs")
    op.drop_table("runs")
