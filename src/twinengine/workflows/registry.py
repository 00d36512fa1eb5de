"""The workflow registry: CWL documents registered by project, name and version.

:class:`WorkflowRegistry` keeps each registered workflow's files in
``$TWIN_HOME/workflows/<id>/`` (a single document, or an unpacked archive with the
files it imports) and a row in the ``workflows`` table with its interface (inputs,
outputs, step graph) computed once at registration, so listing and showing never load
CWL again. A document that does not validate is never registered. Versions count 1, 2,
… per project and name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from twinengine.core import (
    Database,
    InvalidDocumentError,
    InvalidInputError,
    NotFoundError,
    Settings,
    StateError,
    get_database,
    get_settings,
    new_id,
)
from twinengine.core.models import runs, workflows
from twinengine.core.times import as_utc
from twinengine.workflows.archive import is_archive, unpack
from twinengine.workflows.describe import describe, validation_errors
from twinengine.workflows.fetching import confinement_for

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CWL_SUFFIXES = (".cwl", ".yml", ".yaml", ".json")
_MAIN_NAMES = ("main.cwl", "workflow.cwl", "packed.cwl")
UNPACKED_RATIO = 10  #: an archive may unpack to this many times ``max_upload_mb``


def _main_document(names: list[str], main: str | None) -> str:
    """The archive member holding the main document."""
    if main:
        wanted = str(PurePosixPath(main))
        if wanted not in names:
            raise InvalidInputError(
                f"the archive has no file {main!r}", hint="files: " + ", ".join(sorted(names))
            )
        return wanted
    cwl = [n for n in names if n.endswith(".cwl")]
    top = [n for n in cwl if "/" not in n.strip("/")]
    for candidates in (top, cwl):
        for name in _MAIN_NAMES:
            if name in candidates:
                return name
        if len(candidates) == 1:
            return candidates[0]
    raise InvalidInputError(
        "cannot tell which file of the archive is the workflow",
        hint="give `main` (one of: " + ", ".join(sorted(cwl) or ["no .cwl file found"]) + ")",
    )


def _name_from(filename: str) -> str:
    stem = PurePosixPath(filename).name
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip", *_CWL_SUFFIXES):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem).strip("-.") or "workflow"


class WorkflowRegistry:
    """Register, validate, list, show and delete CWL workflows."""

    def __init__(self, db: Database | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.db = db or get_database(self.settings)
        self.root = self.settings.home / "workflows"

    # -- files ----------------------------------------------------------------------
    def _stage(self, folder: Path, data: bytes, filename: str, main: str | None) -> str:
        """Write ``data`` into ``folder``; the main document's path relative to it."""
        if not data:
            raise InvalidInputError("the upload is empty")
        limit = self.settings.max_upload_mb * 1024 * 1024
        if is_archive(filename):
            return _main_document(unpack(data, filename, folder, UNPACKED_RATIO * limit), main)
        name = PurePosixPath(filename.replace("\\", "/")).name or "workflow.cwl"
        if not name.endswith(_CWL_SUFFIXES):
            raise InvalidInputError(
                f"{filename!r} is neither a CWL document nor an archive",
                hint="upload a .cwl file, or a .zip / .tar.gz holding one",
            )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        return name

    def _describe(self, folder: Path, main_name: str) -> dict[str, Any]:
        """The interface of the uploaded document, loaded confined to its ``folder``."""
        return describe(str(folder / main_name), confinement_for(folder, self.settings))

    def _errors(self, exc: InvalidDocumentError, folder: Path) -> list[dict[str, Any]]:
        return validation_errors(exc, str(folder.resolve()), (self.settings.home.resolve(),))

    def validate(self, data: bytes, filename: str, main: str | None = None) -> dict[str, Any]:
        """``{valid, errors, …interface}`` for an upload, registering nothing."""
        folder = self.root / ".validate" / new_id()
        try:
            main_name = self._stage(folder, data, filename, main)
            try:
                return {"valid": True, "errors": [], **self._describe(folder, main_name)}
            except InvalidDocumentError as exc:
                return {"valid": False, "errors": self._errors(exc, folder)}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def register(
        self,
        data: bytes,
        filename: str,
        *,
        project: str,
        name: str | None = None,
        main: str | None = None,
        description: str | None = None,
        created_by: str | None = None,
        layout: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        name = name or _name_from(filename)
        if not _NAME.match(name):
            raise InvalidInputError(
                f"invalid workflow name {name!r}",
                hint="1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        workflow_id = new_id()
        folder = self.root / workflow_id
        try:
            main_name = self._stage(folder, data, filename, main)
            try:
                info = self._describe(folder, main_name)
            except InvalidDocumentError as exc:
                errors = self._errors(exc, folder)
                raise InvalidDocumentError(
                    "the workflow does not validate: " + "; ".join(_located(e) for e in errors[:5]),
                    hint="fix the document and upload it again",
                ) from None
            row = self._insert(
                {
                    "id": workflow_id,
                    "project": project,
                    "name": name,
                    "cwl_class": info["class"],
                    "label": info["label"],
                    "doc": info["doc"],
                    "description": description,
                    "folder": str(folder),
                    "main": main_name,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "interface": {k: info[k] for k in ("inputs", "outputs", "graph")},
                    "layout": layout,
                    "created_at": dt.datetime.now(dt.UTC),
                    "created_by": created_by,
                }
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return _public(row)

    def _insert(self, row: dict[str, Any]) -> dict[str, Any]:
        for _ in range(5):  # two uploads of one name at once: the loser takes the next version
            with self.db.engine.connect() as conn:
                latest = conn.execute(
                    select(func.max(workflows.c.version)).where(
                        workflows.c.project == row["project"], workflows.c.name == row["name"]
                    )
                ).scalar()
            row["version"] = (latest or 0) + 1
            try:
                with self.db.engine.begin() as conn:
                    conn.execute(insert(workflows).values(**row))
                return row
            except IntegrityError:
                continue
        raise StateError(f"could not register {row['name']!r}: too many concurrent uploads")

    # -- queries --------------------------------------------------------------------
    def list(
        self,
        *,
        projects: list[str] | None = None,
        name: str | None = None,
        q: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """``(workflows, total)`` newest first; ``projects=None`` means every project."""
        query = select(workflows)
        if projects is not None:
            query = query.where(workflows.c.project.in_(projects))
        if name:
            query = query.where(workflows.c.name == name)
        if q:
            like = f"%{q}%"
            query = query.where(or_(workflows.c.name.ilike(like), workflows.c.label.ilike(like)))
        with self.db.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(query.subquery())).scalar()
            rows = conn.execute(
                query.order_by(workflows.c.created_at.desc(), workflows.c.version.desc())
                .limit(limit)
                .offset(offset)
            )
            items = [_public(dict(r._mapping), graph=False) for r in rows]
        return items, int(total or 0)

    def get(self, workflow_id: str) -> dict[str, Any]:
        return _public(self.row(workflow_id))

    def row(self, workflow_id: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(workflows).where(workflows.c.id == workflow_id)).first()
        if row is None:
            raise NotFoundError(
                f"no workflow {workflow_id!r}", hint="list them with GET /workflows"
            )
        return dict(row._mapping)

    def main_path(self, workflow: dict[str, Any]) -> Path:
        return Path(workflow["folder"]) / workflow["main"]

    def content(self, workflow_id: str) -> str:
        return self.main_path(self.row(workflow_id)).read_text(encoding="utf-8", errors="replace")

    def delete(self, workflow_id: str) -> None:
        row = self.row(workflow_id)
        with self.db.engine.begin() as conn:
            active = conn.execute(
                select(runs.c.id).where(
                    runs.c.workflow_id == workflow_id, runs.c.state.in_(["queued", "running"])
                )
            ).first()
            if active:
                raise StateError(f"workflow {workflow_id} has an active run ({active.id})")
            conn.execute(delete(workflows).where(workflows.c.id == workflow_id))
        shutil.rmtree(row["folder"], ignore_errors=True)


def _located(error: dict[str, Any]) -> str:
    if error.get("line"):
        return f"{error['file']}:{error['line']}:{error['column']}: {error['message']}"
    return error["message"]


def _public(row: dict[str, Any], graph: bool = True) -> dict[str, Any]:
    interface = row.get("interface") or {}
    created = as_utc(row["created_at"])
    item = {
        "id": row["id"],
        "name": row["name"],
        "version": row["version"],
        "project": row["project"],
        "class": row["cwl_class"],
        "label": row["label"],
        "doc": row["doc"],
        "description": row["description"],
        "main": row["main"],
        "sha256": row["sha256"],
        "created_at": created,
        "created_by": row["created_by"],
        "inputs": interface.get("inputs", []),
        "outputs": interface.get("outputs", []),
        "layout": row.get("layout"),
    }
    if graph:
        item["graph"] = interface.get("graph", {"nodes": [], "edges": []})
    return item
