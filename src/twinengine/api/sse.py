"""Server-Sent Events as the streaming routes send them: the response and its keep-alive.

The routes that stream (a run's progress, all runs, the caller's notifications) poll
the database and yield SSE text. :func:`event_stream` wraps such an async iterator in a
``text/event-stream`` response that no proxy caches; :class:`KeepAlive` paces the polls
and says when a ``: ping`` comment is due (after 15 s with nothing sent), so that a
quiet connection is not closed by a proxy on the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

PING = ": ping\n\n"
PING_EVERY = 15.0  # seconds of quiet before a ping


class KeepAlive:
    """Waits ``poll`` seconds between polls, counting the quiet since the last event."""

    def __init__(self, poll: float, every: float = PING_EVERY) -> None:
        self.poll, self.every = poll, every
        self.quiet = 0.0

    def heard(self) -> None:
        """An event was sent: the connection is not quiet."""
        self.quiet = 0.0

    async def wait(self) -> str | None:
        """Sleep until the next poll; the ping to send now, when one is due."""
        await asyncio.sleep(self.poll)
        self.quiet += self.poll
        if self.quiet < self.every:
            return None
        self.quiet = 0.0
        return PING


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """The response that streams ``events`` (SSE text) as they come."""
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
