"""Secrets at rest: what seals a secret (a password, a token) before it is written to the
metadata database, and opens it again for the code that needs it.

:class:`SecretBox` encrypts with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) under one key per server: the file named by the ``secret_key_file``
setting (default ``$TWIN_HOME/secret.key``), created with mode 0600 on first use — servers
that share a PostgreSQL database are given the same file. A sealed value is the text
``enc:v1:<token>``; a value without that prefix is a plain one written before secrets
were sealed, and :meth:`SecretBox.open` returns it as it is (the next write seals it).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from twinengine.core.errors import ConfigError

PREFIX = "enc:v1:"


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a sealed secret (``enc:v1:…``)."""
    return isinstance(value, str) and value.startswith(PREFIX)


class SecretBox:
    """Seal and open secrets with the server's key (read, or created, on first use)."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = Path(key_file)
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def seal(self, text: str) -> str:
        """``text`` encrypted, as ``enc:v1:<token>`` (a sealed value stays as it is)."""
        if is_sealed(text):
            return text
        return PREFIX + self._key().encrypt(text.encode("utf-8")).decode("ascii")

    def open(self, value: str) -> str:
        """The plain text of a sealed value; a plain (legacy) value unchanged."""
        if not is_sealed(value):
            return value
        try:
            return self._key().decrypt(value[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise ConfigError(
                "a stored secret cannot be decrypted with this server's secret key",
                hint="give every server that shares the database the same secret key file "
                "(setting secret_key_file), or enter the secret again",
            ) from None

    def _key(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(_read_or_create(self.key_file))
            return self._fernet


def _read_or_create(path: Path) -> bytes:
    """The key in ``path``; a new one written there (mode 0600, atomically) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, Fernet.generate_key())
        finally:
            os.close(descriptor)
        try:
            os.link(temp, path)  # fails when another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and info.st_uid == os.getuid():
            path.chmod(0o600)  # readable by the server's user only
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the secret key file: {exc.strerror or exc}",
            hint="check the setting secret_key_file and the file's owner",
        ) from None
    try:
        Fernet(key)
    except ValueError:
        raise ConfigError(
            "the secret key file does not hold a Fernet key",
            hint="it holds 44 URL-safe base64 characters; remove it to have a new one made "
            "(secrets sealed with the old key must then be entered again)",
        ) from None
    return key
