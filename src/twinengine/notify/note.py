"""The :class:`Note`: one notification, as stored in the inbox and sent through channels.

A note says what happened (``kind``: run_failed, drift, source_down …), to which project
and trigger it belongs, a short ``title``, a plain-text ``body``, machine-readable
``data`` and an optional ``link`` into the web UI (a path such as ``/#/runs/ID``; made
absolute with ``TWIN_PUBLIC_URL`` where a channel leaves the UI, e.g. in an e-mail).
:meth:`Note.as_dict` is the JSON shape every channel sends (the webhook body) and the
REST API answers. In the ``notifications`` table the link travels inside the ``data``
column under the reserved key ``_link``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any

from twinengine.core import TwinError
from twinengine.core.times import as_utc as aware

#: kinds TwinEngine itself publishes; plug-ins and scripts may use other names
KINDS = (
    "run_failed",
    "run_succeeded",
    "approval_needed",
    "drift",
    "threshold",
    "source_down",
    "guard",
    "test",
)
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
LINK_MAX = 2000
LINK_KEY = "_link"  # where the link is kept inside the stored ``data`` column


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, like the REST API's datetimes."""
    value = aware(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
        raise TwinError(
            f"invalid notification kind {kind!r}",
            hint="1-32 lower-case letters, digits or _ . -, e.g. " + ", ".join(KINDS[:4]),
        )
    return kind


def is_ui_path(link: str) -> bool:
    """Whether ``link`` is a path of this site that no browser can read as another site:
    ``/`` alone, or one ``/`` followed by a character that is not ``/`` or ``\\``, with
    no backslash, whitespace or control character anywhere (browsers drop tabs and
    newlines and read ``\\`` as ``/``, so ``/\\evil.example`` or ``/<TAB>/evil.example``
    would leave the site)."""
    if not link.startswith("/") or len(link) > LINK_MAX:
        return False
    if len(link) > 1 and link[1] in "/\\":
        return False
    return "\\" not in link and all(c.isprintable() and not c.isspace() for c in link)


def check_link(link: str | None) -> str | None:
    """``link`` when it is a path of the web UI (:func:`is_ui_path`); TwinError if not."""
    if link is None or link == "":
        return None
    if not isinstance(link, str) or not is_ui_path(link):
        shown = link[:80] if isinstance(link, str) else link
        raise TwinError(
            f"invalid notification link {shown!r}: it must be a path of this site",
            hint="one / followed by the path, with no backslash, space or control "
            "character, e.g. /#/runs/RUN_ID",
        )
    return link


@dataclass
class Note:
    """One notification. ``id`` and ``created_at`` are set when it is published."""

    kind: str
    title: str
    body: str = ""
    project: str | None = None
    trigger: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    link: str | None = None
    id: str | None = None
    created_at: dt.datetime | None = None
    user: str | None = None  # the one user it is addressed to (None: the whole project)

    @property
    def url(self) -> str | None:
        """The link as an absolute URL when ``TWIN_PUBLIC_URL`` is set, else the link."""
        base = os.environ.get("TWIN_PUBLIC_URL", "").rstrip("/")
        if self.link and base:
            return base + self.link
        return self.link

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of a note (webhook bodies, the REST API, the event stream)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "body": self.body,
            "project": self.project,
            "trigger": self.trigger,
            "user": self.user,
            "data": self.data,
            "link": self.link,
            "url": self.url,
            "created_at": iso(self.created_at),
        }

    def stored_data(self) -> dict[str, Any]:
        """What goes into the ``data`` column: the data plus the link."""
        stored = dict(self.data or {})
        if self.link:
            stored[LINK_KEY] = self.link
        return stored

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Note:
        data = dict(row.get("data") or {})
        link = data.pop(LINK_KEY, None)
        return cls(
            kind=row["kind"],
            title=row["title"],
            body=row.get("body") or "",
            project=row.get("project"),
            trigger=row.get("trigger"),
            data=data,
            link=link,
            id=row["id"],
            created_at=aware(row.get("created_at")),
            user=row.get("user_name"),
        )

    def text(self) -> str:
        """A plain-text rendering: body, link and the facts (e-mail, chat)."""
        lines = [self.body.strip()] if self.body.strip() else []
        if self.url:
            lines += ["", f"Open: {self.url}"]
        facts = [("kind", self.kind), ("project", self.project), ("trigger", self.trigger)]
        lines += [""] + [f"{k}: {v}" for k, v in facts if v]
        for key, value in sorted(self.data.items()):
            lines.append(f"{key}: {value}")
        return "\n".join(lines).strip() + "\n"
