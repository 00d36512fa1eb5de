"""Identifiers as IRIs: every id in TwinEngine's own namespaces is spelled one way.

A PROV identifier is a namespace IRI plus a local part; ``t2:run/R`` with ``t2`` bound to
``https://twinengine.org/prov#``, ``run/R`` under that default namespace, the full IRI in
Turtle (read back as ``ns1:R`` with ``ns1`` bound to ``…prov#run/``) and ``twin:run/R``
all name the same run element. :func:`canonical_graph` rewrites every identifier of a
parsed document — element ids, relation ends, bundle names, and qualified names among
attribute values — whose expanded IRI lies in TwinEngine's namespaces (``twin:``,
``sha256:``) to that one spelling, so every check that compares ids (a run's elements
belong to its project; elements are scoped per project) compares IRIs. A document may
not bind the prefix ``twin`` to another namespace (the ids it wrote would read as
TwinEngine's once stored). :func:`run_ids` lists the runs a graph names.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from twinengine.core.errors import InvalidDocumentError
from twinengine.provenance.graph import NAMESPACES, ProvGraph, Relation

#: TwinEngine's own namespaces, longest IRI first (one may start with another)
OWN = sorted(
    ((p, NAMESPACES[p]) for p in ("twin", "sha256")), key=lambda item: len(item[1]), reverse=True
)
RESERVED = {"twin": NAMESPACES["twin"]}
RUN = "twin:run/"
_PREFIXED = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*):(.+)$", re.DOTALL)


def expand(identifier: str, namespaces: dict[str, str], default: str | None = None) -> str | None:
    """The IRI ``identifier`` stands for: ``PREFIX:LOCAL`` with a declared prefix, or a
    name under the ``default`` namespace; None when it cannot be expanded."""
    found = _PREFIXED.match(identifier)
    if found and found.group(1) in namespaces:
        return str(namespaces[found.group(1)]) + found.group(2)
    if default and not found:
        return default + identifier
    return None


def own_name(iri: str) -> str | None:
    """``twin:…``/``sha256:…`` for an IRI in TwinEngine's namespaces, else None."""
    for prefix, uri in OWN:
        if iri.startswith(uri) and len(iri) > len(uri):
            return f"{prefix}:{iri[len(uri) :]}"
    return None


def canonical(identifier: str, namespaces: dict[str, str], default: str | None = None) -> str:
    """``identifier`` in its one spelling when it lies in TwinEngine's namespaces."""
    iri = expand(identifier, namespaces, default)
    return (own_name(iri) if iri else None) or identifier


def check_prefixes(namespaces: dict[str, str]) -> None:
    """Refuse a document that binds one of TwinEngine's prefixes to another namespace."""
    for prefix, uri in RESERVED.items():
        bound = namespaces.get(prefix)
        if bound is not None and str(bound) != uri:
            raise InvalidDocumentError(
                f"the document binds the prefix {prefix!r} to {str(bound)[:200]!r}; "
                f"{prefix!r} is TwinEngine's namespace {uri}",
                hint=f"use another prefix for that namespace, or bind {prefix!r} to {uri}",
            )


def canonical_graph(graph: ProvGraph, default: str | None = None) -> ProvGraph:
    """``graph`` with every identifier in TwinEngine's namespaces in its one spelling
    (``default``: the document's default namespace, if it declares one)."""
    check_prefixes(graph.namespaces)
    spaces = {k: str(v) for k, v in graph.namespaces.items() if k != "default"}
    default = default or graph.namespaces.get("default")

    def name(identifier: str) -> str:
        return canonical(identifier, spaces, default)

    def values(value: Any) -> Any:  # qualified names among values: prefixed ones only
        if isinstance(value, list):
            return [values(v) for v in value]
        if isinstance(value, str) and _PREFIXED.match(value):
            return canonical(value, spaces)
        return value

    elements = {}
    for element in graph.elements.values():
        attributes = {k: values(v) for k, v in element.attributes.items()}
        elements.setdefault(
            name(element.id), replace(element, id=name(element.id), attributes=attributes)
        )
    graph.elements = elements
    graph.members = {(name(e), name(b) if b else b) for e, b in graph.members}
    graph.relations = [
        Relation(
            r.kind,
            name(r.subject),
            name(r.object),
            {k: values(v) for k, v in r.attributes.items()},
            name(r.bundle) if r.bundle else r.bundle,
        )
        for r in graph.relations
    ]
    return graph


def run_ids(graph: ProvGraph) -> set[str]:
    """The runs whose elements a (canonical) graph names anywhere: element ids, relation
    ends and values, attribute values."""
    named: set[str] = set()

    def note(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                note(item)
        elif isinstance(value, str) and value.startswith(RUN):
            named.add(value.removeprefix(RUN).split("/", 1)[0])

    for element in graph.elements.values():
        note(element.id)
        note(list(element.attributes.values()))
    for relation in graph.relations:
        note([relation.subject, relation.object, *relation.attributes.values()])
    return named
