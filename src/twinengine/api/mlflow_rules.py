"""What the MLflow proxy lets through: who may use it, where a request may make MLflow write.

MLflow has no projects: whoever uses ``/mlflow`` sees and changes every project's
experiments, runs and models. So :func:`check_access` follows the ``mlflow_access``
setting — ``admins`` (the default for a shared server: only an admin user with an
``admin``-scope credential) or ``members`` (any project member reads; ``run`` scope and
the editor role somewhere to change). And MLflow's child runs as the server's user, so a
request may not choose where it writes: :func:`check_request` refuses (400) a body or
query naming a storage location (``artifact_location`` of ``experiments/create``, a
workspace's ``default_artifact_root`` …) and a model version whose ``source`` lies
outside :class:`ArtifactRoots` (``$TWIN_HOME/mlartifacts``); :func:`upload_folder` names
the folder an artifact upload lands in, which must lie there too, and :func:`check_room`
bounds each run's artifacts uploaded through the proxy (files and bytes).
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from twinengine.api.accounts import ROLES, Principal
from twinengine.core import ForbiddenError, InvalidInputError, PayloadTooLargeError, Settings

#: request fields that would choose where MLflow stores files
LOCATION_KEYS = frozenset(
    {
        "artifact_location",
        "artifact_uri",
        "artifact_root",
        "default_artifact_root",
        "artifacts_destination",
        "storage_location",
    }
)
PROMPT_SOURCES = frozenset({"dummy-source", "prompt-template"})  # MLflow's prompt versions
_SOURCE_SCHEMES = ("runs", "models")
RUN_FILES = 1000  # artifacts one run may have through the proxy
_API = re.compile(r"^/(?:ajax-)?api/\d+\.\d+/(?:preview/)?(?P<rest>.+)$")


def check_access(who: Principal, settings: Settings, write: bool) -> None:
    """403 unless the caller may read (or, ``write``, change) through ``/mlflow``."""
    if who.is_admin:
        return
    if settings.mlflow_access != "members":
        raise ForbiddenError(
            "the MLflow UI of this server is for administrators",
            hint="MLflow has no projects; an operator may open it to project members with "
            "mlflow_access = members (they then see every project's experiments)",
        )
    who.require_scope("run" if write else "read")
    need = ROLES.index("editor" if write else "viewer")
    if not any(ROLES.index(role) >= need for role in who.roles.values()):
        raise ForbiddenError(
            "the MLflow UI is for members of a project"
            + (" with the editor role" if write else ""),
            hint="ask a project owner to add you",
        )


def may_open(who: Principal, settings: Settings) -> bool:
    """Whether the caller may open the MLflow UI (for the web UI's link)."""
    try:
        check_access(who, settings, write=False)
    except ForbiddenError:
        return False
    return True


@dataclass(frozen=True)
class ArtifactRoots:
    """Where MLflow's files of one home go: ``root`` (``$TWIN_HOME/mlartifacts``: ``twin
    train``'s experiments, those made through ``/mlflow``) and, inside it, ``proxied``
    (what MLflow's proxied artifact API stores)."""

    home: Path

    @property
    def root(self) -> Path:
        return Path(self.home).resolve() / "mlartifacts"

    @property
    def proxied(self) -> Path:
        return self.root / "proxied"

    def local(self, location: str) -> Path | None:
        """The folder a ``file:`` URI, a path or an ``mlflow-artifacts:`` URI names inside
        the roots; None for anything else (another place, another scheme, ``..``)."""
        parts = urlsplit(location)
        path = unquote(parts.path)
        if not path or "\x00" in path or ".." in path.split("/"):
            return None
        if parts.scheme == "mlflow-artifacts" and not parts.netloc:
            target = self.proxied / path.lstrip("/")
        elif parts.scheme in ("", "file") and not parts.netloc and path.startswith("/"):
            target = Path(path)
        else:
            return None
        target = Path(os.path.realpath(target))  # links resolved: a link cannot lead out
        return target if target.is_relative_to(self.root) else None

    def source_allowed(self, source: str) -> bool:
        """Whether a model version's ``source`` lies inside the roots (or is one of MLflow's
        own references: ``runs:/``, ``models:/``, ``mlflow-artifacts:/``, a prompt's)."""
        if source in PROMPT_SOURCES:
            return True
        parts = urlsplit(source)
        if parts.scheme == "mlflow-artifacts":
            return self.local(source) is not None  # on this server, not another's
        if parts.scheme in _SOURCE_SCHEMES:
            return ".." not in unquote(source).split("/")
        return self.local(source) is not None


def endpoint(path: str) -> str | None:
    """The REST endpoint of a proxied path (``mlflow/experiments/create``), or None."""
    found = _API.match(re.sub(r"/+", "/", "/" + path))
    return found.group("rest").rstrip("/") if found else None


def check_request(path: str, query: dict[str, str], body: bytes, roots: ArtifactRoots) -> None:
    """400 when a request to MLflow's REST API names a storage location, or a model
    version's source outside the roots (``body``: the whole JSON body)."""
    values: Any = {}
    if body.strip():
        try:
            values = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInputError("MLflow's REST API takes a JSON body") from None
    for found in (_location_keys(values), _location_keys(query)):
        if found:
            raise InvalidInputError(
                f"the MLflow proxy does not let a request choose where MLflow stores files "
                f"({found})",
                hint="leave it out: the server keeps every artifact under its own folder",
            )
    rest = endpoint(path) or ""
    if rest.endswith("model-versions/create"):
        source = values.get("source") if isinstance(values, dict) else None
        source = source if source is not None else query.get("source")
        if isinstance(source, str) and source and not roots.source_allowed(source):
            raise InvalidInputError(
                "a model version's source must be a run's artifacts on this server",
                hint="use runs:/RUN_ID/PATH or models:/…",
            )


def _location_keys(value: Any, depth: int = 0) -> str | None:
    """The first storage-location field set in a JSON value, at any depth."""
    if depth > 32:
        raise InvalidInputError("the request body is nested too deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if key in LOCATION_KEYS and item not in (None, "", [], {}):
                return str(key)
            found = _location_keys(item, depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _location_keys(item, depth + 1)
            if found:
                return found
    return None


def upload_folder(path: str, roots: ArtifactRoots) -> Path | None:
    """For a proxied artifact upload (``PUT …/mlflow-artifacts/artifacts/EXP/RUN/…``): the
    folder of its run (its first two components) inside ``proxied``; else None."""
    rest = endpoint(path) or ""
    if not rest.startswith("mlflow-artifacts/artifacts/"):
        return None
    parts = [p for p in unquote(rest.removeprefix("mlflow-artifacts/artifacts/")).split("/") if p]
    if not parts or any(p in (".", "..") or "\x00" in p for p in parts):
        raise InvalidInputError("an artifact path may not contain '.' or '..' components")
    return roots.proxied.joinpath(*parts[:2])


def check_room(folder: Path, incoming: int, limit_bytes: int) -> None:
    """413 when ``folder`` (a run's artifacts) already holds :data:`RUN_FILES` files, or
    would pass ``limit_bytes`` with ``incoming`` more."""
    files, size = 0, 0
    pending = [folder]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                pending.append(Path(entry.path))
            else:
                files += 1
                size += info.st_size
        if files >= RUN_FILES:
            break
    if files >= RUN_FILES or size + incoming > limit_bytes:
        raise PayloadTooLargeError(
            f"this run's artifacts are at their limit ({RUN_FILES} files, "
            f"{limit_bytes // (1024 * 1024)} MB through the MLflow proxy)",
            hint="start a new run, or ask an operator (the limit is 10 × TWIN_MAX_UPLOAD_MB)",
        )
