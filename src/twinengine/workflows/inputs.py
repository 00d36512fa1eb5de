"""Input objects of runs launched through the API: uploaded files and early type checks.

:class:`UploadStore` keeps uploaded input files under ``$TWIN_HOME/uploads/<id>/`` with
a row each (project, name, size, SHA-256). :func:`resolve_inputs` checks an input object
against a registered workflow's interface before a run is queued — unknown or missing
inputs and values of the wrong type are a clear :class:`InvalidInputError` at once, not
a failed run later — and turns ``{"class": "File", "location": "upload:ID"}`` into the
uploaded file's real path. Every File and Directory object, at any depth, is checked: a
server path is accepted only under ``TWIN_INPUT_ROOTS`` or among the files a trigger's
event reported — links resolved, and never among the server's own files
(:func:`~twinengine.workflows.fileroots.server_private`) — and every string and key, at
any depth, must be text a program can be given (:mod:`~twinengine.workflows.safetext`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from sqlalchemy import insert, select

from twinengine.core import (
    Database,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    Settings,
    get_database,
    get_settings,
    new_id,
)
from twinengine.core.models import uploads
from twinengine.workflows.fetching import url_path
from twinengine.workflows.fileroots import FILE_CLASSES, Roots, file_objects, server_private
from twinengine.workflows.safetext import check_value

_CHUNK = 1 << 20
_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "boolean": (bool,),
}


class UploadStore:
    """Input files uploaded for runs."""

    def __init__(self, db: Database | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.db = db or get_database(self.settings)
        self.root = self.settings.home / "uploads"

    def save(
        self,
        stream: BinaryIO,
        filename: str,
        *,
        project: str,
        created_by: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Store the upload read from ``stream``, refused past ``max_upload_mb`` (or past
        ``limit`` bytes, when that is smaller)."""
        name = PurePosixPath((filename or "upload").replace("\\", "/")).name
        name = re.sub(r"[^\w.+-]", "_", name).lstrip(".") or "upload"
        upload_id = new_id()
        folder = self.root / upload_id
        folder.mkdir(parents=True)
        path = folder / name
        most = self.settings.max_upload_mb * 1024 * 1024
        limit = most if limit is None else min(limit, most)
        digest, size = hashlib.sha256(), 0
        try:
            with path.open("wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLargeError(
                            f"the upload is larger than {_size(limit)}",
                            hint="raise TWIN_MAX_UPLOAD_MB on the server"
                            + ("" if limit == most else " (or the trigger's filter.max_size)"),
                        )
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            folder.rmdir()
            raise
        row = {
            "id": upload_id,
            "project": project,
            "name": name,
            "size": size,
            "sha256": digest.hexdigest(),
            "path": str(path),
            "created_at": dt.datetime.now(dt.UTC),
            "created_by": created_by,
        }
        with self.db.engine.begin() as conn:
            conn.execute(insert(uploads).values(**row))
        return _public(row)

    def get(self, upload_id: str, project: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).first()
        if row is None or row.project != project:
            raise NotFoundError(
                f"no upload {upload_id!r} in project {project!r}",
                hint="upload the file with POST /api/v1/uploads to the workflow's project",
            )
        return dict(row._mapping)


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MB" if mib == int(mib) else f"{limit} bytes"


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "size": row["size"],
        "sha256": row["sha256"],
        "location": f"upload:{row['id']}",
        "created_at": row["created_at"],
    }


def _type_ok(value: Any, cwl_type: str) -> bool:
    """Whether ``value`` fits a CWL type in shorthand (checked loosely for complex types)."""
    if cwl_type.endswith("?"):
        return value is None or _type_ok(value, cwl_type[:-1])
    if " | " in cwl_type:
        return any(_type_ok(value, t) for t in cwl_type.split(" | "))
    if cwl_type.endswith("[]"):
        return isinstance(value, list) and all(_type_ok(v, cwl_type[:-2]) for v in value)
    if cwl_type in ("File", "Directory"):
        return isinstance(value, dict) and value.get("class") == cwl_type
    expected = _SCALARS.get(cwl_type)
    if expected is None:  # Any, enum, record: the run's own validation decides
        return True
    if isinstance(value, bool) and cwl_type != "boolean":
        return False
    return isinstance(value, expected)


def resolve_inputs(
    interface: list[dict[str, Any]],
    given: dict[str, Any],
    *,
    project: str,
    uploads_store: UploadStore,
    extra_roots: tuple[Path, ...] = (),
    reported: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The job object for a run: ``given`` checked against ``interface``, files resolved.

    Every string and key must be safe text (no NUL …). Every File and Directory object,
    at any depth, must be an upload of ``project`` (``upload:ID``), a literal
    (``contents``, or a Directory ``listing``), or name a path that — links resolved —
    lies under ``input_roots`` or is one of ``reported`` (files a trigger's event
    reported), never among the server's own files; or lies under one of ``extra_roots``
    (places the server itself wrote for the project: an ended run's outputs)."""
    if not isinstance(given, dict):
        raise InvalidInputError("inputs must be a JSON object of input name → value")
    check_value(given, "input")
    ports = {p["id"]: p for p in interface}
    unknown = sorted(set(given) - set(ports))
    if unknown:
        raise InvalidInputError(
            f"unknown input(s): {', '.join(unknown)}",
            hint="the workflow's inputs are: " + (", ".join(ports) or "(none)"),
        )
    missing = [k for k, p in ports.items() if k not in given and not p.get("optional")]
    if missing:
        raise InvalidInputError(f"missing required input(s): {', '.join(missing)}")
    for key, value in given.items():
        if not _type_ok(value, ports[key]["type"]):
            raise InvalidInputError(
                f"input {key!r} must be {ports[key]['type']}, got {json_type(value)}"
            )
    settings = uploads_store.settings
    roots = Roots()  # consulted for File and Directory objects only: resolved when any
    if any(True for _ in file_objects(given)):
        roots = Roots.of(
            own=extra_roots,
            shared=settings.input_roots,
            hidden=server_private(settings),
            granted=reported,
        )
    resolver = _Resolver(project, uploads_store, roots)
    return {k: resolver.value(v, k) for k, v in given.items()}


def json_type(value: Any) -> str:
    if isinstance(value, dict):
        return f"a {value.get('class', 'object')}" if "class" in value else "an object"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        type(None): "null",
    }.get(type(value), type(value).__name__)


class _Resolver:
    """Walks an input value: File and Directory objects checked and resolved (see
    :func:`resolve_inputs`); ``$`` keys (schema-salad directives) refused anywhere."""

    def __init__(self, project: str, store: UploadStore, roots: Roots) -> None:
        self.project, self.store, self.roots = project, store, roots

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return value
        for key in value:
            if isinstance(key, str) and key.startswith("$"):
                raise InvalidInputError(
                    f"input {where!r}: key {key!r} is a directive; inputs cannot hold "
                    "$import, $include or other $ keys",
                    hint="write the value itself (upload a file with POST /api/v1/uploads)",
                )
        if value.get("class") not in FILE_CLASSES:
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        return self.file(value, where)

    def file(self, value: dict[str, Any], where: str) -> dict[str, Any]:
        kind = value["class"]
        basename = value.get("basename")
        if basename is not None and (
            not isinstance(basename, str) or "/" in basename or basename in ("", ".", "..")
        ):
            raise InvalidInputError(f"input {where!r}: basename {basename!r} is not a file name")
        item = {
            k: self.value(v, f"{where}.{k}")
            for k, v in value.items()
            if k not in ("location", "path")
        }
        location = value.get("location") or value.get("path")
        if location is None or location == "":
            if (kind == "File" and "contents" in value) or (
                kind == "Directory" and "listing" in value and basename
            ):
                return item  # a literal: its own contents (or listing) and nothing else
            raise InvalidInputError(
                f"input {where!r}: a {kind} needs a location",
                hint="upload it with POST /api/v1/uploads and give location 'upload:ID'",
            )
        if not isinstance(location, str):
            raise InvalidInputError(f"input {where!r}: location must be a string")
        if location.startswith("upload:"):
            if kind != "File":
                raise InvalidInputError(f"input {where!r}: an upload is a File, not a {kind}")
            upload = self.store.get(location[len("upload:") :], self.project)
            item["path"] = str(Path(upload["path"]).resolve())
            return item
        scheme = urllib.parse.urlsplit(location).scheme
        path = url_path(location) if scheme == "file" else location
        real = self.roots.allows(Path(path)) if scheme in ("", "file") else None
        if real is None:
            raise InvalidInputError(
                f"input {where!r}: {kind.lower()} {location!r} is not an upload and not in "
                "a folder this server shares: not found or not allowed",
                hint="upload it with POST /api/v1/uploads and give location 'upload:ID'",
            )
        if not real.exists():
            raise InvalidInputError(f"input {where!r}: {kind.lower()} {location!r} does not exist")
        item["path"] = str(real)
        return item
