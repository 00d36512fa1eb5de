"""An in-memory PROV graph: elements (entities, activities, agents) and relations.

:class:`ProvGraph` is what capture builds, what the store saves and loads, and what the
exporters turn into a ``prov`` library document. Identifiers are qualified names
(``prefix:local``). Files are identified by content — ``sha256:<hex>`` — so the same
bytes produced by one run and read by another are one entity, and lineage crosses runs.
Relations are stored as "``subject`` depends on ``object``" (``used``: activity on
entity, ``wasGeneratedBy``: entity on activity, …), which makes upstream lineage a walk
from subject to object and downstream the reverse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twinengine.core.errors import InvalidInputError
from twinengine.core.hashing import file_sha256

__all__ = ["Element", "ProvGraph", "Relation", "file_sha256", "regular_file_sha256", "value_id"]

NAMESPACES = {
    "twin": "https://twinengine.org/prov#",
    "sha256": "https://twinengine.org/id/sha256/",
    "cwl": "https://w3id.org/cwl/cwl#",
}

#: relation kind -> (subject kind, object kind); the subject depends on the object
RELATIONS = {
    "used": ("activity", "entity"),
    "wasGeneratedBy": ("entity", "activity"),
    "wasDerivedFrom": ("entity", "entity"),
    "wasInformedBy": ("activity", "activity"),
    # the starter/ender should be an activity; producers (cwltool) also name an agent
    "wasStartedBy": ("activity", None),
    "wasEndedBy": ("activity", None),
    "wasInvalidatedBy": ("entity", "activity"),
    "wasAssociatedWith": ("activity", "agent"),
    "wasAttributedTo": ("entity", "agent"),
    "actedOnBehalfOf": ("agent", "agent"),
    "wasInfluencedBy": (None, None),
    "specializationOf": ("entity", "entity"),
    "alternateOf": ("entity", "entity"),
    "hadMember": ("entity", "entity"),
}
KINDS = ("entity", "activity", "agent")


@dataclass
class Element:
    id: str
    kind: str  # entity, activity, agent
    label: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None


@dataclass
class Relation:
    kind: str
    subject: str
    object: str
    attributes: dict[str, Any] = field(default_factory=dict)
    bundle: str | None = None


@dataclass
class ProvGraph:
    """Elements by id, relations in order, and which element sits in which bundle."""

    namespaces: dict[str, str] = field(default_factory=lambda: dict(NAMESPACES))
    elements: dict[str, Element] = field(default_factory=dict)
    relations: list[Relation] = field(default_factory=list)
    members: set[tuple[str, str]] = field(default_factory=set)  # (element, bundle or "")

    def add(self, element: Element, bundle: str | None = None) -> str:
        """Add (or, for a known id, keep the first) element; returns its id."""
        self.elements.setdefault(element.id, element)
        self.members.add((element.id, bundle or ""))
        return element.id

    def entity(
        self, id: str, label: str | None = None, bundle: str | None = None, **attrs: Any
    ) -> str:
        return self.add(Element(id, "entity", label, _clean(attrs)), bundle)

    def activity(
        self,
        id: str,
        label: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        bundle: str | None = None,
        **attrs: Any,
    ) -> str:
        return self.add(Element(id, "activity", label, _clean(attrs), start, end), bundle)

    def agent(
        self, id: str, label: str | None = None, bundle: str | None = None, **attrs: Any
    ) -> str:
        return self.add(Element(id, "agent", label, _clean(attrs)), bundle)

    def relate(
        self, kind: str, subject: str, object: str, bundle: str | None = None, **attrs: Any
    ) -> None:
        if kind not in RELATIONS:
            raise ValueError(f"unknown PROV relation {kind!r}")
        self.relations.append(Relation(kind, subject, object, _clean(attrs), bundle))

    def rewritten(self, rewrite: Callable[[Any], Any]) -> ProvGraph:
        """A copy whose labels and attribute values went through ``rewrite`` (ids, kinds
        and times kept): what a server shows in place of its own paths."""
        copy = ProvGraph(dict(self.namespaces), {}, [], set(self.members))
        for e in self.elements.values():
            label = rewrite(e.label) if e.label is not None else None
            copy.elements[e.id] = Element(
                e.id, e.kind, label, rewrite(e.attributes), e.start_time, e.end_time
            )
        copy.relations = [
            Relation(r.kind, r.subject, r.object, rewrite(r.attributes), r.bundle)
            for r in self.relations
        ]
        return copy

    def check(self, kinds: bool = True) -> None:
        """Every relation names elements of this graph (of the kinds PROV expects, unless
        ``kinds`` is False: producers such as cwltool declare one id as both an agent and
        an activity, and the graph keeps one kind per id)."""
        from twinengine.core.errors import InvalidDocumentError

        for rel in self.relations:
            expected = RELATIONS[rel.kind]
            for end, want in zip((rel.subject, rel.object), expected, strict=True):
                element = self.elements.get(end)
                if element is None:
                    raise InvalidDocumentError(
                        f"{rel.kind}({rel.subject}, {rel.object}): {end!r} is not declared "
                        "in the document"
                    )
                if kinds and want is not None and element.kind != want:
                    raise InvalidDocumentError(
                        f"{rel.kind}({rel.subject}, {rel.object}): {end!r} is a "
                        f"{element.kind}, {rel.kind} needs a {want} there"
                    )


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    """Python keyword names (``prov_type``) to qualified names (``prov:type``); no Nones."""
    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        out[key.replace("_", ":", 1) if ":" not in key else key] = value
    return out


def regular_file_sha256(path: str) -> str | None:
    """SHA-256 of the regular file at ``path``; None when it is missing, unreadable or not
    a regular file (a named pipe a step left would block whoever reads it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        digest = hashlib.sha256()
        try:
            while block := handle.read(1 << 20):
                digest.update(block)
        except OSError:
            return None
    return digest.hexdigest()


def value_id(value: Any) -> str:
    """The id of a parameter value: the same value is the same entity everywhere."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "twin:value-" + hashlib.sha256(text.encode()).hexdigest()[:32]


_QNAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*):(\S+)$")
#: where a prefix used but never declared is put (so every serialisation can write it)
UNDECLARED = "https://twinengine.org/ns/{prefix}#"


def check_identifier(identifier: str, what: str = "id") -> str:
    """``identifier`` when it is ``PREFIX:NAME`` without spaces or control characters —
    what every PROV serialisation can write; else a clear error. A prefix the document
    does not declare is declared as :data:`UNDECLARED` when it is written."""
    if _QNAME.match(identifier) is None:
        raise InvalidInputError(
            f"{what} {identifier!r} is not PREFIX:NAME (e.g. ex:sensor-7)",
            hint="a prefix is letters, digits, '_', '.' or '-'; the name has no spaces",
        )
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in identifier):
        raise InvalidInputError(f"{what} {identifier!r} contains control characters")
    return identifier


def prefix_of(identifier: str) -> str | None:
    found = _QNAME.match(identifier)
    return found.group(1) if found else None
