"""Request and response bodies of the REST API (pydantic v2), as OpenAPI documents them.

Request models are strict about what they accept (unknown scopes, roles, bad sizes are
422 with the field named); response models describe exactly what is sent back, so the
OpenAPI document at ``/openapi.json`` is a contract clients (and schemathesis) can check.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: the page parameters every list endpoint takes (``?limit=&offset=``)
Limit = Annotated[int, Query(ge=1, le=500, description="at most this many items")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip")]


def utc(value: Any) -> Any:
    """Datetimes from SQLite come back naive; they are UTC, and the API says so."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value and value[-1].isdigit() and "+" not in value[10:]:
        return value + "Z"
    return value


Time = Annotated[dt.datetime, BeforeValidator(utc)]
Scope = Literal["read", "run", "admin"]
Role = Literal["viewer", "editor", "owner"]
Name = Field(min_length=1, max_length=64)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- access control ----------------------------------------------------------------------
class UserIn(Strict):
    name: str = Name
    admin: bool = False


class User(BaseModel):
    name: str
    admin: bool
    created_at: Time | None
    oidc: bool = False
    disabled: bool = False


class TokenIn(Strict):
    name: str = Field("token", min_length=1, max_length=255)
    scopes: list[Scope] = Field(default_factory=lambda: ["read", "run"], min_length=1)
    user: str | None = Field(None, min_length=1, max_length=64)
    expires_days: float | None = Field(None, gt=0, le=3650)


class Token(BaseModel):
    id: str
    name: str
    user: str
    scopes: list[str]
    created_at: Time | None
    expires_at: Time | None = None
    revoked_at: Time | None = None
    last_used_at: Time | None = None


class TokenCreated(Token):
    token: str = Field(description="the secret, shown only in this response")


class Member(BaseModel):
    user: str
    role: str


class MemberIn(Strict):
    role: Role


class ProjectIn(Strict):
    name: str = Name
    description: str | None = Field(None, max_length=2000)


class Project(BaseModel):
    name: str
    description: str | None = None
    created_at: Time | None = None
    role: str | None = None
    members: list[Member] = []


class ProjectRole(BaseModel):
    name: str
    role: str


class Me(BaseModel):
    user: User
    token: dict[str, Any]
    projects: list[ProjectRole]
    mlflow: bool = Field(False, description="whether the caller may open the MLflow UI")


class Items(BaseModel):
    items: list[Any]


class Page(BaseModel):
    items: list[Any]
    total: int


# -- workflows -----------------------------------------------------------------------------
class Port(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: str
    label: str | None = None
    doc: str | None = None
    optional: bool = False


class GraphNode(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    kind: str
    label: str | None = None


class GraphEdge(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str
    target: str
    label: str | None = None


class Graph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class Workflow(BaseModel):
    id: str
    name: str
    version: int
    project: str
    class_: str | None = Field(None, alias="class")
    label: str | None = None
    doc: str | None = None
    description: str | None = None
    main: str
    sha256: str | None = None
    created_at: Time | None = None
    created_by: str | None = None
    inputs: list[Port]
    outputs: list[Port]
    layout: dict[str, Any] | None = None
    graph: Graph | None = None

    model_config = ConfigDict(populate_by_name=True)


class WorkflowPage(BaseModel):
    items: list[Workflow]
    total: int
    limit: int
    offset: int


class ValidationIssue(BaseModel):
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None


class Validation(BaseModel):
    model_config = ConfigDict(extra="allow")
    valid: bool
    errors: list[ValidationIssue]


class ComposeInput(Strict):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: str = Field("string", max_length=64)
    default: Any = None
    label: str | None = None


class ComposeSource(Strict):
    source: str | None = Field(None, max_length=200)
    default: Any = None


class ComposeStep(Strict):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    run: str = Field(min_length=1, max_length=200)
    in_: dict[str, ComposeSource] = Field(default_factory=dict, alias="in")
    label: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ComposeOutput(Strict):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    source: str = Field(min_length=1, max_length=200)


class ComposeIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    project: str | None = Field(None, max_length=64)
    label: str | None = Field(None, max_length=500)
    doc: str | None = Field(None, max_length=5000)
    dry_run: bool = False
    inputs: list[ComposeInput] = []
    steps: list[ComposeStep] = Field(min_length=1, max_length=200)
    outputs: list[ComposeOutput] = []
    layout: dict[str, dict[str, float]] = {}


class ComposeResult(BaseModel):
    valid: bool
    errors: list[ValidationIssue]
    cwl: str


class PaletteItem(BaseModel):
    ref: str
    kind: str
    name: str
    version: int | None = None
    label: str | None = None
    class_: str | None = Field(None, alias="class")
    doc: str | None = None
    inputs: list[Port]
    outputs: list[Port]

    model_config = ConfigDict(populate_by_name=True)


class Palette(BaseModel):
    items: list[PaletteItem]


# -- runs -------------------------------------------------------------------------------------
class Upload(BaseModel):
    id: str
    name: str
    size: int
    sha256: str
    location: str
    created_at: Time | None = None


class RunIn(Strict):
    workflow: str = Field(min_length=1, max_length=64)
    inputs: dict[str, Any] = {}
    name: str | None = Field(None, min_length=1, max_length=255)
    cache: bool = False


class Step(BaseModel):
    id: str
    name: str
    state: str
    tool: str | None = None
    kind: str | None = None
    attempt: int | None = None
    created_at: Time | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    wall_time: float | None = None
    exit_code: int | None = None
    peak_memory: int | None = None
    message: str | None = None
    reused_from: str | None = None


class Run(BaseModel):
    id: str
    name: str
    project: str | None = None
    workflow_id: str | None = None
    workflow_name: str | None = None
    workflow_version: int | None = None
    state: str
    created_at: Time | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    created_by: str | None = None
    inputs: Any = None
    outputs: Any = None
    error: str | None = None
    exit_code: int | None = None
    attempt: int | None = None
    step_counts: dict[str, int] = {}
    steps: list[Step] | None = None


class RunPage(BaseModel):
    items: list[Run]
    total: int
    limit: int
    offset: int


class Outputs(BaseModel):
    outputs: Any


# -- provenance ----------------------------------------------------------------------------
class ProvDocument(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str | None = None
    origin: str | None = None
    run_id: str | None = None
    project: str | None = None
    created_at: Time | None = None


class ElementIn(Strict):
    id: str = Field(min_length=1, max_length=500)
    kind: Literal["entity", "activity", "agent"]
    label: str | None = Field(None, max_length=1000)
    attributes: dict[str, Any] = {}
    start_time: Time | None = None
    end_time: Time | None = None


class Element(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    kind: str
    label: str | None = None
    attributes: dict[str, Any] | None = None


class RelationIn(Strict):
    kind: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=500)
    object: str = Field(min_length=1, max_length=500)
    attributes: dict[str, Any] = {}


class Relation(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str
    subject: str
    object: str
    attributes: dict[str, Any] | None = None


class ProvGraphOut(BaseModel):
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


class Health(BaseModel):
    status: str
    version: str
    database: str
    sandbox: str | None = Field(
        None, description="what steps and functions run in: bwrap, podman or none"
    )
