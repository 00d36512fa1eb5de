"""Events per project: a source's and a trigger's name is unique within its project (two
projects may both have a source ``incoming``); a delivery records its trigger's project;
a trigger records whether an admin made it (only such triggers see events that belong to
no project, such as the ends of runs started with ``twin run``).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _created() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64)),
    ]


def _sources(name: str, key: list[str], pk: str) -> str:
    op.create_table(
        name,
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, default=False),
        sa.Column("status", sa.String(16)),
        sa.Column("error", sa.Text),
        sa.Column("status_at", sa.DateTime(timezone=True)),
        *_created(),
        sa.PrimaryKeyConstraint(*key, name=pk),
    )
    return "name, kind, project, config, paused, status, error, status_at, created_at, created_by"


def _triggers(name: str, key: list[str], pk: str) -> str:
    op.create_table(
        name,
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, default=False),
        sa.Column("state", sa.JSON),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        *_created(),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint(*key, name=pk),
    )
    return "name, project, source, definition, paused, state, updated_at, created_at, created_by"


def _rekey(table: str, make, key: list[str]) -> None:  # type: ignore[no-untyped-def]
    """``table`` copied into a new one keyed by ``key`` (SQLite cannot change a key)."""
    columns = make(f"{table}_new", key, f"pk_{table}_{'_'.join(key)}")  # names outlive renames
    op.execute(f"INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table}")
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)


def upgrade() -> None:
    _rekey("event_sources", _sources, ["project", "name"])
    _rekey("triggers", _triggers, ["project", "name"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("project", sa.String(64)))
        batch.drop_constraint("uq_deliveries_event_trigger", type_="unique")
        batch.create_unique_constraint(
            "uq_deliveries_event_trigger", ["event_id", "project", "trigger"]
        )
    # names were unique on the server until now: a delivery's trigger is found by name
    op.execute(
        "UPDATE deliveries SET project = "
        "(SELECT triggers.project FROM triggers WHERE triggers.name = deliveries.trigger)"
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_event_trigger", type_="unique")
        batch.create_unique_constraint("uq_deliveries_event_trigger", ["event_id", "trigger"])
        batch.drop_column("project")
    _rekey("event_sources", _sources, ["name"])  # fails if two projects share a name
    _rekey("triggers", _triggers, ["name"])
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("admin")
