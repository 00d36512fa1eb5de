"""Step cache keys: the identity of one tool execution.

A key is the SHA-256 of the tool (its CWL description, with inherited requirements and
hints) and of its input object, where each File or Directory is represented by its
location, size and modification time (and checksum or contents when present). Two
executions with the same key produce the same outputs, so a resumed run — or, with
``--cache``, any run — reuses a succeeded execution instead of running it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

# keyed by the process object itself: an id() may be reused by a later object
_tool_keys: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _default(value: Any) -> Any:
    return str(value)


def tool_fingerprint(process: Any) -> str:
    """Hash of a cwltool process's description and effective requirements (memoised)."""
    key = _tool_keys.get(process)
    if key is None:
        doc = {
            "tool": process.tool,
            "requirements": process.requirements,
            "hints": process.hints,
        }
        key = hashlib.sha256(json.dumps(doc, sort_keys=True, default=_default).encode()).hexdigest()
        _tool_keys[process] = key
    return key


def _file_identity(obj: Mapping[str, Any]) -> dict[str, Any]:
    ident: dict[str, Any] = {"class": obj.get("class"), "location": obj.get("location")}
    for field in ("checksum", "contents", "basename", "secondaryFiles", "listing", "format"):
        if field in obj:
            ident[field] = _normalise(obj[field])
    location = str(obj.get("location") or obj.get("path") or "")
    if location.startswith("file://") or location.startswith("/"):
        path = unquote(location.removeprefix("file://"))
        try:
            st = os.stat(path)
            ident["size"], ident["mtime"] = st.st_size, st.st_mtime_ns
        except OSError:
            ident["missing"] = True
    return ident


def _normalise(value: Any) -> Any:
    if isinstance(value, Mapping):
        if value.get("class") in ("File", "Directory"):
            return _file_identity(value)
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_normalise(v) for v in value]
    return value


def execution_key(process: Any, job_order: Mapping[str, Any]) -> str:
    """The cache key of running ``process`` on ``job_order``."""
    payload = json.dumps(
        {"tool": tool_fingerprint(process), "inputs": _normalise(job_order)},
        sort_keys=True,
        default=_default,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def outputs_exist(outputs: Any) -> bool:
    """True when every local File/Directory referenced in ``outputs`` still exists."""
    if isinstance(outputs, Mapping):
        if outputs.get("class") in ("File", "Directory"):
            location = str(outputs.get("location") or "")
            if location.startswith("file://") and not os.path.exists(
                unquote(location.removeprefix("file://"))
            ):
                return False
        return all(outputs_exist(v) for v in outputs.values())
    if isinstance(outputs, Sequence) and not isinstance(outputs, (str, bytes)):
        return all(outputs_exist(v) for v in outputs)
    return True
