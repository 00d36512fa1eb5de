"""Database tables of the core domain: runs and their step executions.

Tables are SQLAlchemy 2 Core ``Table`` objects on one ``MetaData``; the schema is created
and upgraded only through the Alembic migrations in ``core/migrations`` (applied
automatically when the database is opened). JSON columns hold CWL objects as they are.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("workflow", Text, nullable=False),  # path or URI of the CWL document
    Column("workflow_hash", String(64)),
    Column("job_order", JSON),  # the input object, as given by the user
    Column("inputs", JSON),  # the resolved input object
    Column("outputs", JSON),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("outdir", Text),
    Column("work_dir", Text),
    Column("executor", String(64)),
    Column("options", JSON),  # how the run was started: enough to resume it
    Column("error", Text),
    Column("exit_code", Integer),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("attempt", Integer, nullable=False, default=1),  # 1 + number of resumes
)

steps = Table(
    "steps",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),  # path in the workflow, e.g. main/align/3
    Column("tool", Text),  # id of the CWL process it runs
    Column("kind", String(32)),  # CommandLineTool, ExpressionTool
    Column("cache_key", String(64)),
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("exit_code", Integer),
    Column("wall_time", Float),
    Column("peak_memory", BigInteger),  # bytes
    Column("inputs", JSON),
    Column("outputs", JSON),
    Column("command_line", JSON),
    Column("stdout_uri", Text),
    Column("stderr_uri", Text),
    Column("outdir", Text),
    Column("message", Text),
    Column("reused_from", String(32)),  # step id whose outputs were reused
)
Index("ix_runs_state", runs.c.state)
Index("ix_steps_run", steps.c.run_id)
Index("ix_steps_cache", steps.c.cache_key, steps.c.state)
