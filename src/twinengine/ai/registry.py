"""Model registry: versions of trained models, aliases, promotion and rollback on MLflow.

:class:`ModelRegistry` wraps the MLflow model registry of the same tracking store that
``twin train`` logs to (``sqlite:///$TWIN_HOME/mlflow.db`` by default). A version is a
run's ``model`` artifact folder (``model.pt``, ``model.onnx``, ``standardize.json``).

Aliases: ``production`` and ``staging`` are set by :meth:`ModelRegistry.promote`;
``previous`` is kept for rollback — promoting a new version to production moves the old
production version to ``previous``, and :meth:`ModelRegistry.rollback` swaps the two.
Every promotion and rollback is appended to a JSON list in the registered model's tag
``twin.promotions`` (who, when, alias, from, to) and recorded as a PROV activity when the
provenance store is available. ``promote(..., require_quality=True)`` refuses versions
whose tag ``twin.quality`` is not ``passed`` (set by the QA module).

Projects: a registered model belongs to the project named in its tag
``twinengine.project``, written when :meth:`ModelRegistry.register` makes it (default
``default``); a version of another project's model name is refused. ``twin serve`` shows
and changes a model only for members of its project (models without the tag — made
before projects, or by MLflow directly — for admins only). Messages never name the
tracking store (its URI holds a server path).

References (:meth:`ModelRegistry.resolve`, :meth:`ModelRegistry.export`): ``NAME@ALIAS``,
``NAME/VERSION``, or a bare ``NAME`` (its production version, else its latest).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from twinengine.ai.artifacts import ONNX_FILE
from twinengine.core.errors import InvalidInputError, NotFoundError, StateError, TwinError

log = logging.getLogger("twinengine.ai")

PROMOTION_ALIASES = ("production", "staging")
PREVIOUS = "previous"
HISTORY_TAG = "twin.promotions"
QUALITY_TAG = "twin.quality"
PROJECT_TAG = "twinengine.project"
DEFAULT_PROJECT = "default"
MODEL_FOLDER = "model"
_HISTORY_KEEP = 200  # entries kept in the tag (MLflow caps tag values)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


def _time(millis: int | None) -> str | None:
    if millis is None:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat(timespec="seconds")


def _local_path(uri: str) -> Path | None:
    """The local directory of a ``file:`` URI or plain path; ``None`` for remote stores."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


class ModelRegistry:
    """Register, list, promote, roll back, resolve and export model versions."""

    def __init__(
        self, tracking_uri: str | None = None, provenance: bool = True, prov_db: Any = None
    ) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError as exc:
            raise TwinError(
                "the model registry needs the ai extra", hint="pip install 'twinengine[ai]'"
            ) from exc

        from twinengine.ai.tracking import tracking_uri as default_uri

        self.uri = default_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.provenance = provenance
        self.prov_db = prov_db  # the metadata database for PROV records (default: this home's)
        self.actor: str | None = None  # who promotes (default: the OS user; the API's caller)

    # -- lookups ----------------------------------------------------------------------
    def _model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if _missing(exc):
                raise NotFoundError(
                    f"no registered model {name!r}",
                    hint="see `twin models list`; register one with `twin models register`",
                ) from None
            raise

    def _version(self, name: str, version: str | int) -> Any:
        from mlflow.exceptions import MlflowException

        self._model(name)
        if not str(version).isdigit():
            raise InvalidInputError(f"model version {version!r} must be a number")
        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            if _missing(exc):
                raise NotFoundError(f"model {name!r} has no version {version}") from None
            raise

    def _alias(self, name: str, alias: str) -> Any | None:
        """The version ``alias`` points to, or ``None``."""
        version = self._model(name).aliases.get(alias)
        return None if version is None else self.client.get_model_version(name, str(version))

    def version_of(self, ref: str) -> Any:
        """The MLflow ModelVersion of ``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME``."""
        if "@" in ref:
            name, alias = ref.rsplit("@", 1)
            found = self._alias(name, alias)
            if found is None:
                aliases = ", ".join(sorted(self._model(name).aliases)) or "none"
                raise NotFoundError(f"model {name!r} has no alias {alias!r} (aliases: {aliases})")
            return found
        if "/" in ref:
            name, version = ref.rsplit("/", 1)
            return self._version(name, version)
        found = self._alias(ref, "production")
        if found is not None:
            return found
        versions = self._versions(ref)
        if not versions:
            raise NotFoundError(f"model {ref!r} has no versions")
        return versions[-1]

    def _versions(self, name: str) -> list[Any]:
        found = self.client.search_model_versions(f"name = '{name}'")
        return sorted(found, key=lambda v: int(v.version))

    # -- registering and reading ------------------------------------------------------
    def register(
        self,
        run_id: str,
        name: str,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> int:
        """Register ``run_id``'s ``model`` artifact folder as a new version of ``name``, a
        model of ``project`` (made with that tag if new; refused if it is another's)."""
        from mlflow.exceptions import MlflowException

        if not _NAME.match(name):
            raise InvalidInputError(
                f"model name {name!r}: use letters, digits, '_', '.' and '-' only"
            )
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise NotFoundError(f"no MLflow run {run_id!r}") from None
        files = {Path(a.path).name for a in self.client.list_artifacts(run_id, MODEL_FOLDER)}
        if not files:
            raise NotFoundError(
                f"run {run_id} has no {MODEL_FOLDER}/ artifacts to register",
                hint="register a finished `twin train` run",
            )
        if ONNX_FILE not in files:
            log.warning("run %s has no %s: the version cannot be served", run_id, ONNX_FILE)
        try:
            owner = self.client.get_registered_model(name).tags.get(PROJECT_TAG)
        except MlflowException as exc:
            if not _missing(exc):
                raise
            self.client.create_registered_model(
                name, description=description, tags={PROJECT_TAG: project}
            )
        else:
            if owner is None:  # a model from before projects: its first project claims it
                self.client.set_registered_model_tag(name, PROJECT_TAG, project)
            elif owner != project:
                raise StateError(
                    f"model {name!r} belongs to project {owner!r}, not {project!r}",
                    hint="register it in its own project, or choose another name",
                )
        try:
            version = self.client.create_model_version(
                name,
                source=f"{run.info.artifact_uri.rstrip('/')}/{MODEL_FOLDER}",
                run_id=run_id,
                tags={k: str(v) for k, v in (tags or {}).items()},
                description=description,
            )
        except MlflowException as exc:  # a tag MLflow does not take (name, length)
            if getattr(exc, "error_code", "") != "INVALID_PARAMETER_VALUE":
                raise
            raise InvalidInputError(
                f"model {name!r}: MLflow refused the version: {exc.message[:300]}",
                hint="tag names are letters, digits and _ - . / space; values are short texts",
            ) from None
        return int(version.version)

    def project_of(self, name: str) -> str | None:
        """The project model ``name`` belongs to (None: no project tag); NotFoundError."""
        return self._model(name).tags.get(PROJECT_TAG)

    def list(self) -> list[dict[str, Any]]:
        """Every registered model: name, project, description, latest version, aliases."""
        rows = []
        for model in self.client.search_registered_models(max_results=1000):
            versions = self._versions(model.name)
            rows.append(
                {
                    "name": model.name,
                    "project": model.tags.get(PROJECT_TAG),
                    "description": model.description or "",
                    "latest": int(versions[-1].version) if versions else None,
                    "versions": len(versions),
                    "aliases": {k: int(v) for k, v in sorted(model.aliases.items())},
                }
            )
        return sorted(rows, key=lambda row: row["name"])

    def show(self, name: str) -> dict[str, Any]:
        """A model with its versions (aliases, tags, run id, creation time) and history."""
        model = self._model(name)
        by_version: dict[str, list[str]] = {}
        for alias, version in model.aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        versions = [
            {
                "version": int(v.version),
                "aliases": sorted(by_version.get(str(v.version), [])),
                "tags": dict(v.tags),
                "run_id": v.run_id,
                "created": _time(v.creation_timestamp),
                "status": v.status,
                "description": v.description or "",
                "source": v.source,
            }
            for v in self._versions(name)
        ]
        return {
            "name": model.name,
            "project": model.tags.get(PROJECT_TAG),
            "description": model.description or "",
            "aliases": {k: int(v) for k, v in sorted(model.aliases.items())},
            "versions": versions,
            "promotions": self.history(name),
        }

    def history(self, name: str) -> list[dict[str, Any]]:
        """The promotion history (oldest first) kept in the ``twin.promotions`` tag."""
        raw = self._model(name).tags.get(HISTORY_TAG)
        try:
            return list(json.loads(raw)) if raw else []
        except ValueError:
            log.warning("model %s: unreadable %s tag, starting a new history", name, HISTORY_TAG)
            return []

    # -- promotion ----------------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: str | int,
        alias: str = "production",
        require_quality: bool = False,
    ) -> dict[str, Any]:
        """Point ``alias`` at ``version``; returns the history entry written."""
        if alias not in PROMOTION_ALIASES:
            raise InvalidInputError(
                f"alias {alias!r}: promote to one of {', '.join(PROMOTION_ALIASES)}",
                hint=f"{PREVIOUS!r} is managed by promote and rollback",
            )
        target = self._version(name, version)
        if require_quality and target.tags.get(QUALITY_TAG) != "passed":
            state = target.tags.get(QUALITY_TAG, "not assessed")
            raise StateError(
                f"model {name} version {target.version} has not passed quality checks "
                f"({QUALITY_TAG}: {state}); not promoted to {alias}",
                hint="run the QA gate on it, or promote without --require-quality",
            )
        current = self._alias(name, alias)
        old = int(current.version) if current is not None else None
        if alias == "production" and old is not None and old != int(target.version):
            self.client.set_registered_model_alias(name, PREVIOUS, str(old))
        self.client.set_registered_model_alias(name, alias, str(target.version))
        return self._record(name, "promote", alias, old, int(target.version))

    def rollback(self, name: str) -> dict[str, Any]:
        """Make the ``previous`` version production again (the two swap places)."""
        previous = self._alias(name, PREVIOUS)
        if previous is None:
            raise StateError(
                f"model {name!r} has no {PREVIOUS!r} version to roll back to",
                hint="a version becomes previous when another is promoted to production",
            )
        current = self._alias(name, "production")
        self.client.set_registered_model_alias(name, "production", str(previous.version))
        if current is not None and current.version != previous.version:
            self.client.set_registered_model_alias(name, PREVIOUS, str(current.version))
        else:
            self.client.delete_registered_model_alias(name, PREVIOUS)
        old = int(current.version) if current is not None else None
        return self._record(name, "rollback", "production", old, int(previous.version))

    def _record(
        self, name: str, action: str, alias: str, old: int | None, new: int
    ) -> dict[str, Any]:
        entry = {
            "action": action,
            "alias": alias,
            "from": old,
            "to": new,
            "who": self.actor or getpass.getuser(),
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        history = [*self.history(name), entry][-_HISTORY_KEEP:]
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
        if self.provenance:
            self._provenance(name, entry)
        return entry

    def _provenance(self, name: str, entry: dict[str, Any]) -> None:
        """Record the promotion as a PROV activity; a missing store only logs a warning."""
        try:
            from twinengine.provenance import ProvStore, activity

            attributes = {
                "twin_model": name,
                "twin_alias": entry["alias"],
                "twin_to_version": entry["to"],
                "twin_from_version": "" if entry["from"] is None else entry["from"],
            }
            store = ProvStore(self.prov_db) if self.prov_db is not None else None
            with activity(f"model-{entry['action']}", store, **attributes) as act:
                act.used(f"models:/{name}/{entry['to']}", role="model")
        except Exception as exc:  # provenance is a record, never a reason to fail
            log.warning("provenance of the %s not recorded: %s", entry["action"], exc)

    # -- files ----------------------------------------------------------------------------
    def folder(self, version: Any) -> Path:
        """A local directory holding the version's model files (downloaded when remote)."""
        local = _local_path(version.source)
        if local is not None and local.is_dir():
            return local
        from twinengine.core import get_settings

        cache = Path(get_settings().home) / "models" / version.name / str(version.version)
        if not (cache / MODEL_FOLDER).is_dir():
            cache.mkdir(parents=True, exist_ok=True)
            self.client.download_artifacts(version.run_id, MODEL_FOLDER, str(cache))
        return cache / MODEL_FOLDER

    def resolve(self, ref: str) -> Path:
        """The local path of the ONNX file of ``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME``."""
        version = self.version_of(ref)
        onnx = self.folder(version) / ONNX_FILE
        if not onnx.is_file():
            raise NotFoundError(
                f"{ref} (version {version.version}) has no {ONNX_FILE}",
                hint="train with trainer.onnx=true so that the model can be served",
            )
        return onnx

    def export(self, ref: str, target_dir: str | Path) -> list[Path]:
        """Copy the version's files (ONNX, native, scaling) into ``target_dir``."""
        version = self.version_of(ref)
        target = Path(target_dir)
        target.mkdir(parents=True, exist_ok=True)
        copied = []
        for file in sorted(self.folder(version).iterdir()):
            if file.is_file():
                copied.append(Path(shutil.copy2(file, target / file.name)))
        return copied
