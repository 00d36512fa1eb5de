"""Provenance under hostile input and between projects: parsers that stay linear and
refuse what they cannot bound, and element ids that never reach into another project."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from twinengine.core import open_database
from twinengine.core.errors import InvalidDocumentError, NotFoundError
from twinengine.provenance import ProvGraph, ProvStore, parse_document, serialize
from twinengine.provenance.provn import read_provn

MB = 1_000_000
#: 1 MB inputs that made the old tokenizer quadratic (60 KB of "/* " took 7.5 s)
ADVERSARIAL_PROVN = {
    "quoted comment openers": '"/* ' * (MB // 4),
    "comment openers": "document\n" + "/* " * (MB // 3),
    "unclosed string": 'document entity(ex:a, [ex:b="' + "x" * MB,
    "unclosed string of backslashes": 'document entity(ex:a, [ex:b="' + "\\" * MB,
    "quotes": '"' * MB,
    "unclosed IRIs": "<" * MB,
    "unclosed qualified names": "'" * MB,
    "open parentheses": "document entity(" + "(" * MB,
    "open brackets": "document entity(ex:a, " + "[" * MB,
    "nested bundles": "document " + "bundle ex:b " * (MB // 12),
    "line comments": "// x\n" * (MB // 5),
    "a long number": "document entity(ex:a, [ex:b=" + "9" * MB + "]) endDocument",
}


@pytest.mark.parametrize("case", sorted(ADVERSARIAL_PROVN))
def test_provn_of_a_megabyte_is_parsed_or_refused_in_well_under_a_second(case: str) -> None:
    text = ADVERSARIAL_PROVN[case]
    start = time.perf_counter()
    try:
        read_provn(text)
    except InvalidDocumentError as exc:
        assert "PROV-N" in str(exc)
    took = time.perf_counter() - start
    assert took < 1.0, f"{case}: {took:.2f} s"


def test_provn_names_what_is_never_closed() -> None:
    for text, words in (
        ("document /* no end", "comment is never closed"),
        ('document entity(ex:a, [ex:b="open', 'string ("…") is never closed'),
        ("document prefix ex <http://x", "IRI (<…>) is never closed"),
    ):
        with pytest.raises(
            InvalidDocumentError, match=words.replace("(", r"\(").replace(")", r"\)")
        ):
            read_provn(text)


def test_provn_still_reads_comments_strings_and_bundles() -> None:
    text = """document
      prefix ex <http://example.org/>  // a line comment
      /* a block comment
         over lines */
      entity(ex:a, [prov:label="say \\"hi\\" /* not a comment */", ex:n=3])
      bundle ex:b
        activity(ex:act, -, -)
        used(ex:act, ex:a, -)
      endBundle
    endDocument"""
    graph = read_provn(text)
    assert graph.elements["ex:a"].label == 'say "hi" /* not a comment */'
    assert graph.elements["ex:a"].attributes["ex:n"] == 3
    assert ("ex:act", "ex:b") in graph.members


def test_xml_with_a_dtd_or_entities_is_refused() -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        '<prov:document xmlns:prov="http://www.w3.org/ns/prov#">&lol2;</prov:document>'
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<prov:document xmlns:prov="http://www.w3.org/ns/prov#">&x;</prov:document>'
    )
    for text in (laughs, external, laughs.replace("DOCTYPE", "doctype")):
        with pytest.raises(InvalidDocumentError, match="DTD or entities"):
            parse_document(text, "xml")


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("json", "[" * MB),
        ("json", '{"entity": {"ex:a": {"ex:b": "' + "x" * MB + '"}}}'),
        ("ttl", "@prefix ex: <http://e/> . ex:a ex:b " + "[ ex:c " * (MB // 7)),
        ("ttl", '@prefix ex: <http://e/> . ex:a ex:b "' + "x" * MB),
        ("xml", '<prov:document xmlns:prov="http://www.w3.org/ns/prov#">' + "<a>" * (MB // 3)),
    ],
)
def test_other_formats_bound_deep_or_unclosed_input(fmt: str, text: str) -> None:
    start = time.perf_counter()
    try:
        parse_document(text, fmt)
    except InvalidDocumentError:
        pass
    assert time.perf_counter() - start < 1.0


def _graph(element: str, **attributes: object) -> ProvGraph:
    graph = ProvGraph()
    graph.namespaces["ex"] = "http://example.org/"
    graph.entity(element, "data", **attributes)
    graph.activity("ex:use", "use")
    graph.relate("used", "ex:use", element)
    return graph


def test_element_ids_are_scoped_per_project(tmp_path: Path) -> None:
    store = ProvStore(open_database(f"sqlite:///{tmp_path / 'twin.db'}"))
    try:
        alice = store.save(_graph("ex:data", ex_secret="alice-only"), name="a", project="alpha")
        bob = store.save(_graph("ex:data", ex_note="bob's"), name="b", project="beta")
        # each document shows its own project's element, whoever stored the id first
        assert store.load(alice).elements["ex:data"].attributes == {"ex:secret": "alice-only"}
        assert store.load(bob).elements["ex:data"].attributes == {"ex:note": "bob's"}
        # lineage in one project never walks into the other's documents or elements
        seen = store.lineage("ex:data", "down", projects=["beta"], files=False)
        assert seen.elements["ex:data"].attributes == {"ex:note": "bob's"}
        assert {r.subject for r in seen.relations} == {"ex:use"}
        only_alpha = _graph("ex:alpha-only")
        store.save(only_alpha, name="c", project="alpha")
        with pytest.raises(NotFoundError) as theirs:
            store.lineage("ex:alpha-only", projects=["beta"], files=False)
        with pytest.raises(NotFoundError) as missing:
            store.lineage("ex:nowhere", projects=["beta"], files=False)
        assert str(theirs.value).replace("alpha-only", "X") == str(missing.value).replace(
            "nowhere", "X"
        )
        assert "alice-only" not in serialize(store.load(bob), "provn")
    finally:
        store.close()
