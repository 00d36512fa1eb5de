"""Workflow semantics: which step runs when, with which inputs.

A :class:`WorkflowInstance` holds the state of one (sub-)workflow execution — the value
of every workflow input and step output — and submits a step as soon as all its sources
have values (no polling: each completed step triggers :meth:`WorkflowInstance.advance`).
:class:`StepRun` evaluates a step's inputs (``source``, ``linkMerge``, ``pickValue``,
``default``, ``valueFrom``), its ``when`` condition, expands ``scatter``
(dotproduct, nested and flat crossproduct) and runs cwltool's ``Loop`` extension
(``loop``/``outputMethod``). Tools themselves are started through the scheduler.

The rules mirror cwltool's ``workflow_job.py`` (same helpers for source resolution:
``object_from_state``), so results match the reference runner; what differs is that
nothing is deep-copied per scatter item and nothing waits on a polling loop.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import MutableSequence
from typing import TYPE_CHECKING, Any

from cwl_utils import expression
from cwltool.builder import content_limit_respected_read
from cwltool.errors import WorkflowException
from cwltool.process import shortname
from cwltool.stdfsaccess import StdFsAccess
from cwltool.utils import WorkflowStateItem, adjustDirObjs, aslist, get_listing
from cwltool.workflow_job import object_from_state

from twinengine.workflows.scheduler import Callback

if TYPE_CHECKING:
    from twinengine.workflows.scheduler import Scheduler

log = logging.getLogger("twinengine.workflows")


def _eval(ex: Any, inputs: dict[str, Any], reqs: list[Any], rc: Any, context: Any = None) -> Any:
    return expression.do_eval(
        ex,
        inputs,
        reqs,
        None,
        None,
        {},
        context=context,
        debug=rc.debug,
        js_console=rc.js_console,
        timeout=rc.eval_timeout,
        container_engine="docker",
    )


class WorkflowInstance:
    """One execution of a CWL Workflow (top level or nested)."""

    def __init__(
        self,
        scheduler: Scheduler,
        workflow: Any,
        joborder: dict[str, Any],
        runtime_context: Any,
        path: str,
        callback: Callback,
    ) -> None:
        self.scheduler = scheduler
        self.workflow = workflow
        self.joborder = joborder
        self.rc = runtime_context.copy()
        self.rc.outdir = None  # every step gets a fresh output folder
        self.path = path
        self.callback = callback
        self.state: dict[str, WorkflowStateItem | None] = {}
        self.status = "success"
        self.steps: list[StepRun] = []  # made in start(), once the inputs are validated
        self.running = 0
        self.done = False
        self.multiple_inputs = bool(workflow.get_requirement("MultipleInputFeatureRequirement")[0])
        self.step_input_expr = bool(workflow.get_requirement("StepInputExpressionRequirement")[0])

    def start(self) -> None:
        # cwltool's input validation: fills defaults and nulls, discovers secondaryFiles
        self.joborder = self.workflow._init_job(self.joborder, self.rc).job
        self.rc.toplevel = False  # steps below the top level (their rc copies this one)
        self.steps = [StepRun(self, step) for step in self.workflow.steps]
        for inp in self.workflow.tool["inputs"]:
            inp_id = shortname(inp["id"])
            if inp_id in self.joborder:
                self.state[inp["id"]] = WorkflowStateItem(inp, self.joborder[inp_id], "success")
            elif "default" in inp:
                self.state[inp["id"]] = WorkflowStateItem(inp, inp["default"], "success")
            else:
                raise WorkflowException(
                    f"Input '{inp['id']}' not in input object and does not have a default value."
                )
        for step in self.steps:
            for out in step.step.tool["outputs"]:
                self.state[out["id"]] = None
        self.advance()

    @property
    def stop_on_error(self) -> bool:
        return (self.rc.on_error or "stop") == "stop"

    def advance(self) -> None:
        """Submit every step whose inputs are now available; finish when all are done."""
        if self.done:
            return
        stopping = self.scheduler.stopping or (self.stop_on_error and self.status != "success")
        if not stopping:
            for step in self.steps:
                if step.submitted:
                    continue
                try:
                    inputobj = object_from_state(
                        self.state, step.step.tool["inputs"], False, self.multiple_inputs, "source"
                    )
                except WorkflowException as exc:
                    self._step_error(step, exc)
                    continue
                if inputobj is None:
                    continue
                step.submitted = True
                self.running += 1
                self.scheduler.soon(functools.partial(step.submit, inputobj))
        if self.running == 0:  # nothing in flight: nothing else can become ready
            self._finish()

    def _step_error(self, step: StepRun, exc: Exception) -> None:
        log.error("[%s] Cannot make job: %s", step.path, exc)
        step.submitted = step.completed = True
        self.status = "permanentFail"

    def step_done(self, step: StepRun, jobout: dict[str, Any] | None, status: str) -> None:
        jobout = jobout or {}
        for param in step.step.tool["outputs"]:
            iid = param["id"]
            if iid in jobout:
                self.state[iid] = WorkflowStateItem(param, jobout[iid], status)
            else:
                log.error("[%s] Output is missing expected field %s", step.path, iid)
                status = "permanentFail"
        if status not in ("success", "skipped"):
            if self.status != "permanentFail":
                self.status = status
            log.warning("[%s] completed %s", step.path, status)
        else:
            log.info("[%s] completed %s", step.path, status)
        step.completed = True
        self.running -= 1
        self.advance()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        if any(not s.completed for s in self.steps) and self.status == "success":
            if not self.scheduler.stopping:  # a stopping run already said why
                log.error("[%s] workflow cannot make any more progress", self.path)
            self.status = "permanentFail"
        outputs = None
        try:
            outputs = object_from_state(
                self.state,
                self.workflow.tool["outputs"],
                True,
                self.multiple_inputs,
                "outputSource",
                incomplete=True,
            )
        except WorkflowException as exc:
            log.error("[%s] Cannot collect workflow output: %s", self.path, exc)
            self.status = "permanentFail"
        log.info("[%s] completed %s", self.path, self.status)
        self.callback(outputs, self.status)


class StepRun:
    """One step of a workflow instance: input evaluation, when, scatter and loop."""

    def __init__(self, wf: WorkflowInstance, step: Any) -> None:
        self.wf = wf
        self.step = step
        self.name = shortname(step.id)
        self.path = f"{wf.path}/{self.name}"
        self.submitted = False
        self.completed = False
        tool = step.tool
        self.value_from = {i["id"]: i["valueFrom"] for i in tool["inputs"] if "valueFrom" in i}
        self.load_contents = {i["id"] for i in tool["inputs"] if i.get("loadContents")}
        self.rc = wf.rc.copy()
        self.rc.name = self.name
        self.rc.part_of = f"step {self.name}"

    # -- input evaluation ---------------------------------------------------------
    def post_scatter_eval(self, io: dict[str, Any]) -> dict[str, Any] | None:
        """Apply loadContents, valueFrom and ``when``; None means the step is skipped."""
        rc = self.rc
        shortio = {shortname(k): v for k, v in io.items()}
        fs_access = (rc.make_fs_access or StdFsAccess)("")
        for k, v in io.items():
            if k in self.load_contents and v is not None:
                for val in v if isinstance(v, MutableSequence) else [v]:
                    if val.get("contents") is None:
                        with fs_access.open(val["location"], "rb") as handle:
                            val["contents"] = content_limit_respected_read(handle)
        reqs = self.wf.workflow.requirements
        psio = {}
        for k, v in io.items():
            if k in self.value_from:
                adjustDirObjs(v, functools.partial(get_listing, fs_access, recursive=True))
                psio[k] = _eval(self.value_from[k], shortio, reqs, rc, context=v)
            else:
                psio[k] = v
        if "when" in self.step.tool:
            whenval = _eval(
                self.step.tool["when"], {shortname(k): v for k, v in psio.items()}, reqs, rc
            )
            if whenval is False:
                return None
            if whenval is not True:
                raise WorkflowException("Conditional 'when' must evaluate to 'true' or 'false'")
        return psio

    def submit(self, inputobj: dict[str, Any]) -> None:
        if self.wf.scheduler.stopping:
            self.wf.step_done(self, {}, "permanentFail")
            return
        try:
            if self.value_from and not self.wf.step_input_expr:
                raise WorkflowException(
                    "Workflow step contains valueFrom but StepInputExpressionRequirement not "
                    "in requirements"
                )
            callback = functools.partial(self.wf.step_done, self)
            tool = self.step.tool
            if "scatter" in tool:
                self._scatter(inputobj, callback)
                return
            psio = self.post_scatter_eval(inputobj)
            if psio is None:
                log.info("[%s] will be skipped", self.path)
                self.wf.scheduler.record_skipped(self.path)
                empty: Any = (
                    []
                    if tool.get("loop") is not None
                    and tool.get("outputMethod", "last_iteration") == "all_iterations"
                    else None
                )
                callback({o["id"]: copy.copy(empty) for o in tool["outputs"]}, "skipped")
                return
            if tool.get("loop"):
                LoopRun(self, psio, callback).next_iteration()
            else:
                self.invoke(psio, self.path, callback)
        except WorkflowException as exc:
            log.error("[%s] Cannot make job: %s", self.path, exc)
            self.wf.step_done(self, {}, "permanentFail")

    def invoke(self, io: dict[str, Any], path: str, callback: Callback) -> None:
        """Run the step's process on ``io`` (keyed by step input ids)."""
        step_input = {}
        for inp in self.step.tool["inputs"]:
            if not inp.get("not_connected"):
                step_input[shortname(inp["id"])] = io[inp["id"]]
        outputs = self.step.tool["outputs"]

        def receive(jobout: dict[str, Any] | None, status: str) -> None:
            jobout = jobout or {}
            mapped = {}
            for param in outputs:
                field = shortname(param["id"])
                if field in jobout:
                    mapped[param["id"]] = jobout[field]
                else:
                    status = "permanentFail"
            callback(mapped, status)

        self.wf.scheduler.start_process(self.step.embedded_tool, step_input, self.rc, path, receive)

    # -- scatter ------------------------------------------------------------------
    def _scatter(self, inputobj: dict[str, Any], callback: Callback) -> None:
        tool = self.step.tool
        keys = aslist(tool["scatter"])
        method = tool.get("scatterMethod")
        if method is None and len(keys) != 1:
            raise WorkflowException(
                "Must specify scatterMethod when scattering over multiple inputs"
            )
        for k in keys:
            if not isinstance(inputobj.get(k), MutableSequence):
                raise WorkflowException(
                    f"Scatter input '{shortname(k)}' of step '{self.name}' must be an array, "
                    f"got {type(inputobj.get(k)).__name__}"
                )
        out_ids = [o["id"] for o in tool["outputs"]]
        if method in (None, "dotproduct"):
            length = len(inputobj[keys[0]])
            for k in keys[1:]:
                if len(inputobj[k]) != length:
                    raise WorkflowException(
                        "Length of input arrays must be equal when performing dotproduct scatter."
                    )
            collector = ScatterCollector(out_ids, length, callback)
            for i in range(length):
                sjob = dict(inputobj)
                for k in keys:
                    sjob[k] = inputobj[k][i]
                self._scatter_item(
                    sjob, f"{self.path}[{i}]", functools.partial(collector.receive, i)
                )
            collector.armed()
        elif method == "nested_crossproduct":
            self._nested(inputobj, keys, self.path, callback, out_ids)
        elif method == "flat_crossproduct":
            combos: list[tuple[dict[str, Any], str]] = []
            self._flat(inputobj, keys, self.path, combos)
            collector = ScatterCollector(out_ids, len(combos), callback)
            for i, (sjob, path) in enumerate(combos):
                self._scatter_item(sjob, path, functools.partial(collector.receive, i))
            collector.armed()
        else:
            raise WorkflowException(f"Unknown scatterMethod {method!r}")

    def _nested(
        self,
        job: dict[str, Any],
        keys: list[str],
        path: str,
        callback: Callback,
        out_ids: list[str],
    ) -> None:
        key = keys[0]
        length = len(job[key])
        collector = ScatterCollector(out_ids, length, callback)
        for i in range(length):
            sjob = dict(job)
            sjob[key] = job[key][i]
            item_cb = functools.partial(collector.receive, i)
            if len(keys) == 1:
                self._scatter_item(sjob, f"{path}[{i}]", item_cb)
            else:
                self._nested(sjob, keys[1:], f"{path}[{i}]", item_cb, out_ids)
        collector.armed()

    def _flat(
        self,
        job: dict[str, Any],
        keys: list[str],
        path: str,
        combos: list[tuple[dict[str, Any], str]],
    ) -> None:
        key = keys[0]
        for i in range(len(job[key])):
            sjob = dict(job)
            sjob[key] = job[key][i]
            if len(keys) == 1:
                combos.append((sjob, f"{path}[{i}]"))
            else:
                self._flat(sjob, keys[1:], f"{path}[{i}]", combos)

    def _scatter_item(self, sjob: dict[str, Any], path: str, callback: Callback) -> None:
        def start() -> None:
            if self.wf.scheduler.stopping:
                callback({}, "permanentFail")
                return
            try:
                psio = self.post_scatter_eval(sjob)
            except WorkflowException as exc:
                log.error("[%s] Cannot make scatter job: %s", path, exc)
                callback({}, "permanentFail")
                return
            if psio is None:
                self.wf.scheduler.record_skipped(path)
                callback({}, "skipped")
                return
            self.invoke(psio, path, callback)

        self.wf.scheduler.soon(start)


class ScatterCollector:
    """Gathers the outputs of scatter items into arrays (cwltool's ReceiveScatterOutput)."""

    def __init__(self, out_ids: list[str], total: int, callback: Callback) -> None:
        self.dest: dict[str, list[Any]] = {k: [None] * total for k in out_ids}
        self.total = total
        self.callback = callback
        self.completed: set[int] = set()
        self.status = "success"
        self._armed = False
        self._fired = False

    def receive(self, index: int, jobout: dict[str, Any] | None, status: str) -> None:
        for key, val in (jobout or {}).items():
            if key in self.dest:
                self.dest[key][index] = val
        if status != "success" and self.status != "permanentFail":
            self.status = status
        self.completed.add(index)
        self._maybe_fire()

    def armed(self) -> None:
        """All items were created; fire now if they already all completed (or none)."""
        self._armed = True
        self._maybe_fire()

    def _maybe_fire(self) -> None:
        if self._armed and not self._fired and len(self.completed) == self.total:
            self._fired = True
            self.callback(self.dest, self.status)


class LoopRun:
    """cwltool's ``Loop`` extension: rerun a step while ``when`` holds."""

    def __init__(self, step_run: StepRun, joborder: dict[str, Any], callback: Callback) -> None:
        self.sr = step_run
        self.joborder = joborder
        self.callback = callback
        self.iteration = 0
        self.status = "success"
        self.method = step_run.step.tool.get("outputMethod", "last_iteration")
        self.buffer: dict[str, Any] = {}
        if self.method == "all_iterations":
            self.buffer = {o["id"]: [] for o in step_run.step.tool["outputs"]}

    def next_iteration(self) -> None:
        sr = self.sr
        try:
            whenval = _eval(
                sr.step.tool["when"],
                {shortname(k): v for k, v in self.joborder.items()},
                sr.step.requirements,
                sr.rc,
            )
        except WorkflowException as exc:
            log.error("[%s] loop condition failed: %s", sr.path, exc)
            self.callback(self.buffer, "permanentFail")
            return
        if whenval is True:
            sr.invoke(self.joborder, f"{sr.path}#{self.iteration + 1}", self.receive)
        elif whenval is False:
            self.callback(self.buffer, self.status)
        else:
            log.error("[%s] Conditional 'when' must evaluate to 'true' or 'false'", sr.path)
            self.callback(self.buffer, "permanentFail")

    def receive(self, jobout: dict[str, Any] | None, status: str) -> None:
        sr = self.sr
        self.iteration += 1
        jobout = jobout or {}
        state: dict[str, WorkflowStateItem | None] = {}
        for param in sr.step.tool["outputs"]:
            iid = param["id"]
            if iid in jobout:
                state[iid] = WorkflowStateItem(param, jobout[iid], status)
                if self.method == "all_iterations":
                    self.buffer.setdefault(iid, []).append(jobout[iid])
                else:
                    self.buffer[iid] = jobout[iid]
            else:
                log.error(
                    "[%s] Output of iteration %i is missing expected field %s",
                    sr.path,
                    self.iteration,
                    iid,
                )
                status = "permanentFail"
        if self.status != "permanentFail":
            self.status = status
        if status == "permanentFail":
            self.callback(self.buffer, status)
            return
        try:
            loop = sr.step.tool.get("loop", [])
            new_values = object_from_state(
                state,
                [{**source, "type": "Any"} for source in loop],
                False,
                sr.wf.multiple_inputs,
                "outputSource",
            )
            inputobj = {**self.joborder, **(new_values or {})}
            value_from = {i["id"]: i["valueFrom"] for i in loop if "valueFrom" in i}
            if value_from and not sr.step.get_requirement("StepInputExpressionRequirement")[0]:
                raise WorkflowException(
                    "Workflow step contains valueFrom but StepInputExpressionRequirement not "
                    "in requirements"
                )
            fs_access = (sr.rc.make_fs_access or StdFsAccess)("")
            for k, v in inputobj.items():
                if k in value_from:
                    adjustDirObjs(v, functools.partial(get_listing, fs_access, recursive=True))
                    inputobj[k] = _eval(
                        value_from[k],
                        {shortname(k2): v2 for k2, v2 in self.joborder.items()},
                        sr.step.requirements,
                        sr.rc,
                        context=v,
                    )
            self.joborder = inputobj
        except WorkflowException as exc:
            log.error("[%s] loop iteration %i: %s", sr.path, self.iteration, exc)
            self.callback(self.buffer, "permanentFail")
            return
        sr.wf.scheduler.soon(self.next_iteration)
