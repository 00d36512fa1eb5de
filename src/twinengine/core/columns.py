"""The shape of the core tables without SQLAlchemy: revision, column names and kinds.

:mod:`twinengine.core.models` defines the tables and Alembic migrates them; this module
repeats just what a plain DB-API writer needs (the embedded SQLite default is written
with the standard library's ``sqlite3`` on the hot path of a run, see
:mod:`twinengine.workflows.recordstore`). ``tests/core/test_columns.py`` checks that the
two agree, so a new migration cannot leave this behind.
"""

from __future__ import annotations

#: the Alembic revision the code expects; bump together with a new migration file
HEAD_REVISION = "0007"

RUN_COLUMNS = (
    "id", "name", "workflow", "workflow_hash", "job_order", "inputs", "outputs", "state",
    "created_at", "started_at", "ended_at", "outdir", "work_dir", "executor", "options",
    "error", "exit_code", "host", "pid", "cancel_requested", "attempt", "project",
    "workflow_id", "created_by",
)  # fmt: skip
STEP_COLUMNS = (
    "id", "run_id", "name", "tool", "kind", "cache_key", "state", "attempt", "created_at",
    "started_at", "ended_at", "exit_code", "wall_time", "peak_memory", "inputs", "outputs",
    "command_line", "stdout_uri", "stderr_uri", "outdir", "message", "reused_from",
)  # fmt: skip
JSON_COLUMNS = frozenset(
    {"job_order", "inputs", "outputs", "options", "command_line", "namespaces", "attributes"}
)
DATETIME_COLUMNS = frozenset({"created_at", "started_at", "ended_at", "start_time", "end_time"})
BOOLEAN_COLUMNS = frozenset({"cancel_requested"})
