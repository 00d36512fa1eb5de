"""Automatic capture: the PROV graph of a finished run, built from its run records.

The run and every step execution (each scatter job is one) become ``prov:Activity``
with their times; the workflow and each tool description become ``prov:Plan`` entities
(identified by the SHA-256 of the CWL file) through qualified associations with the
TwinEngine software agent, which acts on behalf of the user; every input and output file
becomes an entity identified by its content (``sha256:<hex>``) with size, location and
format; every other input value becomes a value entity. Relations: ``used``,
``wasGeneratedBy``, ``wasDerivedFrom`` (each output from the inputs of its step),
``wasInformedBy`` (a step from the upstream steps whose outputs it used),
``wasStartedBy`` (a step by its run), ``wasAssociatedWith``, ``wasAttributedTo`` and
``actedOnBehalfOf``. The person is the run's TwinEngine user when a server ran it (never
the server's own account), else the local user and host.

A file's digest comes from its record when the native path took it while reading the
file (``twin:sha256``, next to CWL's SHA-1 ``checksum``); otherwise the file is hashed
while it is still where the records say (an output moved to the output folder is found
again through its SHA-1 checksum).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from twinengine import __version__
from twinengine.provenance.graph import ProvGraph, regular_file_sha256, value_id


def _path_of(obj: Mapping[str, Any]) -> str | None:
    path = obj.get("path")
    if isinstance(path, str) and path.startswith("/"):
        return path
    location = obj.get("location")
    if isinstance(location, str) and location.startswith("file://"):
        return unquote(urlsplit(location).path)
    if isinstance(location, str) and location.startswith("/"):
        return location
    return None


def _as_time(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


class _Files:
    """SHA-256 of the run's files, each read once; moved outputs found by checksum."""

    def __init__(self, final_outputs: Any) -> None:
        self.by_path: dict[str, str | None] = {}
        self.by_sha1: dict[str, str] = {}
        for obj in _files(final_outputs):
            path = _path_of(obj)
            if path and obj.get("checksum"):
                self.by_sha1[obj["checksum"]] = path

    def sha256(self, obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """``(sha256, path)`` of a File object (None when its bytes are gone); the native
        path records the digest when it reads the file, which spares a second read."""
        path = _path_of(obj)
        known = obj.get("twin:sha256")
        if isinstance(known, str):
            return known, path
        if path and not os.path.isfile(path):
            path = self.by_sha1.get(obj.get("checksum") or "")
        if not path:
            return None, None
        if path not in self.by_path:
            self.by_path[path] = regular_file_sha256(path)
        return self.by_path[path], path


def _files(value: Any) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    if isinstance(value, Mapping):
        if value.get("class") == "File":
            found.append(value)
            found.extend(_files(value.get("secondaryFiles")))
        else:
            for item in value.values():
                found.extend(_files(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_files(item))
    return found


def _plan(graph: ProvGraph, files: _Files, location: str | None, label: str) -> str | None:
    """The plan entity of a tool or workflow description (by content, when readable)."""
    if not location:
        return None
    path = unquote(urlsplit(location).path) if location.startswith("file://") else location
    path, _, fragment = path.partition("#")
    digest, _ = files.sha256({"class": "File", "path": path}) if path else (None, None)
    if digest is None:
        return None
    plan_id = f"sha256:{digest}"
    graph.entity(
        plan_id,
        label,
        prov_type="prov:Plan",
        prov_location=location,
        twin_fragment=fragment or None,
    )
    return plan_id


class _Capture:
    def __init__(self, run: Mapping[str, Any], steps: list[Mapping[str, Any]]) -> None:
        self.run = run
        self.steps = steps
        self.graph = ProvGraph()
        self.files = _Files(run.get("outputs"))
        self.run_id = f"twin:run/{run['id']}"
        self.producer: dict[str, str] = {}  # entity id -> step activity that generated it

    def value(self, value: Any, bundle: str | None = None) -> str | None:
        """The entity for an input/output value (a file by content, else its value)."""
        if isinstance(value, Mapping) and value.get("class") == "File":
            digest, path = self.files.sha256(value)
            if digest is None:
                return None
            attrs = {"prov_location": path or _path_of(value), "twin_size": value.get("size")}
            if value.get("format"):
                attrs["twin_format"] = value["format"]
            if value.get("checksum"):
                attrs["twin_checksum"] = value["checksum"]
            return self.graph.entity(f"sha256:{digest}", value.get("basename"), bundle, **attrs)
        if isinstance(value, Mapping) and value.get("class") == "Directory":
            return None  # a folder's entities are its files (not captured yet)
        literal = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)
        return self.graph.entity(value_id(value), None, bundle, prov_value=literal)

    def build(self) -> ProvGraph:
        g, run = self.graph, self.run
        if run.get("created_by"):  # a server's run: its TwinEngine user, not the server's
            name = str(run["created_by"])
            user = f"twin:agent/user/{name}"
        else:  # twin run on one's own machine: who typed it, where
            name = getpass.getuser()
            user = f"twin:agent/user/{name}@{run.get('host') or socket.gethostname()}"
        g.agent(user, name, prov_type="prov:Person")
        engine = f"twin:agent/twinengine/{__version__}"
        g.agent(engine, f"TwinEngine {__version__}", prov_type="prov:SoftwareAgent")
        g.relate("actedOnBehalfOf", engine, user)
        g.activity(
            self.run_id,
            run.get("name"),
            _as_time(run.get("started_at") or run.get("created_at")),
            _as_time(run.get("ended_at")),
            prov_type="twin:Run",
            twin_state=run.get("state"),
            twin_executor=run.get("executor"),
        )
        plan = _plan(
            g, self.files, run.get("workflow"), os.path.basename(run.get("workflow") or "")
        )
        g.relate("wasAssociatedWith", self.run_id, engine, prov_plan=plan)
        g.relate("wasAssociatedWith", self.run_id, user)
        for name, value in (run.get("inputs") or run.get("job_order") or {}).items():
            for item in self._items(value):
                entity = self.value(item)
                if entity:
                    g.relate("used", self.run_id, entity, prov_role=f"twin:input/{name}")
        finals = [  # declared before the steps: an entity keeps its first location
            (name, entity, _path_of(item))
            for name, value in (run.get("outputs") or {}).items()
            for item in self._items(value)
            if isinstance(item, Mapping) and (entity := self.value(item))
        ]
        for step in self.steps:
            if step.get("state") in ("succeeded", "failed", "cancelled") and step.get("started_at"):
                self.step(step, engine)
        for name, entity, path in finals:  # where this run left it
            g.relate(
                "wasAttributedTo",
                entity,
                user,
                prov_role=f"twin:output/{name}",
                prov_location=path,
            )
        return g

    @staticmethod
    def _items(value: Any) -> list[Any]:
        """File values of an array one by one; any other value as one parameter."""
        if isinstance(value, list) and any(
            isinstance(v, Mapping) and v.get("class") in ("File", "Directory") for v in value
        ):
            return list(value)
        return [value]

    def bundle_of(self, step_name: str) -> tuple[str | None, str]:
        """``(bundle, starter)`` of a step: steps of a sub-workflow (``wf/sub/step``) sit in
        the sub-workflow's bundle and are started by its activity, declared on first use
        (multi-level provenance); top-level steps are started by the run."""
        parts = step_name.split("/")[1:-1]  # between the workflow and the step
        starter, bundle = self.run_id, None
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            activity = f"{self.run_id}/workflow/{sub}"
            bundle = f"{self.run_id}/bundle/{sub}"
            if activity not in self.graph.elements:
                self.graph.activity(activity, sub, prov_type="twin:SubWorkflow")
                self.graph.relate("wasStartedBy", activity, starter)
                self.graph.entity(bundle, f"provenance of {sub}", prov_type="prov:Bundle")
                self.graph.relate("wasGeneratedBy", bundle, activity)
            starter = activity
        return bundle, starter

    def step(self, step: Mapping[str, Any], engine: str) -> None:
        g = self.graph
        act = f"{self.run_id}/step/{step['id']}"
        bundle, starter = self.bundle_of(step.get("name") or "")
        command = step.get("command_line")
        g.activity(
            act,
            step.get("name"),
            _as_time(step.get("started_at")),
            _as_time(step.get("ended_at")),
            bundle,
            prov_type="twin:Step",
            twin_state=step.get("state"),
            twin_exitCode=step.get("exit_code"),
            twin_attempt=step.get("attempt"),
            twin_commandLine=json.dumps(command) if command else None,
            twin_peakMemory=step.get("peak_memory"),
            twin_reusedFrom=step.get("reused_from"),
        )
        g.relate("wasStartedBy", act, starter, bundle)
        plan = _plan(g, self.files, step.get("tool"), (step.get("name") or "").rsplit("/", 1)[-1])
        g.relate("wasAssociatedWith", act, engine, bundle, prov_plan=plan)
        used: list[str] = []
        for name, value in (step.get("inputs") or {}).items():
            for item in self._items(value):
                entity = self.value(item, bundle)
                if entity:
                    used.append(entity)
                    g.relate("used", act, entity, bundle, prov_role=f"twin:input/{name}")
                    upstream = self.producer.get(entity)
                    if upstream and upstream != act:
                        g.relate("wasInformedBy", act, upstream, bundle)
        if step.get("state") != "succeeded":
            return
        for name, value in (step.get("outputs") or {}).items():
            for item in _files(value):
                entity = self.value(item, bundle)
                if not entity:
                    continue
                g.relate("wasGeneratedBy", entity, act, bundle, prov_role=f"twin:output/{name}")
                self.producer.setdefault(entity, act)
                for source in dict.fromkeys(used):
                    if source != entity:
                        g.relate("wasDerivedFrom", entity, source, bundle, prov_activity=act)


def capture_run(run: Mapping[str, Any], steps: list[Mapping[str, Any]]) -> ProvGraph:
    """The PROV graph of a run from its record and its step records (in start order)."""
    ordered = sorted(steps, key=lambda s: str(s.get("started_at") or s.get("created_at") or ""))
    return _Capture(run, ordered).build()


def record_run(records: Any, run_id: str) -> str | None:
    """Build a stored run's document from its records and store it in place of any
    earlier one, through ``records`` (a :class:`~twinengine.workflows.recordstore.RecordStore`);
    returns the document id (None for an unknown run)."""
    from twinengine.core import new_id
    from twinengine.provenance.rows import graph_rows

    run = records.run_row(run_id)
    if run is None:
        return None
    graph = capture_run(run, records.step_rows(run_id))
    document_id = new_id()
    rows = graph_rows(
        graph,
        document_id,
        name=run["name"],
        origin="run",
        run_id=run_id,
        project=run.get("project"),
    )
    records.replace_run_provenance(run_id, rows)
    return document_id
