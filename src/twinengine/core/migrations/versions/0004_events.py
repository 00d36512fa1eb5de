"""Events: sources, triggers, the durable event queue (events + deliveries), serverless
functions and their calls, notifications and subscriptions.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "event_sources",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, default=False),
        sa.Column("status", sa.String(16)),
        sa.Column("error", sa.Text),
        sa.Column("status_at", sa.DateTime(timezone=True)),
        _created(),
        sa.Column("created_by", sa.String(64)),
    )
    op.create_table(
        "triggers",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, default=False),
        sa.Column("state", sa.JSON),  # condition windows, batch progress
        _created(),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.String(64)),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64)),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.Text),
        sa.Column("idem_key", sa.String(64), nullable=False, unique=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_events_source", "events", ["source", "received_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("run_id", sa.String(32)),
        sa.Column("batch_id", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("approved_by", sa.String(64)),
        _created(),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("event_id", "trigger", name="uq_deliveries_event_trigger"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_deliveries_trigger", "deliveries", ["trigger", "state"])
    op.create_table(
        "functions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),  # python, command
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("config", sa.JSON),
        _created(),
        sa.Column("created_by", sa.String(64)),
    )
    op.create_table(
        "function_calls",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("input", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("logs", sa.Text),
        _created(),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_function_calls_function", "function_calls", ["function", "created_at"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64)),
        sa.Column("user_name", sa.String(64)),  # None: everyone in the project
        sa.Column("trigger", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("data", sa.JSON),
        _created(),
        sa.Column("read_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_notifications_project", "notifications", ["project", "created_at"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64)),
        sa.Column("trigger", sa.String(64)),  # None: every trigger of the project
        sa.Column("kinds", sa.JSON, nullable=False),  # notification kinds, [] = all
        sa.Column("channel", sa.String(16), nullable=False),  # ui, webhook, email, apprise
        sa.Column("target", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False, default=True),
        _created(),
    )


def downgrade() -> None:
    for table in (
        "subscriptions",
        "notifications",
        "function_calls",
        "functions",
        "deliveries",
        "events",
        "triggers",
        "event_sources",
    ):
        op.drop_table(table)
