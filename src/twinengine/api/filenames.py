"""A client's file name as the server keeps it: one plain name, short enough for any disk.

An upload's ``filename`` is whatever the client sent: a path (``../../x``, ``C:\\x``),
control characters, or 300 characters — more than a file system takes in one name
(255 bytes), which made the store fail half way, leaving an empty folder behind.
:func:`client_file_name` keeps the last component, drops what is not printable, and cuts
the name to :data:`MAX_BYTES` of UTF-8, keeping its extensions (``.tar.gz``, ``.cwl``), so
what the name says about the file's kind survives.
"""

from __future__ import annotations

from pathlib import PurePosixPath

MAX_BYTES = 128
_MAX_SUFFIX = 16  # bytes of extensions kept when a name is cut


def client_file_name(name: str | None, default: str) -> str:
    """``name`` as one short printable file name (``default`` when nothing is left)."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    base = "".join(c for c in base if c.isprintable()).strip()
    if base in ("", ".", ".."):
        return default
    if len(base.encode()) <= MAX_BYTES:
        return base
    suffix = "".join(PurePosixPath(base).suffixes[-2:])
    if len(suffix.encode()) > _MAX_SUFFIX:
        suffix = PurePosixPath(base).suffix
        suffix = suffix if len(suffix.encode()) <= _MAX_SUFFIX else ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    while stem and len((stem + suffix).encode()) > MAX_BYTES:
        stem = stem[:-1]
    return (stem + suffix) if stem else default
