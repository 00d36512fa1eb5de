"""TwinEngine as a CWL runner: cwltool's command line, TwinEngine's execution.

``twin-cwl-runner`` accepts every argument ``cwltool`` does (so ``cwltest --tool
twin-cwl-runner`` works) plus a few of its own (``--executor``, ``--cores``, ``--cache``,
``--retries``, ``--resume``). cwltool parses the arguments, loads and validates the
document and the input object, and relocates the final outputs; everything in between
— scheduling, execution, state, retries, logs — is done by :class:`TwinJobExecutor`,
which plugs into cwltool's executor slot and records the run in the metadata database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cwltool.errors import UnsupportedRequirement, WorkflowException
from cwltool.executors import JobExecutor

from twinengine.core import (
    ConfigError,
    Settings,
    State,
    StateError,
    TwinError,
    get_database,
    get_settings,
    get_store,
    new_id,
)
from twinengine.workflows.containers import working_container_engine
from twinengine.workflows.executors import check_executor, make_executor
from twinengine.workflows.records import RunRecorder, state_of
from twinengine.workflows.scheduler import Listener, Scheduler

log = logging.getLogger("twinengine.workflows")


@dataclass
class RunOptions:
    """TwinEngine-specific options of one run."""

    executor: str | None = None
    cores: int | None = None
    ram_mb: int | None = None
    cache: bool = False
    retries: int = 1
    resume: str | None = None  # run id to continue
    run_id: str | None = None  # id to give a new run
    name: str | None = None
    dask_address: str | None = None
    argv: list[str] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)
    on_run: Callable[[str], None] | None = None  # told the run id as soon as it exists

    def record(self) -> dict[str, Any]:
        """What the run record keeps of these options: enough to resume the run."""
        return {
            "argv": self.argv,
            "cwd": os.getcwd(),
            "executor": self.executor,
            "cores": self.cores,
            "ram_mb": self.ram_mb,
            "cache": self.cache,
            "retries": self.retries,
            "dask_address": self.dask_address,
        }

    @classmethod
    def for_resume(cls, run: dict[str, Any]) -> tuple[list[str], str, RunOptions]:
        """``(argv, cwd, options)`` that continue the stored ``run`` (see :meth:`record`)."""
        stored = run["options"] or {}
        if not stored.get("argv"):
            raise StateError(f"run {run['id']} has no stored command line; it cannot be resumed")
        options = cls(
            executor=stored.get("executor"),
            cores=stored.get("cores"),
            ram_mb=stored.get("ram_mb"),
            cache=bool(stored.get("cache")),
            retries=stored.get("retries") or 1,
            dask_address=stored.get("dask_address"),
            resume=run["id"],
        )
        return list(stored["argv"]), stored.get("cwd") or os.getcwd(), options


def _file_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def _workflow_path(process: Any) -> str:
    tool_id = str(process.tool.get("id", ""))
    return tool_id.removeprefix("file://").split("#", 1)[0]


class TwinJobExecutor(JobExecutor):
    """cwltool executor slot filled by TwinEngine's scheduler and run records."""

    def __init__(self, options: RunOptions, settings: Settings | None = None) -> None:
        super().__init__()
        self.options = options
        self.settings = settings or get_settings()
        self.run_id: str | None = None
        self.recorder: RunRecorder | None = None
        self.scheduler: Scheduler | None = None

    # cwltool calls execute(); we wrap it to own the run record around it
    def execute(
        self,
        process: Any,
        job_order_object: Any,
        runtime_context: Any,
        logger: logging.Logger = log,
    ) -> tuple[Any, str]:
        settings = self.settings
        db = get_database(settings)
        opts = self.options
        resumed = opts.resume is not None
        workflow = _workflow_path(process)
        job_order = _strip_private(job_order_object)
        self.run_id = run_id = opts.resume or opts.run_id or new_id()
        run_dir = settings.runs_dir / run_id
        if resumed:
            self.recorder = RunRecorder(db, run_id)
            self.recorder.adopt_existing_steps()
        else:
            self.recorder = RunRecorder.create_run(
                db,
                run_id=run_id,
                name=opts.name or os.path.basename(workflow) or "run",
                workflow=workflow,
                workflow_hash=_file_hash(workflow),
                job_order=job_order,
                outdir=os.path.abspath(runtime_context.outdir) if runtime_context.outdir else None,
                work_dir=str(run_dir),
                executor=opts.executor or settings.executor,
                options=opts.record(),
            )
        if opts.on_run:
            opts.on_run(run_id)
        (run_dir / "work").mkdir(parents=True, exist_ok=True)
        (run_dir / "tmp").mkdir(parents=True, exist_ok=True)
        runtime_context.tmp_outdir_prefix = str(run_dir / "work") + "/"
        runtime_context.tmpdir_prefix = str(run_dir / "tmp") + "/"
        runtime_context.stagedir = str(run_dir / "tmp")
        keep_work = opts.cache or not runtime_context.rm_tmpdir
        if opts.cache and runtime_context.move_outputs == "move":
            runtime_context.move_outputs = "copy"
        runtime_context.rm_tmpdir = False  # we clean the work folder ourselves on success
        self.recorder.run_started(job_order, resumed)
        try:
            out, status = super().execute(process, job_order_object, runtime_context, logger)
        except UnsupportedRequirement as exc:
            self.recorder.run_finished(State.FAILED, error=f"unsupported: {exc}", exit_code=33)
            raise
        except WorkflowException as exc:
            self.recorder.run_finished(State.FAILED, error=str(exc), exit_code=1)
            raise
        except BaseException as exc:
            self.recorder.run_finished(State.INTERRUPTED, error=repr(exc), exit_code=1)
            raise
        state = state_of(status)
        self.recorder.run_finished(
            state,
            outputs=out,
            error=None if state == State.SUCCEEDED else f"final process status is {status}",
            exit_code=0 if state == State.SUCCEEDED else 1,
        )
        if state == State.SUCCEEDED and not keep_work:
            _remove_in_background([run_dir / "work", run_dir / "tmp"])
        return out, status

    def run_jobs(
        self, process: Any, job_order_object: Any, logger: logging.Logger, runtime_context: Any
    ) -> None:
        settings = self.settings
        opts = self.options
        _adopt_cwltool_logging()
        cores = opts.cores or settings.cores
        ram_mb = opts.ram_mb if opts.ram_mb is not None else settings.ram_mb
        name = opts.executor or settings.executor
        extra: dict[str, Any] = {}
        if name == "dask":
            extra["address"] = opts.dask_address or settings.dask_address
        executor = make_executor(name, cores=cores, ram_mb=ram_mb, **extra)
        assert self.recorder is not None
        reuse = self.recorder.reusable_steps() if opts.resume else {}
        self.scheduler = scheduler = Scheduler(
            executor,
            cores=cores,
            ram_mb=ram_mb,
            recorder=self.recorder,
            store=get_store(settings),
            reuse=reuse,
            use_cache=opts.cache,
            default_attempts=max(1, opts.retries),
            listeners=opts.listeners,
        )
        # plain dicts and lists: ruamel's commented containers deep-copy very slowly
        job_order_object = _plain(job_order_object)
        restore = _install_signal_handlers(scheduler)
        executor.start()
        try:
            out, status = scheduler.run(process, job_order_object, runtime_context)
        finally:
            executor.close()
            restore()
        self.output_callback(out, status)


def _remove_in_background(folders: list[Any]) -> None:
    """Delete intermediate folders without making the user wait for thousands of rmdirs."""
    existing = [str(f) for f in folders if os.path.exists(f)]
    if not existing:
        return
    try:
        subprocess.Popen(
            ["rm", "-rf", "--", *existing],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        for folder in existing:
            shutil.rmtree(folder, ignore_errors=True)


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


def _install_signal_handlers(scheduler: Scheduler) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum: int, _frame: Any) -> None:
        scheduler.request_cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


# -- command line -----------------------------------------------------------------
_VALUE_OPTIONS = {
    "--executor": "executor",
    "--cores": "cores",
    "--ram-mb": "ram_mb",
    "--retries": "retries",
    "--resume": "resume",
    "--run-id": "run_id",
    "--run-name": "name",
    "--dask-address": "dask_address",
}
_INT_OPTIONS = {"cores", "ram_mb", "retries"}


def split_twin_options(argv: list[str]) -> tuple[RunOptions, list[str]]:
    """Take TwinEngine's own options out of a cwltool-style argument list."""
    opts = RunOptions()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, _, value = arg.partition("=")
        if name in _VALUE_OPTIONS:
            if not value:
                if i + 1 >= len(argv):
                    raise ConfigError(f"option {name} needs a value")
                value = argv[i + 1]
                i += 1
            attr = _VALUE_OPTIONS[name]
            if attr in _INT_OPTIONS:
                try:
                    setattr(opts, attr, int(value))
                except ValueError:
                    raise ConfigError(
                        f"option {name} needs a whole number, got {value!r}"
                    ) from None
            else:
                setattr(opts, attr, value)
        elif arg == "--cache":
            opts.cache = True
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def container_args(argv: list[str]) -> list[str]:
    """Add ``--no-container`` (or the engine's flag) when no container engine works here."""
    if "--no-container" in argv or "--version" in argv:
        return argv
    engine = working_container_engine()
    if engine is None:
        return ["--no-container", *argv]
    if engine == "podman" and "--podman" not in argv:
        return ["--podman", *argv]
    if engine == "singularity" and "--singularity" not in argv:
        return ["--singularity", *argv]
    return argv


def run_cwl(argv: list[str], options: RunOptions, stdout: Any = None) -> int:
    """Run cwltool's command line ``argv`` with TwinEngine executing; returns the exit code."""
    from cwltool.main import main as cwltool_main

    from twinengine.workflows.extensions import register_schemas

    options.argv = list(argv)
    executor = TwinJobExecutor(options)
    check_executor(options.executor or executor.settings.executor)  # fail before loading
    argv = container_args(argv)
    return cwltool_main(
        argsl=argv,
        executor=executor,
        stdout=stdout,
        custom_schema_callback=register_schemas,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``twin-cwl-runner``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" in argv:
        from twinengine import __version__

        print(f"twin-cwl-runner {__version__}")
        return 0
    try:
        options, rest = split_twin_options(argv)
        return run_cwl(rest, options)
    except TwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
