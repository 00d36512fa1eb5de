"""Unpacking uploaded workflow archives safely.

:func:`unpack` writes the plain files of a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` archive
into a folder and refuses anything that could write outside it or smuggle in a
reference to the server's files: absolute names, ``..`` components, symbolic and hard
links, devices and other special members, names that clash. Expansion is bounded while
it happens, whatever the archive's headers claim: at most :data:`MAX_MEMBERS` members
and ``max_bytes`` unpacked bytes in all (a tar's compressed stream is cut off there
too), and a zip member must unpack to exactly its declared size. Every refusal — a
damaged archive included — is an :class:`InvalidInputError` naming the problem; the
caller removes the half-written folder.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from twinengine.core import InvalidInputError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MAX_MEMBERS = 5000  #: members (files and folders) one archive may hold
_CHUNK = 1 << 20
_TAR_SLACK = 1024 * (MAX_MEMBERS + 64)  # tar headers and padding around the files
#: what a damaged archive raises while it is read
_DAMAGED = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,  # an encrypted zip member
)


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def _safe_name(name: str) -> PurePosixPath:
    if "\x00" in name:
        raise InvalidInputError(f"archive member {name!r} has a NUL byte in its name; refused")
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise InvalidInputError(f"archive member {name!r} has an absolute path; refused")
    if any(part == ".." for part in path.parts):
        raise InvalidInputError(f"archive member {name!r} climbs out with '..'; refused")
    if not path.parts or path.parts == (".",):
        raise InvalidInputError(f"archive member {name!r} has no name; refused")
    return path


class _Budget:
    """Bytes and members left to unpack."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.bytes, self.members = max_bytes, 0, 0

    def member(self) -> None:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise InvalidInputError(f"the archive holds more than {MAX_MEMBERS} members; refused")

    def take(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            raise InvalidInputError(
                f"the archive expands to more than {self.max_bytes} bytes; refused",
                hint="upload a smaller archive (or raise TWIN_MAX_UPLOAD_MB on the server)",
            )


def _target(target: Path, name: str) -> Path:
    path = target / _safe_name(name)
    if not path.resolve().is_relative_to(target.resolve()):
        raise InvalidInputError(f"archive member {name!r} would land outside the folder")
    return path


def _write(target: Path, name: str, chunks: Iterator[bytes]) -> None:
    """Write one member from ``chunks`` (read lazily: the budget is checked as they come)."""
    path = _target(target, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as out:
            for chunk in chunks:
                out.write(chunk)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise InvalidInputError(
            f"archive member {name!r} clashes with another member of the same name"
        ) from None
    except OSError as exc:
        raise InvalidInputError(
            f"archive member {name!r} cannot be unpacked: {exc.strerror or exc}"
        ) from None


def _folder(target: Path, name: str) -> None:
    path = _target(target, name)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise InvalidInputError(
            f"archive member {name!r} clashes with another member of the same name"
        ) from None


def unpack(data: bytes, filename: str, target: Path, max_bytes: int) -> list[str]:
    """Unpack the archive ``data`` (named ``filename``) into ``target``; its file names."""
    target.mkdir(parents=True, exist_ok=True)
    budget = _Budget(max_bytes)
    try:
        if filename.lower().endswith(".zip"):
            return _unpack_zip(data, target, budget)
        return _unpack_tar(data, target, budget)
    except InvalidInputError:
        raise
    except _DAMAGED as exc:
        raise InvalidInputError(
            f"the archive is damaged: {type(exc).__name__}: {exc}",
            hint="pack it again (zip, tar, tar.gz, tar.bz2 or tar.xz)",
        ) from None


# -- zip ----------------------------------------------------------------------------------
def _zip_chunks(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget
) -> Iterator[bytes]:
    size = 0
    with archive.open(info) as handle:
        while chunk := handle.read(_CHUNK):
            size += len(chunk)
            if size > info.file_size:
                raise InvalidInputError(f"archive member {info.filename!r} lies about its size")
            budget.take(len(chunk))
            yield chunk
    if size != info.file_size:
        raise InvalidInputError(f"archive member {info.filename!r} lies about its size")


def _unpack_zip(data: bytes, target: Path, budget: _Budget) -> list[str]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"not a readable zip archive: {exc}") from None
    names: list[str] = []
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise InvalidInputError(f"the archive holds more than {MAX_MEMBERS} members; refused")
        for info in members:  # every name is checked before anything is written
            _safe_name(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if stat.S_ISLNK(kind):
                raise InvalidInputError(f"archive member {info.filename!r} is a symlink; refused")
            if kind and not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
                raise InvalidInputError(f"archive member {info.filename!r} is not a plain file")
        for info in members:
            budget.member()
            if info.is_dir():
                _folder(target, info.filename)
                continue
            _write(target, info.filename, _zip_chunks(archive, info, budget))
            names.append(str(_safe_name(info.filename)))
    return names


# -- tar ----------------------------------------------------------------------------------
class _Bounded(io.RawIOBase):
    """A read-only stream that fails once more than ``limit`` bytes were read from it."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw, self.limit, self.count = raw, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(min(len(buffer), _CHUNK))
        self.count += len(data)
        if self.count > self.limit:
            raise InvalidInputError(
                f"the archive expands to more than {self.limit} bytes; refused",
                hint="upload a smaller archive (or raise TWIN_MAX_UPLOAD_MB on the server)",
            )
        buffer[: len(data)] = data
        return len(data)


def _decompressed(data: bytes) -> IO[bytes]:
    if data[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=io.BytesIO(data))
    if data[:3] == b"BZh":
        return bz2.BZ2File(io.BytesIO(data))
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(io.BytesIO(data))
    return io.BytesIO(data)


def _tar_chunks(handle: IO[bytes] | None, size: int, budget: _Budget) -> Iterator[bytes]:
    left = size
    while handle is not None and left > 0:
        chunk = handle.read(min(_CHUNK, left))
        if not chunk:
            raise InvalidInputError("the archive ends in the middle of a member")
        left -= len(chunk)
        budget.take(len(chunk))
        yield chunk


def _unpack_tar(data: bytes, target: Path, budget: _Budget) -> list[str]:
    stream = io.BufferedReader(_Bounded(_decompressed(data), budget.max_bytes + _TAR_SLACK))
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed below
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise InvalidInputError(f"not a readable tar archive: {exc}") from None
    names: list[str] = []
    with archive:
        for member in archive:  # one pass: the caller removes the folder on a refusal
            budget.member()
            _safe_name(member.name)
            if member.issym() or member.islnk():
                raise InvalidInputError(f"archive member {member.name!r} is a link; refused")
            if member.isdir():
                _folder(target, member.name)
                continue
            if not member.isfile():
                raise InvalidInputError(f"archive member {member.name!r} is not a plain file")
            chunks = _tar_chunks(archive.extractfile(member), member.size, budget)
            _write(target, member.name, chunks)
            names.append(str(_safe_name(member.name)))
    return names
