"""A native Workflow: steps that run CommandLineTools, wired by sources, with scatter.

:class:`NativeWorkflow` checks the wiring statically (every source exists, types fit,
scatter has its requirement) at load time; :class:`WorkflowRun` submits each step the
moment its sources have values and expands dotproduct scatters, through the same
scheduler as everything else.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinengine.workflows.native.document import (
    NotNative,
    assignable,
    entries,
    only_keys,
    optional,
    parse_type,
    requirements,
    step_document,
)
from twinengine.workflows.native.job import RunContext
from twinengine.workflows.native.tool import (
    NativeTool,
    Param,
    find_requirement,
    literal_default,
    load_plain,
    merge_requirements,
)

if TYPE_CHECKING:
    from twinengine.workflows.scheduler import Callback, Scheduler

log = logging.getLogger("twinengine.workflows")

_WORKFLOW_FIELDS = {
    "cwlVersion", "class", "id", "label", "doc", "inputs", "outputs", "steps",
    "requirements", "hints",
}  # fmt: skip


# -- workflows ----------------------------------------------------------------------
@dataclass
class Step:
    name: str
    tool: NativeTool
    sources: dict[str, str | None]  # tool input -> workflow source ("x" or "step/out")
    defaults: dict[str, Any]
    outs: list[str]
    scatter: list[str] = field(default_factory=list)


class NativeWorkflow:
    """A Workflow of CommandLineTool steps (with dotproduct scatter) the native path runs."""

    native = True

    def __init__(self, doc: dict[str, Any], path: Path, tools: dict[Path, dict[str, Any]]) -> None:
        where = str(path)
        only_keys(doc, _WORKFLOW_FIELDS, where)
        self.tool = {**doc, "id": path.as_uri()}
        self.requirements = requirements(doc, "requirements", where)
        self.hints = requirements(doc, "hints", where)
        self.inputs: list[Param] = []
        for name, fields in entries(doc.get("inputs"), where):
            only_keys(fields, {"type", "default", "label", "doc"}, f"{where} {name}")
            t = parse_type(fields.get("type"))
            default, has_default = literal_default(fields, t, f"{where} {name}")
            self.inputs.append(Param(name, t, None, default, has_default))
        types: dict[str, Any] = {p.name: p.type for p in self.inputs}
        self.steps: list[Step] = []
        for name, fields in entries(doc.get("steps"), where, shorthand=""):
            step = self._step(name, fields, path, tools, types)
            self.steps.append(step)
        self.docker_hint = any(step.tool.docker_hint for step in self.steps)
        self.outputs: list[tuple[str, str]] = []
        for name, fields in entries(doc.get("outputs"), where):
            only_keys(fields, {"type", "outputSource", "label", "doc"}, f"{where} {name}")
            t = parse_type(fields.get("type"))
            source = fields.get("outputSource")
            if not isinstance(source, str) or source not in types:
                raise NotNative(f"{where}: output {name} source {source!r}")
            if not assignable(types[source], t):
                raise NotNative(f"{where}: output {name} type")
            self.outputs.append((name, source))

    def _step(
        self,
        name: str,
        fields: dict[str, Any],
        path: Path,
        tools: dict[Path, dict[str, Any]],
        types: dict[str, Any],
    ) -> Step:
        where = f"{path} step {name}"
        allowed = {"run", "in", "out", "scatter", "scatterMethod", "label", "doc"}
        only_keys(fields, allowed | {"requirements", "hints"}, where)
        reqs = requirements(fields, "requirements", where)
        hints = requirements(fields, "hints", where)
        run = fields.get("run")
        if isinstance(run, str):
            tool_path = step_document(path, run, where)
            doc = tools.get(tool_path)
            if doc is None:
                doc = tools[tool_path] = load_plain(tool_path)
            tool_id = tool_path.as_uri()
        elif isinstance(run, dict):
            doc, tool_id = run, f"{path.as_uri()}#{name}/run"
        else:
            raise NotNative(f"{where}: run")
        if doc.get("class") != "CommandLineTool":
            raise NotNative(f"{where}: runs a {doc.get('class')}")
        if doc.get("cwlVersion", "v1.2") != "v1.2":
            raise NotNative(f"{where}: cwlVersion {doc.get('cwlVersion')}")
        tool = NativeTool(
            {k: v for k, v in doc.items() if k != "cwlVersion"},
            tool_id,
            [*self.requirements, *reqs],
            [*self.hints, *hints],
        )
        tool_inputs = {p.name: p for p in tool.inputs}
        sources: dict[str, str | None] = {}
        defaults: dict[str, Any] = {}
        for in_name, spec in entries(fields.get("in"), f"{where} in", shorthand="source"):
            only_keys(spec, {"source", "default"}, f"{where} in {in_name}")
            if in_name not in tool_inputs:
                raise NotNative(f"{where}: {in_name} is not an input of the tool")
            source = spec.get("source")
            if source is not None and (not isinstance(source, str) or source not in types):
                raise NotNative(f"{where}: source {source!r}")
            sources[in_name] = source
            if "default" in spec:
                defaults[in_name], _ = literal_default(spec, tool_inputs[in_name].type, where)
        scatter = fields.get("scatter", [])
        scatter = [scatter] if isinstance(scatter, str) else scatter
        if not isinstance(scatter, list) or not all(s in sources for s in scatter):
            raise NotNative(f"{where}: scatter {scatter!r}")
        method = fields.get("scatterMethod")
        if scatter and (method or ("dotproduct" if len(scatter) == 1 else None)) != "dotproduct":
            raise NotNative(f"{where}: scatterMethod {method!r}")
        if scatter and "ScatterFeatureRequirement" not in merge_requirements(
            self.requirements, reqs
        ):
            raise NotNative(f"{where}: scatter without ScatterFeatureRequirement")
        for in_name, param in tool_inputs.items():
            source = sources.get(in_name)
            if source is None:
                if not (in_name in defaults or param.has_default or optional(param.type)):
                    raise NotNative(f"{where}: required input {in_name} is not connected")
                continue
            sink = ("array", param.type) if in_name in scatter else param.type
            if not assignable(types[source], sink):
                raise NotNative(f"{where}: {source} does not fit {in_name}")
        outs = fields.get("out", [])
        if not isinstance(outs, list):
            raise NotNative(f"{where}: out")
        out_names = [o if isinstance(o, str) else (o or {}).get("id") for o in outs]
        tool_outputs = {n: t for n, t, _ in tool.outputs}
        for out in out_names:
            if out not in tool_outputs:
                raise NotNative(f"{where}: out {out!r}")
            t = tool_outputs[out]
            types[f"{name}/{out}"] = ("array", t) if scatter else t
        return Step(name, tool, sources, defaults, out_names, scatter)

    # -- Scheduler interface ------------------------------------------------------
    def get_requirement(self, name: str) -> tuple[dict[str, Any] | None, bool]:
        return find_requirement(self, name)

    def start(
        self,
        scheduler: Scheduler,
        job_order: dict[str, Any],
        rc: RunContext,
        path: str,
        callback: Callback,
    ) -> None:
        WorkflowRun(self, scheduler, job_order, rc, path, callback).advance()


class WorkflowRun:
    """The state of one native workflow execution."""

    def __init__(
        self,
        workflow: NativeWorkflow,
        scheduler: Scheduler,
        job_order: dict[str, Any],
        rc: RunContext,
        path: str,
        callback: Callback,
    ) -> None:
        self.wf = workflow
        self.scheduler = scheduler
        self.rc = rc
        self.path = path
        self.callback = callback
        self.values: dict[str, Any] = {}
        for param in workflow.inputs:
            value = job_order.get(param.name)
            self.values[param.name] = (
                param.default if value is None and param.has_default else value
            )
        self.pending = list(workflow.steps)
        self.running = 0
        self.status = "success"
        self.done = False

    def advance(self) -> None:
        if self.done:
            return
        stopping = self.scheduler.stopping or (
            self.rc.on_error == "stop" and self.status != "success"
        )
        if not stopping:
            waiting = []
            for step in self.pending:
                if all(s is None or s in self.values for s in step.sources.values()):
                    self.running += 1
                    self.scheduler.soon(functools.partial(self._submit, step))
                else:
                    waiting.append(step)
            self.pending = waiting
        if self.running == 0:
            self._finish()

    def _submit(self, step: Step) -> None:
        job: dict[str, Any] = {}
        for name, source in step.sources.items():
            value = self.values.get(source) if source is not None else None
            if value is None and name in step.defaults:
                value = step.defaults[name]
            job[name] = value
        path = f"{self.path}/{step.name}"
        if not step.scatter:
            self.scheduler.start_process(
                step.tool, job, self.rc, path, functools.partial(self._step_done, step)
            )
            return
        lengths = {len(job[s]) for s in step.scatter}
        if len(lengths) > 1:
            log.error("[%s] Length of input arrays must be equal when performing dotproduct", path)
            self._step_done(step, {}, "permanentFail")
            return
        count = lengths.pop()
        results: list[dict[str, Any] | None] = [None] * count
        state = {"left": count, "status": "success"}
        if count == 0:
            self._step_done(step, {out: [] for out in step.outs}, "success")
            return

        def receive(index: int, outputs: dict[str, Any] | None, status: str) -> None:
            results[index] = outputs or {}
            if status != "success":
                state["status"] = "permanentFail"
            state["left"] -= 1
            if state["left"] == 0:
                merged = {out: [r.get(out) if r else None for r in results] for out in step.outs}
                self._step_done(step, merged, str(state["status"]))

        for i in range(count):
            item = dict(job)
            for s in step.scatter:
                item[s] = job[s][i]
            self.scheduler.start_process(
                step.tool, item, self.rc, f"{path}[{i}]", functools.partial(receive, i)
            )

    def _step_done(self, step: Step, outputs: dict[str, Any] | None, status: str) -> None:
        self.running -= 1
        path = f"{self.path}/{step.name}"
        if status == "success":
            outputs = outputs or {}
            for out in step.outs:
                self.values[f"{step.name}/{out}"] = outputs.get(out)
            log.info("[%s] completed %s", path, status)
        else:
            self.status = "permanentFail"
            log.warning("[%s] completed %s", path, status)
        self.advance()

    def _finish(self) -> None:
        self.done = True
        if self.pending and self.status == "success" and not self.scheduler.stopping:
            log.error("[%s] workflow cannot make any more progress", self.path)
            self.status = "permanentFail"
        outputs = {name: self.values.get(source) for name, source in self.wf.outputs}
        log.info("[%s] completed %s", self.path, self.status)
        self.callback(outputs, self.status)
