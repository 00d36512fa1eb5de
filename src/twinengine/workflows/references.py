"""What a CWL document refers to on the network, fetched before the document is loaded.

cwltool loads documents one at a time in a process (see
:mod:`twinengine.workflows.loading`), so nothing slow may happen while it loads one:
:func:`prefetch` runs first, outside that lock. It reads the document and, one after
the other, the documents it names through ``$import``, ``$mixin``, ``$include``,
``$schemas`` and a step's ``run`` (relative to ``$base`` where a document sets one), and
fetches every http(s) one the fetch plan allows, each within the timeout and all within
:data:`TOTAL_TIMEOUTS` timeouts. What it fetched — or the error it got — is what the
loader's fetcher answers for that URL later, without going to the network again. It also
refuses a document whose YAML aliases expand it past :data:`MAX_NODES` values (a few
hundred bytes can otherwise stand for millions of nodes that cwltool would walk).
Files are only read here to find further references; a reference the walk does not see
is refused by a confined fetcher rather than fetched under the lock.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from schema_salad.exceptions import ValidationException

from twinengine.workflows.fetching import Confinement, http_get, read_file, url_path

MAX_DOCUMENTS = 500  #: documents one document may pull in, all references together
MAX_NODES = 250_000  #: mappings, lists and values one document may expand to (YAML aliases)
TOTAL_TIMEOUTS = 3  #: all fetches of one document together take at most this many timeouts
_PARSED = ("$import", "$mixin", "run")
_CWL_TYPES = ["text/plain", "application/json", "text/vnd.yaml", "text/yaml", "text/x-yaml"]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def references(document: Any) -> Iterator[tuple[str, bool]]:
    """``(reference, is a document)`` for every fetch the document asks for."""
    seen: set[int] = set()
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list)):
            if id(item) in seen:
                continue
            seen.add(id(item))
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if key in _PARSED and isinstance(value, str):
                yield value, True
            elif key == "$include" and isinstance(value, str):
                yield value, False
            elif key == "$schemas":
                for schema in value if isinstance(value, list) else [value]:
                    if isinstance(schema, str):
                        yield schema, False
            if isinstance(value, (dict, list)):
                stack.append(value)


def check_size(document: Any, url: str) -> None:
    """Refuse a document whose YAML aliases make it expand past :data:`MAX_NODES` (or
    contain itself): cwltool would walk every copy, under its lock."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, (dict, list)) or (not finished and id(node) in sizes):
            continue
        children = [
            c
            for c in (node.values() if isinstance(node, dict) else node)
            if isinstance(c, (dict, list))
        ]
        if finished:
            visiting.discard(id(node))
            scalars = len(node) - len(children)
            sizes[id(node)] = min(1 + scalars + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
            continue
        if id(node) in visiting:
            raise ValidationException(f"{_name(url)} contains itself through a YAML alias")
        visiting.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in visiting:
                raise ValidationException(f"{_name(url)} contains itself through a YAML alias")
            stack.append((child, False))
    if sizes.get(id(document), 0) > MAX_NODES:
        raise ValidationException(
            f"{_name(url)} expands to more than {MAX_NODES} values (through YAML aliases); refused"
        )


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _text(url: str, confinement: Confinement | None) -> str | None:
    """A local document's text, when this walk may read it (else the loader decides)."""
    path = url_path(url)
    if confinement is not None:
        real = confinement.inside(Path(path))
        if real is None:
            return None
        path = str(real)
    try:
        return read_file(path)
    except (OSError, UnicodeDecodeError, ValidationException):
        return None


def prefetch(
    main: str, confinement: Confinement | None, timeout: float
) -> dict[str, str | ValidationException]:
    """The http(s) URLs the document at ``main`` (a URL) refers to, fetched now: each
    URL's text, or the error that fetching it gave."""
    fetched: dict[str, str | ValidationException] = {}
    deadline = time.monotonic() + TOTAL_TIMEOUTS * timeout
    queue: list[tuple[str, bool]] = [(main, True)]
    seen: set[str] = set()
    while queue:
        url, parse = queue.pop()
        url = urllib.parse.urldefrag(url)[0]
        if url in seen:
            continue
        seen.add(url)
        if len(seen) > MAX_DOCUMENTS:
            raise ValidationException(f"the document refers to more than {MAX_DOCUMENTS} files")
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme in ("http", "https"):
            if confinement is not None and not confinement.host_allowed(url):
                continue  # refused by the loader's fetcher, with its message
            left = deadline - time.monotonic()
            if left <= 0:
                fetched[url] = ValidationException(
                    f"{url}: not fetched (the document's references took more than "
                    f"{TOTAL_TIMEOUTS * timeout:g} s in all)"
                )
                continue
            try:
                text: str | None = http_get(url, min(timeout, left), _CWL_TYPES)
            except ValidationException as exc:
                fetched[url] = exc
                continue
            fetched[url] = text
        elif scheme == "file":
            text = _text(url, confinement)
        else:
            continue
        if not parse or text is None:
            continue
        try:
            document = yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
        except yaml.YAMLError:
            continue  # the loader reports it, with line and column
        check_size(document, url)
        base = url
        if isinstance(document, dict) and isinstance(document.get("$base"), str):
            base = urllib.parse.urljoin(url, document["$base"])
        for reference, is_document in references(document):
            if reference.startswith("_:"):
                continue
            queue.append((urllib.parse.urljoin(base, reference), is_document))
    return fetched
