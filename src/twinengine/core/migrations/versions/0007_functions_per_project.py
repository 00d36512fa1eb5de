"""Functions per project: a function's name is unique within its project (two projects
may both deploy ``clean``, each running its own code), and a call records the project of
the function that made it, so calls and logs are read per (project, name).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = "name, project, kind, target, config, created_at, created_by"


def _rekey(key: list[str]) -> None:
    """``functions`` copied into a new table keyed by ``key`` (SQLite cannot change a
    primary key), then renamed."""
    op.create_table(
        "functions_new",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("config", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64)),
        sa.PrimaryKeyConstraint(*key, name=f"pk_functions_{'_'.join(key)}"),
    )
    op.execute(f"INSERT INTO functions_new ({_COLUMNS}) SELECT {_COLUMNS} FROM functions")
    op.drop_table("functions")
    op.rename_table("functions_new", "functions")


def upgrade() -> None:
    _rekey(["project", "name"])
    op.drop_index("ix_function_calls_function", table_name="function_calls")
    with op.batch_alter_table("function_calls") as batch:
        batch.add_column(sa.Column("project", sa.String(64)))
    # names were unique on the server until now: a call's function is found by name
    op.execute(
        "UPDATE function_calls SET project = (SELECT functions.project FROM functions"
        " WHERE functions.name = function_calls.function)"
    )
    op.create_index(
        "ix_function_calls_function", "function_calls", ["project", "function", "created_at"]
    )


def downgrade() -> None:
    shared = op.get_bind().execute(
        sa.text("SELECT name FROM functions GROUP BY name HAVING COUNT(*) > 1 ORDER BY name")
    )
    names = [row[0] for row in shared]
    if names:  # one row per name cannot hold them: say which before touching anything
        raise RuntimeError(
            "cannot downgrade below 0007: several projects have a function named "
            + ", ".join(map(repr, names))
            + " (delete or rename all but one of each first)"
        )
    op.drop_index("ix_function_calls_function", table_name="function_calls")
    with op.batch_alter_table("function_calls") as batch:
        batch.drop_column("project")
    op.create_index("ix_function_calls_function", "function_calls", ["function", "created_at"])
    _rekey(["name"])
