"""TwinEngine's CWL extensions, registered with cwltool.

``twin:Retry`` (namespace ``https://twinengine.org/cwl#``) is declared as a proper
ProcessRequirement in a Schema Salad extension, next to cwltool's own extensions
(``cwltool:Loop``, ``cwltool:Secrets`` …), so documents using it validate without
warnings, and it is added to cwltool's supported requirements so it may appear under
``hints`` or ``requirements``. :func:`register_schemas` does both; it is the one call
anything that loads CWL makes first.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from twinengine.workflows.retry import RETRY_CLASS

TWIN_EXTENSIONS = """
- name: twin:Retry
  type: record
  inVocab: false
  extends: cwl:ProcessRequirement
  doc: |
    Retry a failed tool execution. maxAttempts counts all attempts (1 = no retry);
    the n-th retry waits backoff * backoffFactor^(n-1) seconds.
  fields:
    class:
      type: string
      doc: "Always 'Retry'"
      jsonldPredicate:
        "_id": "@type"
        "_type": "@vocab"
    maxAttempts:
      type: int?
      doc: Total number of attempts, at least 1 (default 1).
    backoff:
      type: ["null", float, int]
      doc: Seconds to wait before the first retry (default 1).
    backoffFactor:
      type: ["null", float, int]
      doc: Multiplier of the wait for each further retry (default 2).
"""


def _with_twin(text: str) -> str:
    text = text.replace(
        "$namespaces:\n", '$namespaces:\n  twin: "https://twinengine.org/cwl#"\n', 1
    )
    return text.rstrip() + "\n" + TWIN_EXTENSIONS


_CWLTOOL_NS = "http://commonwl.org/cwltool"


@cache
def _schemas() -> tuple[tuple[str, str], ...]:
    """(CWL version, extension schema text) pairs: cwltool's extensions plus TwinEngine's."""
    package = files("cwltool")
    ext = {
        name: _with_twin(package.joinpath(f"extensions{suffix}.yml").read_text("utf-8"))
        for name, suffix in (
            ("1.0", ""),
            ("1.1", "-v1.1"),
            ("1.2", "-v1.2"),
            ("1.3", "-v1.3"),
        )
    }
    pairs = [("v1.0", ext["1.0"]), ("v1.1", ext["1.1"]), ("v1.2", ext["1.2"])]
    pairs.append(("v1.3.0-dev1", ext["1.3"]))
    pairs += [(dev, ext["1.1"]) for dev in ("v1.2.0-dev1", "v1.2.0-dev2", "v1.2.0-dev3")]
    return tuple(pairs)


def register_schemas() -> None:
    """cwltool ``custom_schema_callback``: cwltool's extensions plus TwinEngine's.

    Registering a schema makes cwltool drop the one it parsed (a second or more of
    Schema Salad work), so a version already registered with the same text is left
    alone: loading many documents in one process parses the CWL schema once."""
    from cwltool import process
    from cwltool.process import use_custom_schema

    if RETRY_CLASS not in process.supportedProcessRequirements:
        process.supportedProcessRequirements.append(RETRY_CLASS)
    for version, text in _schemas():
        if process.custom_schemas.get(version) != (_CWLTOOL_NS, text):
            use_custom_schema(version, _CWLTOOL_NS, text)
