"""The CWL tool descriptions of the AI commands, shipped in the package.

``train``, ``tune``, ``register``, ``promote`` (the deploy step), ``predict`` and
``serve`` wrap the ``twin`` commands of the same names, so a twin's workflow can run
preprocess → train → validate → register → deploy as CWL steps (``twin`` on ``PATH``,
the MLflow store named by each step's ``tracking_uri`` input). :func:`tool_path` gives
one file's path, :func:`copy_tools` copies them beside a workflow
(``twin models tools DIR``).
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from twinengine.core.errors import NotFoundError

TOOLS = ("train", "tune", "register", "promote", "predict", "serve")


def _folder() -> Path:
    return Path(str(files("twinengine.ai") / "cwl"))


def tool_path(name: str) -> Path:
    """The packaged ``NAME.cwl``."""
    path = _folder() / f"{name}.cwl"
    if name not in TOOLS or not path.is_file():
        raise NotFoundError(f"no AI tool {name!r}", hint=f"tools: {', '.join(TOOLS)}")
    return path


def copy_tools(target: str | Path) -> list[Path]:
    """Copy every tool description into ``target`` (created); the copied paths."""
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(tool_path(name), folder)) for name in TOOLS]
