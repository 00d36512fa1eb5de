"""Loading and validating CWL documents with cwltool, confined for uploaded documents.

:func:`load_document` loads a document with cwltool (tools built by cwltool's own
``default_make_tool``, TwinEngine's ``twin:`` extensions registered) and turns cwltool's
validation errors into :class:`InvalidDocumentError` messages that keep cwltool's
``file:line:column`` prefixes. Given a :class:`~.fetching.Confinement` (a document
uploaded to the server), everything it fetches stays inside its upload folder or on the
hosts ``fetch_hosts`` allows, its File and Directory literals must name files there or
under ``input_roots`` (never in the server's home), ``dockerLoad``/``dockerImport`` are
refused, and messages name files relative to the folder. cwltool's JSHint check of
expressions (warnings only) is off: it would start ``node`` in this process, outside any
sandbox, and keep it running. cwltool keeps process-wide
state, so loads take turns under a lock — after :func:`~.references.prefetch` fetched,
outside it, whatever the document needs from the network. Runs go through cwltool's
command line instead (:func:`twinengine.workflows.cwlrunner.run_cwl`):
:func:`run_contexts` gives such a run of a registered document the same
confinement (and, for a run the server started, confines what its steps stage).
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from cwltool.argparser import arg_parser
from cwltool.context import LoadingContext, RuntimeContext
from cwltool.errors import WorkflowException
from cwltool.load_tool import fetch_document, make_tool, resolve_and_validate_document
from cwltool.workflow import default_make_tool
from schema_salad.exceptions import ValidationException
from schema_salad.ref_resolver import file_uri

from twinengine.core import InvalidDocumentError, Settings
from twinengine.workflows.extensions import register_schemas
from twinengine.workflows.fetching import (
    Confinement,
    FetchPlan,
    confinement_for,
    scrub,
    url_path,
)
from twinengine.workflows.fileroots import file_objects, registered_root
from twinengine.workflows.references import prefetch
from twinengine.workflows.staging import confined_runtime, server_run_folder

#: seconds one fetch of a document may take when no setting says otherwise (``twin run``)
FETCH_TIMEOUT = 10.0
_HINT = "keep every file the workflow needs inside the upload (a .zip or .tar.gz archive)"
# cwltool keeps its schemas, and this module the "salad" log level, in process-wide
# state: loads in several threads of a server (uploads, validation, the composer's
# templates) go one at a time, so the first parses the CWL schema and the rest reuse it.
# Nothing under this lock waits on the network (see references.prefetch).
_LOAD_LOCK = threading.Lock()


def load_document(path: str, confinement: Confinement | None = None) -> Any:
    """Load and validate the CWL document at ``path``; returns the cwltool process.
    ``confinement``: the document was uploaded to the server (see the module)."""
    if confinement is None and "://" in path:
        uri = path
    else:
        local_part, hash_mark, fragment = path.partition("#")
        local = Path(local_part)
        if not local.exists() or (confinement and confinement.inside(local) is None):
            shown = confinement.shown(file_uri(str(local.absolute()))) if confinement else path
            raise InvalidDocumentError(
                f"{shown}: no such file", hint="check the path of the CWL document"
            )
        uri = file_uri(str(local.absolute())) + hash_mark + fragment
    timeout = confinement.timeout if confinement else FETCH_TIMEOUT
    plan = FetchPlan(confinement, live=confinement is None, timeout=timeout)
    try:
        plan.fetched = prefetch(uri, confinement, timeout)  # the network, outside the lock
        with _LOAD_LOCK:
            process = _load(uri, plan)
        if confinement is not None:
            check_literals(process, confinement)
    except InvalidDocumentError as exc:
        if confinement is None:
            raise
        raise InvalidDocumentError(_scrub(exc.message, confinement), hint=exc.hint) from None
    except ValidationException as exc:  # from prefetch
        message = str(exc).strip()
        shown = _scrub(message, confinement) if confinement else message
        raise InvalidDocumentError(shown, hint=_HINT if confinement else None) from None
    return process


def _scrub(text: str, confinement: Confinement) -> str:
    return scrub(text, confinement.root, confinement.hidden)


def _context(plan: FetchPlan) -> LoadingContext:
    context = LoadingContext()
    context.construct_tool_object = default_make_tool
    context.fetcher_constructor = plan.constructor()
    context.resolver = _no_resolver if plan.confinement else context.resolver
    context.doc_cache = plan.confinement is None
    # JSHint runs in a node child of this process — on a server, outside every sandbox
    # (expressions are evaluated, sandboxed, when a run needs them)
    context.disable_js_validation = True
    return context


def _no_resolver(_loader: Any, _uri: str) -> str | None:
    """cwltool's resolver slot: a confined document names files by path, not by a tool
    registry or a search of the server's folders."""
    return None


def _load(uri: str, plan: FetchPlan) -> Any:
    salad_log = logging.getLogger("salad")
    level = salad_log.level
    salad_log.setLevel(logging.ERROR)
    try:
        register_schemas()
        context, workflowobj, uri = fetch_document(uri, _context(plan))
        context, uri = resolve_and_validate_document(context, workflowobj, uri)
        return make_tool(uri, context)
    except ValidationException as exc:
        raise InvalidDocumentError(str(exc).strip()) from exc
    except (WorkflowException, RuntimeError) as exc:
        raise InvalidDocumentError(f"{_shown(uri)}: {str(exc).strip()}") from exc
    except Exception as exc:  # ruamel YAML errors and other parse failures
        raise InvalidDocumentError(f"{_shown(uri)}: cannot load this CWL file: {exc}") from exc
    finally:
        salad_log.setLevel(level)


def _shown(uri: str) -> str:
    return url_path(uri) if uri.startswith("file:") else uri


# -- what a loaded document names ---------------------------------------------------------
def processes(process: Any) -> list[Any]:
    """``process`` and every process its steps run, at any depth."""
    found, stack, seen = [], [process], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        stack.extend(step.embedded_tool for step in getattr(item, "steps", []) or [])
    return found


def check_literals(process: Any, confinement: Confinement) -> None:
    """Refuse File and Directory literals naming files outside the upload folder and the
    input roots (at any depth, in every process), and image loads from files or URLs."""
    for item in processes(process):
        for where, obj in file_objects(item.tool):
            for key in ("location", "path"):
                value = obj.get(key)
                if value is None or (isinstance(value, str) and value.startswith("_:")):
                    continue
                if not _allowed(value, confinement):
                    named = confinement.shown(value) if isinstance(value, str) else repr(value)
                    raise InvalidDocumentError(
                        f"{where}: a {obj['class']} names {named}: not found or not "
                        "allowed: a document uploaded to the server may name only files "
                        "inside its upload or under the server's input roots",
                        hint=_HINT,
                    )
        for req in _docker_requirements(item):
            for key in ("dockerLoad", "dockerImport"):
                if key in req:
                    raise InvalidDocumentError(
                        f"{key} is not allowed in a document uploaded to the server: it "
                        "makes the server read a file or URL to build an image",
                        hint="use dockerPull with an image the server's engine can pull",
                    )


def _allowed(value: Any, confinement: Confinement) -> bool:
    if not isinstance(value, str) or not value:
        return False
    scheme = urllib.parse.urlsplit(value).scheme
    if scheme not in ("", "file"):
        return False  # http(s) and others: fetched at run time, outside any confinement
    return confinement.data_roots_allow(Path(url_path(value)))


def _docker_requirements(process: Any) -> list[dict[str, Any]]:
    found = []
    for section in ("requirements", "hints"):
        for req in process.tool.get(section) or []:
            if isinstance(req, dict) and str(req.get("class", "")).endswith("DockerRequirement"):
                found.append(req)
    return found


# -- runs ---------------------------------------------------------------------------------
def run_contexts(
    argv: list[str], settings: Settings
) -> tuple[LoadingContext | None, RuntimeContext | None]:
    """cwltool's loading and runtime contexts for the run ``argv`` (cwltool's command
    line); ``(None, None)`` (cwltool's own) unless the document is a registered one.

    A registered document loads confined to its upload folder (its input object the one
    file besides); when the server started the run (its output folder and input object in
    ``$TWIN_HOME/runs/<id>``), its steps also stage and read only what
    :func:`~twinengine.workflows.staging.confined_runtime` allows."""
    try:
        args = arg_parser().parse_args(argv)
    except SystemExit:  # cwltool's own parsing reports the bad command line
        return None, None
    root = registered_root(url_path(args.workflow), settings.home) if args.workflow else None
    if root is None:
        return None, None
    job_files = tuple(Path(j) for j in args.job_order[:1] if j != "-")
    confinement = confinement_for(root, settings, job_files)
    loading = LoadingContext(vars(args))
    loading.singularity, loading.podman = args.singularity, args.podman
    plan = FetchPlan(confinement, live=True, timeout=confinement.timeout)
    loading.fetcher_constructor = plan.constructor()
    loading.resolver = _no_resolver
    loading.doc_cache = False
    job = str(job_files[0]) if job_files else None
    folder = server_run_folder(args.outdir, job, settings)
    runtime = confined_runtime(args, root, folder, settings) if folder else None
    return loading, runtime
