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
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    Column("project", String(64)),  # None: started from the CLI outside any project
    Column("workflow_id", String(32)),  # the registered workflow it runs, if any
    Column("created_by", String(64)),  # the user who launched it through the API
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
# -- provenance (W3C PROV): documents, elements shared across documents, relations --------
prov_documents = Table(
    "prov_documents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32)),  # the run it describes (None: imported or client-made)
    Column("name", Text, nullable=False),
    Column("origin", String(16), nullable=False),  # run, import, client
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("namespaces", JSON),  # prefix -> URI
    Column("attributes", JSON),
    Column("project", String(64)),  # imported/client documents; run documents: the run's
)

prov_elements = Table(
    "prov_elements",
    metadata,
    Column("project", String(64), nullable=False, default=""),  # "": of no project (CLI)
    Column("id", Text, nullable=False),  # qualified name, e.g. sha256:ab12… or twin:run/…
    Column("kind", String(16), nullable=False),  # entity, activity, agent
    Column("label", Text),
    Column("start_time", DateTime(timezone=True)),
    Column("end_time", DateTime(timezone=True)),
    Column("attributes", JSON),  # qualified attribute -> value or list of values
    Column("document_id", String(32)),  # the document that first recorded it
    PrimaryKeyConstraint("project", "id"),  # element ids are scoped per project
)

prov_relations = Table(
    "prov_relations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(32), nullable=False),
    Column("bundle", Text),  # the bundle holding it (None: the document's top level)
    Column("kind", String(32), nullable=False),  # used, wasGeneratedBy, …
    Column("subject", Text, nullable=False),  # the element that depends on ...
    Column("object", Text, nullable=False),  # ... this one
    Column("attributes", JSON),  # time, role, plan, location …
)

prov_members = Table(
    "prov_members",
    metadata,
    Column("document_id", String(32), nullable=False),
    Column("element_id", Text, nullable=False),
    Column("bundle", Text, nullable=False, default=""),  # "" for the top level
    PrimaryKeyConstraint("document_id", "element_id", "bundle"),
)

# -- access control and the workflow registry ---------------------------------------------
users = Table(
    "users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("oidc_subject", Text),  # set for users created from an OIDC token
    Column("disabled", Boolean, nullable=False, default=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_name", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),  # sha256 of the secret
    Column("scopes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
)

projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("project", String(64), nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # viewer, editor, owner
    PrimaryKeyConstraint("project", "user_name"),
)

workflows = Table(
    "workflows",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("cwl_class", String(32)),
    Column("label", Text),
    Column("doc", Text),
    Column("description", Text),
    Column("folder", Text, nullable=False),  # where its files were unpacked
    Column("main", Text, nullable=False),  # the main document, relative to folder
    Column("sha256", String(64)),
    Column("interface", JSON),  # inputs, outputs, graph
    Column("layout", JSON),  # composer node positions
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64)),
    UniqueConstraint("project", "name", "version", name="uq_workflows_version"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64)),
)

# -- events: sources, triggers, the durable queue, functions, notifications ---------------
event_sources = Table(
    "event_sources",
    metadata,
    Column("name", String(64), primary_key=True),  # unique within its project
    Column("kind", String(32), nullable=False),
    Column("project", String(64), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("status", String(16)),  # ok, retrying, down, paused, passive
    Column("error", Text),
    Column("status_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64)),
)

triggers = Table(
    "triggers",
    metadata,
    Column("name", String(64), primary_key=True),  # unique within its project
    Column("project", String(64), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("state", JSON),  # condition windows, batch progress
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True)),
    Column("created_by", String(64)),
    Column("admin", Boolean, nullable=False, default=False),  # made by an admin
)

events = Table(
    "events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("project", String(64)),
    Column("key", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("version", Text),
    Column("idem_key", String(64), nullable=False, unique=True),  # source, object, version
    Column("body", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("event_id", String(32), nullable=False),
    Column("trigger", String(64), nullable=False),
    Column("project", String(64)),  # the trigger's project
    # pending, batched, approval, running, done, retrying, dead, skipped
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("lease_until", DateTime(timezone=True)),
    Column("run_id", String(32)),
    Column("batch_id", String(32)),
    Column("error", Text),
    Column("approved_by", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True)),
    UniqueConstraint("event_id", "project", "trigger", name="uq_deliveries_event_trigger"),
)

functions = Table(
    "functions",
    metadata,
    Column("name", String(64), primary_key=True),  # unique within its project
    Column("project", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # python (module:function), command
    Column("target", Text, nullable=False),
    Column("config", JSON),  # min_workers, max_workers, timeout, env
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64)),
)

function_calls = Table(
    "function_calls",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("function", String(64), nullable=False),
    Column("project", String(64)),  # the function's project
    Column("state", String(16), nullable=False),  # queued, running, succeeded, failed
    Column("input", JSON),
    Column("result", JSON),
    Column("error", Text),
    Column("logs", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64)),
    Column("user_name", String(64)),  # None: everyone in the project
    Column("trigger", String(64)),
    Column("kind", String(32), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text),
    Column("data", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True)),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_name", String(64), nullable=False),
    Column("project", String(64)),
    Column("trigger", String(64)),  # None: every trigger of the project
    Column("kinds", JSON, nullable=False),  # notification kinds; [] = all
    Column("channel", String(16), nullable=False),  # ui, webhook, email, apprise
    Column("target", Text),  # URL, address, Apprise URL
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

Index("ix_runs_state", runs.c.state)
Index("ix_events_source", events.c.source, events.c.received_at)
Index("ix_deliveries_due", deliveries.c.state, deliveries.c.next_attempt_at)
Index("ix_deliveries_trigger", deliveries.c.trigger, deliveries.c.state)
Index(
    "ix_function_calls_function",
    function_calls.c.project,
    function_calls.c.function,
    function_calls.c.created_at,
)
Index("ix_notifications_project", notifications.c.project, notifications.c.created_at)
Index("ix_runs_project", runs.c.project, runs.c.created_at)
Index("ix_tokens_user", tokens.c.user_name)
Index("ix_prov_documents_run", prov_documents.c.run_id)
Index("ix_prov_relations_subject", prov_relations.c.subject)
Index("ix_prov_relations_object", prov_relations.c.object)
Index("ix_prov_relations_document", prov_relations.c.document_id)
Index("ix_prov_members_element", prov_members.c.element_id)
Index("ix_prov_elements_id", prov_elements.c.id)
Index("ix_steps_run", steps.c.run_id)
Index("ix_steps_cache", steps.c.cache_key, steps.c.state)
