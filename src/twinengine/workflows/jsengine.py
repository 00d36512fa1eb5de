"""cwltool's JavaScript engine for sandboxed runs: ``node`` in the run's sandbox.

cwltool evaluates CWL expressions (``$(...)``, ``${...}``) in a long-lived ``node``
child of the run process (cwl_utils' ``NodeJSEngine``), isolated only by node's ``vm``
module — which is not a security boundary (``this.constructor.constructor('return
process')()`` reaches node's own ``process``, its files and its children). On a run of
``twin serve`` the engine is :class:`SandboxedNodeEngine`, installed with
cwl_utils' hook (``set_js_engine``): the same protocol, but ``node`` starts in the run's
sandbox with nothing mounted but the system, an empty ``/tmp``, no network and an
environment of ``PATH`` alone, as the sandbox user — an expression that escapes ``vm``
finds nothing of the server.
"""

from __future__ import annotations

import shutil
import subprocess

from cwl_utils.errors import JavascriptException
from cwl_utils.sandboxjs import NodeJSEngine

from twinengine.workflows.sandbox import BASE_PATH, Sandbox, SandboxPolicy


class SandboxedNodeEngine(NodeJSEngine):
    """cwl_utils' node engine, with every ``node`` process started in ``sandbox``."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox

    def new_js_proc(
        self, js_text: str, force_docker_pull: bool = False, container_engine: str = "docker"
    ) -> subprocess.Popen[str]:
        node = shutil.which("nodejs") or shutil.which("node")
        if node is None:
            raise JavascriptException(
                "CWL expressions need Node.js (nodejs or node on PATH); it is not installed"
            )
        launch = self.sandbox.launch(
            [node, "--eval", js_text], {"PATH": BASE_PATH}, SandboxPolicy(cwd="/tmp")
        )
        process = launch.popen(
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            start_new_session=True,
        )
        self.processes_to_kill.append(process)
        return process
