"""The ``email`` channel: a plain-text message over SMTP (:mod:`smtplib`).

The target is one e-mail address. The SMTP server comes from the environment, read at
each delivery: ``TWIN_SMTP_HOST`` (default ``127.0.0.1``), ``TWIN_SMTP_PORT`` (25),
``TWIN_SMTP_USER`` and ``TWIN_SMTP_PASSWORD`` (log in when a user is set),
``TWIN_SMTP_FROM`` (default ``twinengine@localhost``) and ``TWIN_SMTP_STARTTLS``
(``1``: upgrade the connection with STARTTLS before logging in). The subject is
``[TwinEngine/<project>] <title>``; the body is the note's text, with the link made
absolute when ``TWIN_PUBLIC_URL`` is set.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from twinengine.core import ConfigError, TwinError
from twinengine.notify.base import DeliveryError, Notifier
from twinengine.notify.note import Note

ADDRESS = re.compile(
    r"^[^@\s<>,;\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$"
)
TIMEOUT = 10.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "twinengine@localhost"
    starttls: bool = False

    @classmethod
    def from_env(cls) -> SmtpConfig:
        env = os.environ
        port = env.get("TWIN_SMTP_PORT", "").strip() or "25"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"TWIN_SMTP_PORT must be a port number, not {port!r}")
        starttls = env.get("TWIN_SMTP_STARTTLS", "0").strip().lower()
        if starttls not in ("", "0", "1", "false", "true", "no", "yes"):
            raise ConfigError(f"TWIN_SMTP_STARTTLS must be 0 or 1, not {starttls!r}")
        return cls(
            host=env.get("TWIN_SMTP_HOST", "").strip() or "127.0.0.1",
            port=int(port),
            user=env.get("TWIN_SMTP_USER") or None,
            password=env.get("TWIN_SMTP_PASSWORD") or None,
            sender=env.get("TWIN_SMTP_FROM", "").strip() or "twinengine@localhost",
            starttls=starttls in ("1", "true", "yes"),
        )


def message_for(note: Note, sender: str, to: str) -> EmailMessage:
    """The e-mail of a note."""
    message = EmailMessage()
    where = f"TwinEngine/{note.project}" if note.project else "TwinEngine"
    message["Subject"] = f"[{where}] " + " ".join(note.title.split())  # one line
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["X-Twin-Event"] = note.kind
    if note.id:
        message["X-Twin-Delivery"] = note.id
    message.set_content(note.text())
    return message


class EmailNotifier(Notifier):
    """Sends one message per note and address through the configured SMTP server."""

    channel = "email"

    def check_target(self, target: str | None) -> str | None:
        target = super().check_target(target) or ""
        if len(target) > 254 or not ADDRESS.match(target):
            raise TwinError(
                f"{target[:80]!r} is not an e-mail address",
                hint="give one address such as alice@example.org",
            )
        return target

    def send(self, note: Note, target: str | None) -> None:
        config = SmtpConfig.from_env()
        message = message_for(note, config.sender, target or "")
        where = f"{config.host}:{config.port}"
        try:
            with smtplib.SMTP(config.host, config.port, timeout=TIMEOUT) as smtp:
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.user:
                    smtp.login(config.user, config.password or "")
                refused = smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            reason = str(exc) or exc.__class__.__name__
            raise DeliveryError(f"e-mail to {target} via SMTP {where} failed: {reason}") from exc
        if refused:
            raise DeliveryError(f"SMTP server {where} refused {target}: {refused}")
