"""Sandboxes: how ``twin serve`` confines every step command and every function call.

A command of a shared server sees only its own working folder (writable), its declared
inputs (read-only), the system and the server's Python environment (read-only); not the
home (``twin.db``, the store, other runs), ``/tmp``, ``/run``, ``/home``, ``/root``, the
server's configuration or environment; no network unless the tool (``NetworkAccess``)
or the function (``network``) asks for it — and then in a network namespace of its own
that reaches neither the host's loopback nor its addresses (:mod:`.network`); it runs as
an unprivileged user of its own (:mod:`.uids`) with bounded processes, memory, file
size and CPU time (:mod:`.limits`). The engine describes each command with a
:class:`SandboxPolicy`; a backend — bubblewrap (:mod:`.bwrap`), podman (:mod:`.podman`)
or ``none`` (:mod:`.none`), chosen by the ``sandbox`` setting (:mod:`.choice`) — turns
it into what to start (:class:`Launch`, started with :meth:`Launch.popen`, its exit code
read back with :meth:`Sandbox.exit_code`). :mod:`.paths` keeps what the run process
itself reads of a step's folder (outputs, staged copies) inside what the step may show
it, :mod:`.globs` expands its output globs only there, and :mod:`.budget` bounds how
much of it the run process reads.
"""

from twinengine.workflows.sandbox.base import Launch, Sandbox
from twinengine.workflows.sandbox.budget import (
    CUSTOM_OUTPUT_LIMIT,
    OutputBudget,
    OutputLimitError,
)
from twinengine.workflows.sandbox.choice import (
    BACKENDS,
    SandboxUnavailableError,
    open_sandbox,
    probe,
    run_sandbox,
    sandbox_env,
    server_sandbox,
)
from twinengine.workflows.sandbox.globs import GlobEscapeError, confined_glob
from twinengine.workflows.sandbox.network import SandboxNetworkError
from twinengine.workflows.sandbox.paths import (
    EscapeError,
    check_inside,
    check_output,
    check_tree,
)
from twinengine.workflows.sandbox.policy import (
    BASE_PATH,
    HostView,
    Mount,
    SandboxPolicy,
    SandboxUser,
    inside,
)
from twinengine.workflows.sandbox.uids import SandboxBusyError

__all__ = [
    "BACKENDS",
    "BASE_PATH",
    "CUSTOM_OUTPUT_LIMIT",
    "EscapeError",
    "GlobEscapeError",
    "HostView",
    "Launch",
    "Mount",
    "OutputBudget",
    "OutputLimitError",
    "Sandbox",
    "SandboxBusyError",
    "SandboxNetworkError",
    "SandboxPolicy",
    "SandboxUnavailableError",
    "SandboxUser",
    "check_inside",
    "check_output",
    "check_tree",
    "confined_glob",
    "inside",
    "open_sandbox",
    "probe",
    "run_sandbox",
    "sandbox_env",
    "server_sandbox",
]
