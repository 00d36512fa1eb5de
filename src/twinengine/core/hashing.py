"""Content digests of files, read in chunks (workflow hashes, provenance ids)."""

from __future__ import annotations

import hashlib


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
