"""TwinEngine in cwltool's executor slot.

cwltool parses the arguments, loads and validates the document and the input object,
and relocates the final outputs; everything in between — scheduling, execution, state,
retries, logs — is done by :class:`TwinJobExecutor` through a
:class:`~twinengine.workflows.session.RunSession`. A sandboxed run (``twin serve``)
evaluates its expressions with :class:`~twinengine.workflows.jsengine.SandboxedNodeEngine`
and never uses cwltool's container runner (``--no-container``).
"""

from __future__ import annotations

import logging
from typing import Any

from cwl_utils.sandboxjs import set_js_engine
from cwltool.errors import UnsupportedRequirement, WorkflowException
from cwltool.executors import JobExecutor

from twinengine.core import Settings, State, get_settings
from twinengine.workflows.jsengine import SandboxedNodeEngine
from twinengine.workflows.loading import run_contexts
from twinengine.workflows.options import RunOptions
from twinengine.workflows.sandbox import open_sandbox, run_sandbox
from twinengine.workflows.session import RunSession

log = logging.getLogger("twinengine.workflows")


def _workflow_path(process: Any) -> str:
    tool_id = str(process.tool.get("id", ""))
    return tool_id.removeprefix("file://").split("#", 1)[0]


class TwinJobExecutor(JobExecutor):
    """cwltool executor slot filled by TwinEngine's scheduler and run records."""

    def __init__(self, options: RunOptions, settings: Settings | None = None) -> None:
        super().__init__()
        self.options = options
        self.settings = settings
        self.session: RunSession | None = None

    @property
    def run_id(self) -> str | None:
        return self.session.run_id if self.session else None

    # cwltool calls execute(); we wrap it to own the run record around it
    def execute(
        self,
        process: Any,
        job_order_object: Any,
        runtime_context: Any,
        logger: logging.Logger = log,
    ) -> tuple[Any, str]:
        self.session = session = RunSession(
            self.options,
            workflow=_workflow_path(process),
            job_order=_strip_private(job_order_object),
            outdir=runtime_context.outdir,
            settings=self.settings,
        )
        session.begin()
        runtime_context.tmp_outdir_prefix = str(session.work_dir) + "/"
        runtime_context.tmpdir_prefix = str(session.tmp_dir) + "/"
        runtime_context.stagedir = str(session.tmp_dir)
        session.keep_work = self.options.cache or not runtime_context.rm_tmpdir
        if self.options.cache and runtime_context.move_outputs == "move":
            runtime_context.move_outputs = "copy"
        runtime_context.rm_tmpdir = False  # we clean the work folder ourselves on success
        try:
            out, status = super().execute(process, job_order_object, runtime_context, logger)
        except UnsupportedRequirement as exc:
            session.fail(State.FAILED, f"unsupported: {exc}", exit_code=33)
            raise
        except WorkflowException as exc:
            session.fail(State.FAILED, str(exc))
            raise
        except BaseException as exc:
            session.fail(State.INTERRUPTED, repr(exc))
            raise
        session.finish(out, status)
        return out, status

    def run_jobs(
        self, process: Any, job_order_object: Any, logger: logging.Logger, runtime_context: Any
    ) -> None:
        assert self.session is not None
        _adopt_cwltool_logging()
        # plain dicts and lists: ruamel's commented containers deep-copy very slowly
        job_order_object = _plain(job_order_object)
        with self.session.executing() as scheduler:
            out, status = scheduler.run(process, job_order_object, runtime_context)
        self.output_callback(out, status)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _strip_private(job_order: Any) -> Any:
    if isinstance(job_order, dict):
        return {k: v for k, v in job_order.items() if not k.startswith(("id", "cwl:", "http"))}
    return job_order


def _adopt_cwltool_logging() -> None:
    """Send TwinEngine's engine log to wherever cwltool's main() sent its own."""
    cwl_logger = logging.getLogger("cwltool")
    log.handlers = list(cwl_logger.handlers)
    log.setLevel(min(cwl_logger.level or logging.INFO, logging.INFO))
    log.propagate = False


def run_with_cwltool(argv: list[str], options: RunOptions, stdout: Any = None) -> int:
    """Run cwltool's command line ``argv`` with TwinEngine executing; returns the exit code."""
    from cwltool.main import main as cwltool_main

    from twinengine.workflows.cwlrunner import container_args
    from twinengine.workflows.extensions import register_schemas

    executor = TwinJobExecutor(options)
    options.sandbox = run_sandbox(options.sandbox)
    if options.sandbox is not None:  # served: expressions' node runs in the sandbox too
        set_js_engine(SandboxedNodeEngine(open_sandbox(options.sandbox)))
    argsl = container_args(argv, confined=options.sandbox is not None)
    # a registered document loads (and its steps stage files) confined to what it may
    # reach, as when it was registered (see twinengine.workflows.loading); None: cwltool's
    loading, runtime = run_contexts(argsl, get_settings())
    return cwltool_main(
        argsl=argsl,
        executor=executor,
        stdout=stdout,
        custom_schema_callback=register_schemas,
        loadingContext=loading,
        runtimeContext=runtime,
    )
