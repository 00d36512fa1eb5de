"""TwinEngine as a CWL runner: cwltool's command line, TwinEngine's execution.

``twin-cwl-runner`` accepts every argument ``cwltool`` does (so ``cwltest --tool
twin-cwl-runner`` works) plus a few of its own (``--executor``, ``--cores``, ``--cache``,
``--retries``, ``--resume``, ``--no-native``). :func:`run_cwl` first offers the run to
the native path (:mod:`twinengine.workflows.native`), which loads and runs the documents
it fully understands without importing cwltool; every other document goes through
cwltool's loader with TwinEngine executing (:mod:`twinengine.workflows.cwlexec`).

This module imports neither cwltool nor SQLAlchemy: a run that the native path takes
never pays for them.
"""

from __future__ import annotations

import sys
from typing import Any

from twinengine.core.errors import TwinError
from twinengine.workflows.containers import working_container_engine
from twinengine.workflows.executors import check_executor
from twinengine.workflows.options import RunOptions, split_twin_options

__all__ = ["RunOptions", "container_args", "main", "run_cwl", "split_twin_options"]


def container_args(argv: list[str], confined: bool = False) -> list[str]:
    """Add ``--no-container`` (or the engine's flag) when no container engine works here;
    ``confined`` (a sandboxed run): always ``--no-container`` — cwltool's container runner
    is not the sandbox, and a DockerRequirement hint runs in the sandbox without one."""
    if "--no-container" in argv or "--version" in argv:
        return argv
    if confined:
        return ["--no-container", *argv]
    engine = working_container_engine()
    if engine is None:
        return ["--no-container", *argv]
    if engine == "podman" and "--podman" not in argv:
        return ["--podman", *argv]
    if engine == "singularity" and "--singularity" not in argv:
        return ["--singularity", *argv]
    return argv


def run_cwl(argv: list[str], options: RunOptions, stdout: Any = None) -> int:
    """Run cwltool-style ``argv`` on TwinEngine; returns the exit code (as cwltool's)."""
    from twinengine.core import get_settings

    options.argv = list(argv)
    check_executor(options.executor or get_settings().executor)  # fail before loading
    if options.native:
        from twinengine.workflows.native import try_native

        code = try_native(argv, options, stdout)
        if code is not None:
            return code
    from twinengine.workflows.cwlexec import run_with_cwltool

    options.loader = "cwltool"
    return run_with_cwltool(argv, options, stdout)


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
