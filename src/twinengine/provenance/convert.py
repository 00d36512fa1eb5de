"""Between :class:`ProvGraph` and the ``prov`` library: every export and every import.

Exports are serialised by ``prov`` itself (PROV-JSON, PROV-N, PROV-XML, and PROV-O as
Turtle through rdflib), so any PROV tool reads them; :func:`read_document` parses a file
in any of those formats from any producer and turns it into a graph, bundles included
(PROV-N through :mod:`twinengine.provenance.provn`, as ``prov`` cannot read it), with
every id in TwinEngine's namespaces spelled one way (:mod:`twinengine.provenance.names`).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

from prov import model as pm

from twinengine.core.errors import InvalidDocumentError, StateError
from twinengine.provenance.graph import UNDECLARED, Element, ProvGraph, Relation, prefix_of
from twinengine.provenance.names import canonical_graph
from twinengine.provenance.provn import read_provn

#: prov record class -> (our relation kind, formal attribute of the subject, of the object)
_RELATION_TYPES: dict[type, tuple[str, str, tuple[str, ...]]] = {
    pm.ProvUsage: ("used", "prov:activity", ("prov:entity",)),
    pm.ProvGeneration: ("wasGeneratedBy", "prov:entity", ("prov:activity",)),
    pm.ProvDerivation: ("wasDerivedFrom", "prov:generatedEntity", ("prov:usedEntity",)),
    pm.ProvCommunication: ("wasInformedBy", "prov:informed", ("prov:informant",)),
    pm.ProvStart: ("wasStartedBy", "prov:activity", ("prov:starter", "prov:trigger")),
    pm.ProvEnd: ("wasEndedBy", "prov:activity", ("prov:ender", "prov:trigger")),
    pm.ProvInvalidation: ("wasInvalidatedBy", "prov:entity", ("prov:activity",)),
    pm.ProvAssociation: ("wasAssociatedWith", "prov:activity", ("prov:agent", "prov:plan")),
    pm.ProvAttribution: ("wasAttributedTo", "prov:entity", ("prov:agent",)),
    pm.ProvDelegation: ("actedOnBehalfOf", "prov:delegate", ("prov:responsible",)),
    pm.ProvInfluence: ("wasInfluencedBy", "prov:influencee", ("prov:influencer",)),
    pm.ProvSpecialization: ("specializationOf", "prov:specificEntity", ("prov:generalEntity",)),
    pm.ProvAlternate: ("alternateOf", "prov:alternate1", ("prov:alternate2",)),
    pm.ProvMembership: ("hadMember", "prov:collection", ("prov:entity",)),
}
_ELEMENT_TYPES = {pm.ProvEntity: "entity", pm.ProvActivity: "activity", pm.ProvAgent: "agent"}
FORMATS = {"json": "json", "provn": "provn", "xml": "xml", "ttl": "rdf"}
_FORMAT_NAMES = {"json": "PROV-JSON", "provn": "PROV-N", "xml": "PROV-XML", "ttl": "PROV-O Turtle"}
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


# -- export -------------------------------------------------------------------------
def _value(doc: pm.ProvBundle, key: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_value(doc, key, v) for v in value]
    if key in ("prov:type", "prov:role") and isinstance(value, str) and ":" in value:
        prefix = value.split(":", 1)[0]
        known = {ns.prefix for ns in doc.get_registered_namespaces()} | {"prov", "xsd"}
        if prefix in known:
            return doc.valid_qualified_name(value)
    return value


def _attrs(doc: pm.ProvBundle, attributes: dict[str, Any], label: str | None = None) -> list:
    pairs: list[tuple[str, Any]] = []
    if label is not None:
        pairs.append(("prov:label", label))
    for key, value in attributes.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, _value(doc, key, item)))
    return pairs


def to_prov(graph: ProvGraph) -> pm.ProvDocument:
    """A ``prov`` library document with the graph's elements, relations and bundles."""
    doc = pm.ProvDocument()
    for prefix, uri in graph.namespaces.items():
        doc.add_namespace(prefix, uri)
    unwritable = sorted(i for i in graph.elements if prefix_of(i) is None)
    if unwritable:  # stored before identifiers were checked
        raise StateError(
            f"element id {unwritable[0]!r} cannot be written in PROV (not PREFIX:NAME)",
            hint="delete that element's document or import it again with valid ids",
        )
    used = {prefix_of(i) for i in graph.elements}
    used |= {prefix_of(i) for r in graph.relations for i in (r.subject, r.object) if i}
    for prefix in sorted(p for p in used if p and p not in graph.namespaces):
        if prefix not in ("prov", "xsd", "xsi"):  # prefixes used but never declared
            doc.add_namespace(prefix, UNDECLARED.format(prefix=prefix))
    bundles: dict[str, pm.ProvBundle] = {"": doc}
    for _, name in sorted(graph.members):
        if name and name not in bundles:
            bundles[name] = doc.bundle(name)
    placed: set[str] = set()
    for element_id, name in sorted(graph.members, key=lambda m: m[1]):
        if element_id in placed and not name:
            continue
        placed.add(element_id)
        _add_element(bundles[name], graph, element_id)
    for element_id in graph.elements:  # referenced by relations but in no member list
        if element_id not in placed:
            _add_element(doc, graph, element_id)
    for rel in graph.relations:
        _add_relation(bundles.get(rel.bundle or "", doc), rel)
    return doc


def _add_element(target: pm.ProvBundle, graph: ProvGraph, element_id: str) -> None:
    e = graph.elements[element_id]
    attrs = _attrs(target, e.attributes, e.label)
    if e.kind == "activity":
        target.activity(e.id, e.start_time, e.end_time, attrs)
    elif e.kind == "agent":
        target.agent(e.id, attrs)
    else:
        target.entity(e.id, attrs)


def _add_relation(target: pm.ProvBundle, rel: Relation) -> None:
    extra = dict(rel.attributes)
    plan = extra.pop("prov:plan", None)
    activity = extra.pop("prov:activity", None)
    time = extra.pop("prov:time", None)
    other = _attrs(target, extra) or None
    kind, s, o = rel.kind, rel.subject, rel.object
    if kind == "used":
        target.used(s, o, time, other_attributes=other)
    elif kind == "wasGeneratedBy":
        target.wasGeneratedBy(s, o, time, other_attributes=other)
    elif kind == "wasDerivedFrom":
        target.wasDerivedFrom(s, o, activity, other_attributes=other)
    elif kind == "wasStartedBy":
        target.wasStartedBy(s, None, o, time, other_attributes=other)
    elif kind == "wasEndedBy":
        target.wasEndedBy(s, None, o, time, other_attributes=other)
    elif kind == "wasAssociatedWith":
        target.wasAssociatedWith(s, o, plan, other_attributes=other)
    elif kind == "wasInvalidatedBy":
        target.wasInvalidatedBy(s, o, time, other_attributes=other)
    else:
        method = getattr(target, kind)
        method(s, o, other_attributes=other) if other else method(s, o)


def serialize(graph: ProvGraph, fmt: str) -> str:
    """The graph as PROV-JSON (``json``), PROV-N (``provn``), PROV-XML (``xml``) or
    PROV-O Turtle (``ttl``)."""
    if fmt not in FORMATS:
        raise InvalidDocumentError(
            f"unknown PROV format {fmt!r}", hint="choose one of: " + ", ".join(FORMATS)
        )
    doc = to_prov(graph)
    if fmt == "ttl":
        return doc.serialize(format="rdf", rdf_format="turtle")
    return (
        doc.serialize(format=FORMATS[fmt], indent=2)
        if fmt == "json"
        else doc.serialize(format=FORMATS[fmt])
    )


# -- import -------------------------------------------------------------------------
def guess_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("json", "jsonld"):
        return "json"
    if suffix in ("provn", "pn"):
        return "provn"
    if suffix in ("xml", "provx"):
        return "xml"
    if suffix in ("ttl", "rdf", "nt", "n3", "trig"):
        return "ttl"
    head = text.lstrip()[:200]
    if head.startswith("{"):
        return "json"
    if head.startswith("<"):
        return "xml"
    if head.startswith("document"):
        return "provn"
    return "ttl"


def read_document(path: Path, fmt: str | None = None) -> ProvGraph:
    """Parse a PROV file (PROV-JSON, PROV-N, PROV-XML or Turtle) into a graph."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidDocumentError(f"cannot read {path}: {exc}") from None
    fmt = fmt or guess_format(path, text)
    trig = fmt == "ttl" and path.suffix == ".trig"
    return parse_document(text, fmt, str(path), trig=trig)


def parse_document(
    text: str, fmt: str, name: str = "the document", trig: bool = False
) -> ProvGraph:
    """Parse PROV text in ``fmt`` (json, provn, xml, ttl) into a graph; ``name`` is what
    error messages call it. PROV-XML with a DTD or entity declaration is refused (an
    entity can expand a small file into gigabytes or read a server file); Turtle is read
    as Turtle (or TriG), never as RDF/XML."""
    if fmt not in FORMATS:
        raise InvalidDocumentError(
            f"unknown PROV format {fmt!r}", hint="choose one of: " + ", ".join(FORMATS)
        )
    if fmt == "xml" and _DECLARATION.search(text):
        raise InvalidDocumentError(
            f"{name} declares a DTD or entities (<!DOCTYPE …>/<!ENTITY …>), which is refused",
            hint="PROV-XML needs neither: remove the declaration",
        )
    try:
        if fmt == "ttl":
            doc = pm.ProvDocument.deserialize(
                content=text, format="rdf", rdf_format="trig" if trig else "turtle"
            )
        elif fmt == "provn":  # the prov library writes PROV-N but cannot read it
            return canonical_graph(read_provn(text))
        else:
            doc = pm.ProvDocument.deserialize(source=io.StringIO(text), format=FORMATS[fmt])
    except InvalidDocumentError:
        raise
    except Exception as exc:  # the prov library raises many kinds for malformed input
        reason = str(exc)[:500] or type(exc).__name__
        what = _FORMAT_NAMES[fmt]
        raise InvalidDocumentError(f"{name} is not a valid {what} document: {reason}") from None
    return from_prov(doc)


def from_prov(doc: pm.ProvDocument) -> ProvGraph:
    graph = ProvGraph()
    for ns in doc.get_registered_namespaces():
        graph.namespaces[ns.prefix] = ns.uri
    _collect(graph, doc, None)
    for bundle in doc.bundles:
        for ns in bundle.get_registered_namespaces():
            graph.namespaces.setdefault(ns.prefix, ns.uri)
        name = str(bundle.identifier)
        graph.entity(name, None, prov_type="prov:Bundle")
        _collect(graph, bundle, name)
    graph.check(kinds=False)
    default = doc.get_default_namespace()
    return canonical_graph(graph, default.uri if default is not None else None)


def _plain(value: Any) -> Any:
    if isinstance(value, (pm.QualifiedName, pm.Identifier)):
        return str(value)
    if isinstance(value, pm.Literal):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _extra(record: pm.ProvRecord) -> tuple[str | None, dict[str, Any]]:
    label = None
    attrs: dict[str, Any] = {}
    for key, value in record.extra_attributes:
        name = str(key)
        if name == "prov:label" and label is None:
            label = str(_plain(value))
            continue
        item = _plain(value)
        if name in attrs:
            previous = attrs[name]
            attrs[name] = [*previous, item] if isinstance(previous, list) else [previous, item]
        else:
            attrs[name] = item
    return label, attrs


def _collect(graph: ProvGraph, bundle: pm.ProvBundle, name: str | None) -> None:
    for record in bundle.get_records():
        kind = _ELEMENT_TYPES.get(type(record))
        if kind is not None:
            label, attrs = _extra(record)
            start = end = None
            if kind == "activity":
                start, end = record.get_startTime(), record.get_endTime()
            graph.add(Element(str(record.identifier), kind, label, attrs, start, end), name)
            continue
        spec = _RELATION_TYPES.get(type(record))
        if spec is None:
            raise InvalidDocumentError(f"unsupported PROV record {record.get_type()}: {record}")
        kind, subject_key, object_keys = spec
        formal = {str(k): v for k, v in record.formal_attributes if v is not None}
        subject = formal.get(subject_key)
        obj = next((formal[k] for k in object_keys if k in formal), None)
        if subject is None or obj is None:
            raise InvalidDocumentError(f"{record.get_type()} without {subject_key}: {record}")
        _, attrs = _extra(record)
        for key, value in formal.items():
            if key not in (subject_key, object_keys[0]):
                attrs[key] = _plain(value)
        graph.relations.append(Relation(kind, str(subject), str(obj), attrs, name))
