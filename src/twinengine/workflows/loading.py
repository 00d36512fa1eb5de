"""Loading and validating CWL documents with cwltool.

:func:`load_document` loads a document with cwltool (tools built by cwltool's own
``default_make_tool``, TwinEngine's ``twin:`` extensions registered) and turns cwltool's
validation errors into :class:`InvalidDocumentError` messages that keep cwltool's
``file:line:column`` prefixes. Runs go through cwltool's command line instead
(:func:`twinengine.workflows.cwlrunner.run_cwl`), which registers the same extensions.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from cwltool.context import LoadingContext
from cwltool.errors import WorkflowException
from cwltool.workflow import default_make_tool
from schema_salad.exceptions import ValidationException

from twinengine.core import InvalidDocumentError
from twinengine.workflows.extensions import register_schemas

# cwltool keeps its schemas, and this module the "salad" log level, in process-wide
# state: loads in several threads of a server (uploads, validation, the composer's
# templates) go one at a time, so the first parses the CWL schema and the rest reuse it
_LOAD_LOCK = threading.Lock()


def load_document(path: str) -> Any:
    """Load and validate the CWL document at ``path``; returns the cwltool process."""
    with _LOAD_LOCK:
        return _load(path)


def _load(path: str) -> Any:
    from cwltool.load_tool import fetch_document, make_tool, resolve_and_validate_document

    if "://" not in path and not os.path.exists(path.split("#", 1)[0]):
        raise InvalidDocumentError(
            f"{path}: no such file", hint="check the path of the CWL document"
        )
    salad_log = logging.getLogger("salad")
    level = salad_log.level
    salad_log.setLevel(logging.ERROR)
    try:
        register_schemas()
        context = LoadingContext()
        context.construct_tool_object = default_make_tool
        context, workflowobj, uri = fetch_document(path, context)
        context, uri = resolve_and_validate_document(context, workflowobj, uri)
        return make_tool(uri, context)
    except ValidationException as exc:
        raise InvalidDocumentError(str(exc).strip()) from exc
    except (WorkflowException, RuntimeError) as exc:
        raise InvalidDocumentError(f"{path}: {str(exc).strip()}") from exc
    except Exception as exc:  # ruamel YAML errors and other parse failures
        raise InvalidDocumentError(f"{path}: cannot load this CWL file: {exc}") from exc
    finally:
        salad_log.setLevel(level)
