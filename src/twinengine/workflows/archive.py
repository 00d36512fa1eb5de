"""Unpacking uploaded workflow archives safely.

:func:`unpack` writes the plain files of a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` archive
into a folder and refuses anything that could write outside it or smuggle in a
reference to the server's files: absolute names, ``..`` components, symbolic and hard
links, devices, and archives that expand beyond a size or file-count limit (zip bombs).
Every refusal is an :class:`InvalidInputError` naming the offending member.
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from twinengine.core import InvalidInputError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MAX_FILES = 5000


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or ":" in path.parts[0:1][0:1]:
        raise InvalidInputError(f"archive member {name!r} has an absolute path; refused")
    if any(part == ".." for part in path.parts):
        raise InvalidInputError(f"archive member {name!r} climbs out with '..'; refused")
    return path


def _write(target: Path, name: str, data: bytes) -> None:
    path = target / _safe_name(name)
    if not path.resolve().is_relative_to(target.resolve()):
        raise InvalidInputError(f"archive member {name!r} would land outside the folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def unpack(data: bytes, filename: str, target: Path, max_bytes: int) -> list[str]:
    """Unpack the archive ``data`` (named ``filename``) into ``target``; its file names."""
    target.mkdir(parents=True, exist_ok=True)
    if filename.lower().endswith(".zip"):
        return _unpack_zip(data, target, max_bytes)
    return _unpack_tar(data, target, max_bytes)


def _budget(total: int, count: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise InvalidInputError(f"the archive expands to more than {max_bytes} bytes; refused")
    if count > MAX_FILES:
        raise InvalidInputError(f"the archive holds more than {MAX_FILES} files; refused")


def _unpack_zip(data: bytes, target: Path, max_bytes: int) -> list[str]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"not a readable zip archive: {exc}") from None
    names, total = [], 0
    with archive:
        members = archive.infolist()
        for info in members:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise InvalidInputError(f"archive member {info.filename!r} is a symlink; refused")
            _safe_name(info.filename)
        for info in members:
            if info.is_dir():
                continue
            total += info.file_size
            _budget(total, len(names) + 1, max_bytes)
            with archive.open(info) as handle:
                content = handle.read(max_bytes + 1)
            if len(content) != info.file_size:
                raise InvalidInputError(f"archive member {info.filename!r} lies about its size")
            _write(target, info.filename, content)
            names.append(info.filename)
    return names


def _unpack_tar(data: bytes, target: Path, max_bytes: int) -> list[str]:
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")  # noqa: SIM115 - closed below
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInputError(f"not a readable tar archive: {exc}") from None
    names, total = [], 0
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidInputError(f"the tar archive is damaged: {exc}") from None
        for member in members:
            _safe_name(member.name)
            if member.issym() or member.islnk():
                raise InvalidInputError(f"archive member {member.name!r} is a link; refused")
            if not (member.isfile() or member.isdir()):
                raise InvalidInputError(f"archive member {member.name!r} is not a plain file")
        for member in members:
            if member.isdir():
                continue
            total += member.size
            _budget(total, len(names) + 1, max_bytes)
            handle = archive.extractfile(member)
            content = handle.read() if handle else b""
            _write(target, member.name, content)
            names.append(member.name)
    return names
