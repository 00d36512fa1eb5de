"""Provenance: W3C PROV for every run — capture, store, lineage queries, exports, tracking.

Public interface (what the CLI calls, and the REST API will):

- :func:`capture` — the PROV document of a run from its records (runs record one
  automatically when they end; this makes it again).
- :class:`ProvStore` — save/load documents, ``lineage(target, direction, depth)``,
  ``runs_using(target)``, ``resolve(target)``.
- :func:`export_run` / :func:`serialize` — PROV-JSON, PROV-N, PROV-XML, Turtle;
  :func:`export_crate` — a Workflow Run RO-Crate (Provenance Run Crate profile).
- :func:`import_file` — a PROV file from any producer, stored in one transaction;
  :func:`parse_document` — PROV text (any of the four formats) as a graph.
- :func:`canonical_graph` / :func:`canonical` / :func:`run_ids` — ids in TwinEngine's
  namespaces in one spelling (compared as IRIs), and the runs a graph names.
- :func:`diff_runs` — which inputs, parameters and tool versions differ between runs.
- :func:`activity` (online) and :func:`record_document` (batch) — tracking from plain
  Python code that is not a CWL tool.

Names are imported on first use: a run records its provenance through the light
modules (``graph``, ``capture``, ``rows``) without importing SQLAlchemy or ``prov``.
"""

from __future__ import annotations

from twinengine.core.lazy import lazy_exports

_EXPORTS = {
    "DIRECTIONS": "twinengine.provenance.store",
    "ProvStore": "twinengine.provenance.store",
    "FORMATS": "twinengine.provenance.convert",
    "serialize": "twinengine.provenance.convert",
    "read_document": "twinengine.provenance.convert",
    "parse_document": "twinengine.provenance.convert",
    "ProvGraph": "twinengine.provenance.graph",
    "canonical": "twinengine.provenance.names",
    "canonical_graph": "twinengine.provenance.names",
    "run_ids": "twinengine.provenance.names",
    "capture_run": "twinengine.provenance.capture",
    "activity": "twinengine.provenance.api",
    "capture": "twinengine.provenance.api",
    "diff_runs": "twinengine.provenance.api",
    "export_crate": "twinengine.provenance.api",
    "export_run": "twinengine.provenance.api",
    "import_file": "twinengine.provenance.api",
    "record_document": "twinengine.provenance.api",
    "run_id_of": "twinengine.provenance.api",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
