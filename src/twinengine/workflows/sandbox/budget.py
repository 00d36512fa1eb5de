"""How much the run process reads on a sandboxed step's behalf.

The run process hashes every output file of a step (CWL's SHA-1, provenance's SHA-256),
reads ``cwl.output.json`` and ``loadContents``, as the server's user, on one of the few
run workers all projects share. A step could make that cost far more than its own: a
sparse file (``truncate -s 4G``: a few KiB on disk) is gigabytes of zeros to hash, and
nothing bounded the number of files or their total size. An :class:`OutputBudget`, one
per step of a served run, bounds it: the apparent bytes of the files read
(``sandbox_output_mb``) and the number of output files (``sandbox_output_files``); a
file with more than :data:`HOLE_LIMIT` bytes of holes is refused outright (hashing
zeros costs the same CPU whether they are on disk or not, so reading around holes with
``SEEK_DATA`` would save no time); ``cwl.output.json`` may hold at most
:data:`CUSTOM_OUTPUT_LIMIT` bytes; and a file that is not a regular file (a named pipe
would block the reader) is refused. Each refusal is an :class:`OutputLimitError`
naming the output as the step wrote it and the setting that bounds it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from twinengine.core.errors import InvalidInputError

MIB = 1 << 20
#: bytes of holes (unwritten ranges) a single output file may have
HOLE_LIMIT = 64 * MIB
#: largest ``cwl.output.json`` the run process parses
CUSTOM_OUTPUT_LIMIT = 16 * MIB


class OutputLimitError(InvalidInputError):
    """A sandboxed step's outputs would cost the run process more than a server allows."""


def hole_bytes(fd: int, size: int, enough: int) -> int:
    """Bytes of holes in the open file ``fd`` of ``size`` bytes, counted with
    ``SEEK_DATA``/``SEEK_HOLE`` until more than ``enough`` are found (0 where the file
    system cannot tell)."""
    holes = position = 0
    while position < size and holes <= enough:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after position: the rest is a hole
                return holes + size - position
            return 0
        holes += start - position
        position = os.lseek(fd, start, os.SEEK_HOLE)
    return holes


@dataclass
class OutputBudget:
    """What the run process may still read for one step (0: no bound)."""

    max_bytes: int = 0
    max_files: int = 0
    read: int = 0
    files: int = 0
    charged: set[tuple[int, int]] = field(default_factory=set)  # (device, inode) read

    @classmethod
    def from_settings(cls, settings: Any) -> OutputBudget:
        """The budget of a step under ``settings`` (``sandbox_output_mb``/``_files``)."""
        return cls(settings.sandbox_output_mb * MIB, settings.sandbox_output_files)

    def count(self, found: int, shown: str) -> None:
        """``found`` more output files (glob matches, listed entries); ``shown``: how the
        step named what holds them."""
        self.files += found
        if self.max_files and self.files > self.max_files:
            raise OutputLimitError(
                f"this step returns more than {self.max_files} output files (at {shown!r}): "
                "refused (sandbox_output_files)",
                hint="return fewer files (e.g. one archive or a Directory), or ask the "
                "server's admin to raise TWIN_SANDBOX_OUTPUT_FILES",
            )

    def charge(self, fd: int, shown: str, limit: int = 0) -> os.stat_result:
        """Account for reading the open file ``fd`` (an output the step named ``shown``):
        refused unless it is a regular file without large holes that fits what is left
        (and ``limit`` bytes, when given); a file read again costs nothing more."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputLimitError(
                f"output {shown!r} is not a regular file: refused",
                hint="return regular files (not named pipes, sockets or devices)",
            )
        if limit and st.st_size > limit:
            raise OutputLimitError(
                f"{shown!r} holds {st.st_size} bytes, more than the {limit // MIB} MiB the "
                "server reads of it: refused",
                hint="write a smaller file (return large values as files)",
            )
        key = (st.st_dev, st.st_ino)
        if key in self.charged:
            return st
        if st.st_size - st.st_blocks * 512 > HOLE_LIMIT:
            holes = hole_bytes(fd, st.st_size, HOLE_LIMIT)
            if holes > HOLE_LIMIT:
                raise OutputLimitError(
                    f"output {shown!r} is a sparse file ({st.st_size // MIB} MiB, more than "
                    f"{HOLE_LIMIT // MIB} MiB of it never written): refused on this server",
                    hint="write the file's bytes (the server would read its holes as zeros)",
                )
        self.read += st.st_size
        if self.max_bytes and self.read > self.max_bytes:
            raise OutputLimitError(
                f"the outputs of this step hold more than {self.max_bytes // MIB} MiB (at "
                f"{shown!r}): refused (sandbox_output_mb)",
                hint="return smaller outputs, or ask the server's admin to raise "
                "TWIN_SANDBOX_OUTPUT_MB",
            )
        self.charged.add(key)
        return st

    def open(self, path: str, shown: str, limit: int = 0) -> BinaryIO:
        """``path`` opened for reading once :meth:`charge` allows it (never blocking on a
        named pipe)."""
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.charge(fd, shown, limit)
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
