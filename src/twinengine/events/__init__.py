"""Events: detect new data, queue events durably, trigger workflows.

Public interface:

- :class:`Event`, :class:`EventSource`, :class:`SourceState`, :func:`make_source`,
  :func:`source_class` — sources (entry-point group ``twinengine.event_sources``).
- :class:`EventQueue` — the durable queue (events, deliveries, retries, dead letters).
- :class:`DefinitionStore` — sources and triggers as stored definitions;
  :func:`parse_trigger`, :func:`parse_condition`, :func:`ks_test`, :func:`psi`.
- :class:`EventEngine` — sources → queue → triggers → runs, inside ``twin serve``.
- :class:`FunctionRegistry`, :class:`FunctionService`, :func:`run_function` — serverless
  functions.
"""

from __future__ import annotations

from twinengine.core.lazy import lazy_exports

_EXPORTS = {
    "Event": "twinengine.events.base",
    "EventSource": "twinengine.events.base",
    "SourceState": "twinengine.events.base",
    "make_source": "twinengine.events.base",
    "source_class": "twinengine.events.base",
    "EventQueue": "twinengine.events.queue",
    "DefinitionStore": "twinengine.events.store",
    "parse_trigger": "twinengine.events.triggers",
    "parse_condition": "twinengine.events.conditions",
    "ks_test": "twinengine.events.conditions",
    "psi": "twinengine.events.conditions",
    "EventEngine": "twinengine.events.engine",
    "FunctionRegistry": "twinengine.events.functions",
    "FunctionService": "twinengine.events.function_service",
    "run_function": "twinengine.events.function_service",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
