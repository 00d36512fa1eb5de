"""Reading PROV-N (the W3C PROV notation), which the ``prov`` library writes but cannot read.

A small tokenizer and a recursive reader for documents as producers write them:
``document … endDocument`` with ``prefix``/``default`` declarations, the element and
relation expressions of PROV-DM (optional identifiers before ``;``, ``-`` for absent
arguments, unquoted times, attribute lists in ``[ … ]`` with ``"text" %% xsd:type``,
``'qualified:name'`` and bare numbers), and ``bundle … endBundle``. Errors name the line.
The tokenizer reads lazily and in time linear in the text, whatever it is given (an
unclosed comment, string or IRI is an error found in one pass).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

from twinengine.core.errors import InvalidDocumentError
from twinengine.provenance.graph import Element, ProvGraph, Relation

# one token at a position; comments are found with str.find (a regex that looks for the end
# of a comment at every "/*" would scan the rest of the text each time: quadratic)
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<uri><[^>]*>)
  | (?P<string>"[^"\\]*(?:(?:\\"|\\(?!"))[^"\\]*)*")
  | (?P<qname>'[^']*')
  | (?P<punct>%%|[(),;\[\]=])
  | (?P<bare>[^\s(),;\[\]=<>"']+)
    """,
    re.VERBOSE,
)
_OPENERS = {"<": "an IRI (<…>)", '"': 'a string ("…")', "'": "a qualified name ('…')"}

#: expression -> (relation kind or element kind, positions: subject, object, then extras)
_ELEMENTS = {"entity", "activity", "agent"}
_RELATIONS: dict[str, tuple[str, list[str]]] = {
    "used": ("used", ["subject", "object", "prov:time"]),
    "wasGeneratedBy": ("wasGeneratedBy", ["subject", "object", "prov:time"]),
    "wasInvalidatedBy": ("wasInvalidatedBy", ["subject", "object", "prov:time"]),
    "wasDerivedFrom": (
        "wasDerivedFrom",
        ["subject", "object", "prov:activity", "prov:generation", "prov:usage"],
    ),
    "wasRevisionOf": ("wasDerivedFrom", ["subject", "object", "prov:activity"]),
    "wasQuotedFrom": ("wasDerivedFrom", ["subject", "object", "prov:activity"]),
    "hadPrimarySource": ("wasDerivedFrom", ["subject", "object", "prov:activity"]),
    "wasInformedBy": ("wasInformedBy", ["subject", "object"]),
    "wasStartedBy": ("wasStartedBy", ["subject", "prov:trigger", "object", "prov:time"]),
    "wasEndedBy": ("wasEndedBy", ["subject", "prov:trigger", "object", "prov:time"]),
    "wasAssociatedWith": ("wasAssociatedWith", ["subject", "object", "prov:plan"]),
    "wasAttributedTo": ("wasAttributedTo", ["subject", "object"]),
    "actedOnBehalfOf": ("actedOnBehalfOf", ["subject", "object", "prov:activity"]),
    "wasInfluencedBy": ("wasInfluencedBy", ["subject", "object"]),
    "specializationOf": ("specializationOf", ["subject", "object"]),
    "alternateOf": ("alternateOf", ["subject", "object"]),
    "hadMember": ("hadMember", ["subject", "object"]),
}
_DERIVATION_TYPES = {
    "wasRevisionOf": "prov:Revision",
    "wasQuotedFrom": "prov:Quotation",
    "hadPrimarySource": "prov:PrimarySource",
}
_NUMERIC = {"xsd:int": int, "xsd:integer": int, "xsd:long": int, "xsd:float": float,
            "xsd:double": float, "xsd:decimal": float}  # fmt: skip


def _tokens(text: str) -> Iterator[tuple[str, str, int]]:
    """``(kind, text, line)`` of each token, read lazily, in time linear in the text."""
    pos, line, size = 0, 1, len(text)
    while pos < size:
        if text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                raise InvalidDocumentError(f"PROV-N line {line}: a /* comment is never closed")
            line += text.count("\n", pos, end)
            pos = end + 2
            continue
        if text.startswith("//", pos):
            end = text.find("\n", pos)
            pos = size if end < 0 else end
            continue
        match = _TOKEN.match(text, pos)
        if match is None:
            what = _OPENERS.get(text[pos])
            if what:
                raise InvalidDocumentError(f"PROV-N line {line}: {what} is never closed")
            raise InvalidDocumentError(f"PROV-N line {line}: unexpected {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group()
        if kind != "space":
            yield kind, value, line
        line += value.count("\n")
        pos = match.end()


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.next: tuple[str, str, int] | None = None
        self.graph = ProvGraph()

    def peek(self) -> tuple[str, str, int]:
        if self.next is None:
            self.next = next(self.tokens, ("end", "", -1))
        return self.next

    def take(self, expected: str | None = None) -> str:
        kind, value, line = self.peek()
        if kind == "end" or (expected is not None and value != expected):
            raise InvalidDocumentError(
                f"PROV-N line {line}: expected {expected or 'more'}, found {value or 'the end'!r}"
            )
        self.next = None
        return value

    def read(self) -> ProvGraph:
        self.take("document")
        self.body(None, "endDocument")
        return self.graph

    def body(self, bundle: str | None, end: str) -> None:
        while True:
            word = self.take()
            if word == end:
                return
            if word == "prefix":
                prefix = self.take()
                self.graph.namespaces[prefix] = self.take().strip("<>")
            elif word == "default":
                self.graph.namespaces["default"] = self.take().strip("<>")
            elif word == "bundle" and bundle is None:
                name = self.take()
                self.graph.entity(name, None, prov_type="prov:Bundle")
                self.body(name, "endBundle")
            else:
                self.expression(word, bundle)

    def expression(self, name: str, bundle: str | None) -> None:
        line = self.peek()[2]
        if name not in _ELEMENTS and name not in _RELATIONS:
            raise InvalidDocumentError(f"PROV-N line {line}: unknown expression {name!r}")
        self.take("(")
        args: list[str | None] = []
        attrs: dict[str, Any] = {}
        if self.peek()[1] != ")":
            first = self.take()
            if self.peek()[1] == ";":  # an identifier for the relation itself
                self.take(";")
                first = self.take()
            args.append(None if first == "-" else first)
            while self.peek()[1] == ",":
                self.take(",")
                if self.peek()[1] == "[":
                    attrs = self.attributes()
                    break
                value = self.take()
                args.append(None if value == "-" else value)
        self.take(")")
        if name in _ELEMENTS:
            self.element(name, args, attrs, bundle, line)
        else:
            self.relation(name, args, attrs, bundle, line)

    def attributes(self) -> dict[str, Any]:
        self.take("[")
        attrs: dict[str, Any] = {}
        while self.peek()[1] != "]":
            key = self.take()
            self.take("=")
            value = self.value()
            if key in attrs:
                previous = attrs[key]
                attrs[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                attrs[key] = value
            if self.peek()[1] == ",":
                self.take(",")
        self.take("]")
        return attrs

    def value(self) -> Any:
        kind, raw, _ = self.peek()
        self.take()
        if kind == "string":
            # the prov library escapes only quotes (\" for "), so that is all we undo
            text = raw[1:-1].replace('\\"', '"')
            if self.peek()[1] == "%%":
                self.take("%%")
                datatype = self.take()
                convert = _NUMERIC.get(datatype)
                if convert is not None:
                    return convert(text)
                if datatype == "xsd:boolean":
                    return text == "true"
            return text
        if kind == "qname":
            return raw[1:-1]
        for convert in (int, float):
            try:
                return convert(raw)
            except ValueError:
                pass
        return raw

    def element(self, kind: str, args: list, attrs: dict, bundle: str | None, line: int) -> None:
        if not args or args[0] is None:
            raise InvalidDocumentError(f"PROV-N line {line}: {kind} without an identifier")
        label = attrs.pop("prov:label", None)
        start = end = None
        if kind == "activity":
            start, end = (_time(a) for a in [*args[1:3], None, None][:2])
        self.graph.add(
            Element(args[0], kind, str(label) if label is not None else None, attrs, start, end),
            bundle,
        )

    def relation(self, name: str, args: list, attrs: dict, bundle: str | None, line: int) -> None:
        kind, slots = _RELATIONS[name]
        named = dict(zip(slots, args, strict=False))
        subject = named.pop("subject", None)
        obj = named.pop("object", None) or named.get("prov:trigger")
        if subject is None or obj is None:
            raise InvalidDocumentError(f"PROV-N line {line}: {name} needs two arguments")
        for key, value in named.items():
            if value is not None:
                attrs.setdefault(key, value)
        if name in _DERIVATION_TYPES:
            attrs.setdefault("prov:type", _DERIVATION_TYPES[name])
        self.graph.relations.append(Relation(kind, subject, obj, attrs, bundle))


def _time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidDocumentError(f"PROV-N: {value!r} is not a time") from None


def read_provn(text: str) -> ProvGraph:
    """A graph from PROV-N text (InvalidDocumentError naming the line otherwise)."""
    graph = _Reader(text).read()
    graph.check(kinds=False)
    return graph
