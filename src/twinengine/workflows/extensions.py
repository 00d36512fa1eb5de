"""TwinEngine's CWL extensions, registered with cwltool.

``twin:Retry`` (namespace ``https://twinengine.org/cwl#``) is declared as a proper
ProcessRequirement in a Schema Salad extension, next to cwltool's own extensions
(``cwltool:Loop``, ``cwltool:Secrets`` …), so documents using it validate without
warnings, and it is added to cwltool's supported requirements so it may appear under
``hints`` or ``requirements``. :func:`register_schemas` does both; it is the one call
anything that loads CWL makes first.
"""

from __future__ import annotations

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


def register_schemas() -> None:
    """cwltool ``custom_schema_callback``: cwltool's extensions plus TwinEngine's."""
    from cwltool import process
    from cwltool.process import use_custom_schema

    if RETRY_CLASS not in process.supportedProcessRequirements:
        process.supportedProcessRequirements.append(RETRY_CLASS)

    package = files("cwltool")
    ext10 = package.joinpath("extensions.yml").read_text("utf-8")
    ext11 = package.joinpath("extensions-v1.1.yml").read_text("utf-8")
    ext12 = package.joinpath("extensions-v1.2.yml").read_text("utf-8")
    ext13 = package.joinpath("extensions-v1.3.yml").read_text("utf-8")
    use_custom_schema("v1.0", "http://commonwl.org/cwltool", _with_twin(ext10))
    use_custom_schema("v1.1", "http://commonwl.org/cwltool", _with_twin(ext11))
    use_custom_schema("v1.2", "http://commonwl.org/cwltool", _with_twin(ext12))
    use_custom_schema("v1.3.0-dev1", "http://commonwl.org/cwltool", _with_twin(ext13))
    for dev in ("v1.2.0-dev1", "v1.2.0-dev2", "v1.2.0-dev3"):
        use_custom_schema(dev, "http://commonwl.org/cwltool", _with_twin(ext11))
