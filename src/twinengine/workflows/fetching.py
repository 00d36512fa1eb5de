"""What loading a CWL document may read: files, and URLs with a timeout.

Loading a CWL document makes schema-salad and cwltool fetch whatever it names —
``$import``, ``$include``, ``$mixin``, ``$schemas``, a step's ``run`` — through a
:class:`~schema_salad.fetcher.Fetcher`. :class:`DocumentFetcher` is that fetcher for
TwinEngine. For a document uploaded to the server, a :class:`Confinement` limits it: files
only inside the uploaded folder (symbolic links resolved, regular files only), URLs only
on the hosts ``fetch_hosts`` allows, and the same "not found or not allowed" answer
whether a refused file exists or not, naming it relative to the folder (never a server
path). Without a confinement (``twin run`` and ``twin validate`` of one's own files) it
reads any file and URL, as cwltool does — but every URL is fetched with a timeout and a
size limit. URLs fetched beforehand (see :mod:`twinengine.workflows.references`) are
served from memory, so a loader that runs under a lock never waits on the network.
"""

from __future__ import annotations

import os
import re
import stat
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from schema_salad.exceptions import ValidationException
from schema_salad.fetcher import DefaultFetcher

from twinengine.core import Settings
from twinengine.workflows.fileroots import Roots, server_private

#: largest document (or included text) read from a file or URL
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
OUTSIDE = "(a file outside the uploaded folder)"
_FILE_URL = re.compile(r"file://[^\s'\"`,;:)\]]+")
_LOADER_ID = re.compile(r"\(\d{6,}\) ")  # schema-salad's "(loader id) " before a message
_NOT_ALLOWED = (
    "not found or not allowed: a document uploaded to the server may refer only to files "
    "inside its own upload (no absolute paths, '..' out of it, links or file: URLs)"
)


@dataclass(frozen=True)
class Confinement:
    """What a document uploaded to the server may reach.

    ``root``: the folder its files were unpacked into; ``hosts``: the http(s) hosts it
    may fetch from (``host`` or ``host:port``); ``timeout``: seconds per URL;
    ``data_roots``: server folders its File and Directory literals may name besides
    ``root`` (``input_roots``) unless they lie in one of the ``hidden`` places (the
    server's own files: its home, secret key, database …); ``files``: single extra files
    it may read (a run's input object)."""

    root: Path
    hosts: frozenset[str] = frozenset()
    timeout: float = 10.0
    data_roots: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    files: frozenset[Path] = frozenset()

    def inside(self, path: Path) -> Path | None:
        """``path`` with links resolved when it lies in ``root`` (or is an extra file)."""
        try:
            real = path.resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        if real.is_relative_to(self.root) or real in self.files:
            return real
        return None

    def data_roots_allow(self, path: Path) -> bool:
        """Whether a File or Directory literal may name ``path`` (links resolved): inside
        ``root``, or under ``data_roots`` but not in a ``hidden`` folder."""
        roots = Roots.of(own=(self.root,), shared=self.data_roots, hidden=self.hidden)
        return roots.allows(path) is not None

    def host_allowed(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return host in self.hosts or f"{host}:{port}" in self.hosts

    def shown(self, url: str) -> str:
        """How a message names ``url``: relative to ``root``, or not at all."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https"):
            return url
        path = Path(url_path(url))
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return OUTSIDE


def scrub(text: str, root: Path, hidden: tuple[Path, ...] = ()) -> str:
    """``text`` with paths in ``root`` made relative to it (also where schema-salad wrote
    them relative to the working folder) and every other local path (a ``file:`` URL, or
    a path in one of the ``hidden`` folders) left out."""
    prefixes = [root.as_uri() + "/", f"{root}/"]
    try:
        relative = os.path.relpath(root)
    except ValueError:
        relative = "."
    if not relative.startswith("."):  # schema-salad's form when the server runs above it
        prefixes.append(relative + "/")
    for prefix in prefixes:
        text = text.replace(prefix, "")
    text = _LOADER_ID.sub("", _FILE_URL.sub(OUTSIDE, text))
    for folder in hidden:
        text = re.sub(re.escape(str(folder)) + r"(?:/[^\s'\"`,;:)\]]*)?", OUTSIDE, text)
    return text


def confinement_for(root: Path, settings: Settings, files: tuple[Path, ...] = ()) -> Confinement:
    """The confinement of a document uploaded to the server and unpacked into ``root``."""
    return Confinement(
        root=root.resolve(),
        hosts=frozenset(h.lower() for h in settings.fetch_hosts),
        timeout=float(settings.fetch_timeout),
        data_roots=settings.input_roots,
        hidden=server_private(settings),
        files=frozenset(p.resolve() for p in files),
    )


def url_path(url: str) -> str:
    """The local path of a ``file:`` URL (or of a plain path)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return urllib.request.url2pathname(parts.path)
    return url


def refused(confinement: Confinement, url: str) -> ValidationException:
    return ValidationException(f"{confinement.shown(url)}: {_NOT_ALLOWED}")


def read_file(path: str) -> str:
    """A regular file's text (refused past :data:`MAX_DOCUMENT_BYTES`)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValidationException(f"{os.path.basename(path)} is not a regular file")
        data = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValidationException(
            f"{os.path.basename(path)} is larger than {MAX_DOCUMENT_BYTES} bytes"
        )
    return data.decode("utf-8")


def http_get(url: str, timeout: float, accept: list[str] | None = None) -> str:
    """The text at ``url``, within ``timeout`` seconds for each step and in all, no
    redirects, at most :data:`MAX_DOCUMENT_BYTES`."""
    headers = {"Accept": ", ".join(accept) + ", */*;q=0.8"} if accept else {}
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise ValidationException(f"{url}: the server answered {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ValidationException(
                        f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes; refused"
                    )
            return body.decode(response.encoding or "utf-8", errors="replace")
    except httpx.TimeoutException:
        raise ValidationException(f"{url}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise ValidationException(f"{url}: cannot be fetched ({type(exc).__name__})") from None


def http_exists(url: str, timeout: float) -> bool:
    """Whether ``url`` answers a HEAD request with 2xx within ``timeout`` seconds."""
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            return client.head(url).is_success
    except httpx.HTTPError:
        return False


@dataclass
class FetchPlan:
    """How a :class:`DocumentFetcher` fetches: its confinement (None: anything), URL texts
    fetched beforehand, and whether it may still go to the network itself."""

    confinement: Confinement | None = None
    fetched: Mapping[str, str | ValidationException] = field(default_factory=dict)
    live: bool = True
    timeout: float = 10.0

    def constructor(self) -> Any:
        """A schema-salad ``fetcher_constructor`` (``(cache, session) -> Fetcher``)."""

        def make(cache: Any, _session: Any) -> DocumentFetcher:
            return DocumentFetcher(cache, self)

        return make


class DocumentFetcher(DefaultFetcher):
    """schema-salad's fetcher, confined (see the module) and with timeouts."""

    def __init__(self, cache: Any, plan: FetchPlan) -> None:
        super().__init__(cache, None)
        self.plan = plan

    def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
        url = urllib.parse.urldefrag(url)[0]
        scheme = urllib.parse.urlsplit(url).scheme
        confinement = self.plan.confinement
        if scheme == "file":
            path = url_path(url)
            if confinement is not None:
                real = confinement.inside(Path(path))
                if real is None or not real.is_file():
                    raise refused(confinement, url)
                path = str(real)
            try:
                return read_file(path)
            except (OSError, UnicodeDecodeError) as exc:
                if confinement is not None:
                    raise refused(confinement, url) from None
                raise ValidationException(f"cannot read {url}: {exc}") from None
        if scheme in ("http", "https"):
            if url in self.plan.fetched:
                text = self.plan.fetched[url]
                if isinstance(text, ValidationException):
                    raise ValidationException(str(text))
                return text
            if confinement is not None and not confinement.host_allowed(url):
                raise ValidationException(
                    f"{url}: fetching it is not allowed (the server's fetch_hosts setting "
                    "lists the hosts documents may fetch from)"
                )
            if not self.plan.live:
                raise ValidationException(f"{url} was not fetched before loading; refused")
            return http_get(url, self.plan.timeout, content_types)
        if confinement is not None:
            raise refused(confinement, url)
        raise ValidationException(f"unsupported scheme in URL {url}")

    def check_exists(self, url: str) -> bool:
        url = urllib.parse.urldefrag(url)[0]
        scheme = urllib.parse.urlsplit(url).scheme
        confinement = self.plan.confinement
        if scheme == "file":
            path = Path(url_path(url))
            if confinement is not None:  # links check what a literal may name
                return confinement.data_roots_allow(path) and path.exists()
            return path.exists()
        if scheme in ("http", "https"):
            if url in self.plan.fetched:
                return isinstance(self.plan.fetched[url], str)
            if confinement is not None and not confinement.host_allowed(url):
                return False
            if not self.plan.live:
                return False
            return http_exists(url, self.plan.timeout)
        return scheme == "mailto"
