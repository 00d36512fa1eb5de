"""Events: detect new data, queue events durably, trigger workflows.

Public interface (growing with issue #5): :class:`Event`, :class:`EventSource`,
:class:`SourceState`, :func:`make_source`, :func:`source_class`.
"""

from __future__ import annotations

from twinengine.core.lazy import lazy_exports

_EXPORTS = {
    "Event": "twinengine.events.base",
    "EventSource": "twinengine.events.base",
    "SourceState": "twinengine.events.base",
    "make_source": "twinengine.events.base",
    "source_class": "twinengine.events.base",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
