"""TwinEngine's own commands stay reachable from the jobs it runs.

A CWL step that calls ``twin`` (the packaged AI tools do: ``twin train``, ``twin models
promote`` …) runs with the ``PATH`` of the TwinEngine process. When TwinEngine was
started by the full path of a virtual environment's ``twin`` without activating it, that
``PATH`` lacks the environment's ``bin`` folder. :func:`own_bin_on_path` appends it —
appends, so a ``python3`` or any other program the user's ``PATH`` finds first is still
the one a step gets. Every run calls it as it begins (``RunSession``), whichever
entry point started it: ``twin run``, ``twin-cwl-runner``, a server's run worker.
"""

from __future__ import annotations

import os
import sys


def own_bin_on_path() -> None:
    """Append the folder of this interpreter's scripts to ``PATH`` when missing."""
    folder = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(folder, "twin")):
        return  # not an installation with console scripts beside the interpreter
    parts = os.environ.get("PATH", os.defpath).split(os.pathsep)
    if folder not in parts:
        os.environ["PATH"] = os.pathsep.join([*parts, folder])
