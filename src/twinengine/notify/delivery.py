"""Background delivery: a thread pool that sends notes through notifiers, with retries.

:class:`DeliveryPool` runs each delivery (one note, one subscription) on a worker
thread, so publishing never waits for a slow SMTP server or webhook. A delivery that
raises is tried again after each delay of ``retry_delays`` (default 0.5 s, then 2 s:
three attempts); the last failure is logged on the ``twinengine.notify`` logger — never
raised into the publisher — and kept in :attr:`DeliveryPool.failures` (the latest 100).
:meth:`DeliveryPool.flush` waits for the pending deliveries (tests, shutdown).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from twinengine.notify.note import Note

log = logging.getLogger("twinengine.notify")

RETRY_DELAYS = (0.5, 2.0)


@dataclass(frozen=True)
class Failure:
    """A delivery that failed on every attempt."""

    note_id: str | None
    subscription_id: str
    channel: str
    error: str
    attempts: int


class DeliveryPool:
    """Sends notes on worker threads; each delivery retried after ``retry_delays``."""

    def __init__(self, workers: int = 4, retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self.retry_delays = tuple(retry_delays)
        self.failures: deque[Failure] = deque(maxlen=100)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="twin-notify")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def submit(
        self,
        send: Callable[[Note, str | None], None],
        note: Note,
        target: str | None,
        *,
        subscription_id: str,
        channel: str,
    ) -> None:
        """Queue one delivery; returns at once."""
        if self._closing.is_set():
            log.warning("notification %s not sent: the delivery pool is closed", note.id)
            return
        future = self._executor.submit(self._deliver, send, note, target, subscription_id, channel)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver(
        self,
        send: Callable[[Note, str | None], None],
        note: Note,
        target: str | None,
        subscription_id: str,
        channel: str,
    ) -> None:
        delays = (*self.retry_delays, None)
        for attempt, delay in enumerate(delays, start=1):
            try:
                send(note, target)
                if attempt > 1:
                    log.info(
                        "notification %s via %s (subscription %s) delivered on attempt %d",
                        note.id,
                        channel,
                        subscription_id,
                        attempt,
                    )
                return
            except Exception as exc:
                error = str(exc) or exc.__class__.__name__
                if delay is None or self._closing.wait(delay):
                    log.warning(
                        "notification %s via %s (subscription %s) failed after %d attempt(s): %s",
                        note.id,
                        channel,
                        subscription_id,
                        attempt,
                        error,
                    )
                    self.failures.append(Failure(note.id, subscription_id, channel, error, attempt))
                    return
                log.debug(
                    "notification %s via %s: attempt %d failed: %s",
                    note.id,
                    channel,
                    attempt,
                    error,
                )

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait for every pending delivery; False when some are still running at timeout."""
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return True
        _done, not_done = wait(pending, timeout=timeout)
        return not not_done

    def close(self, timeout: float | None = 5.0) -> None:
        """Finish running deliveries (no more retries), then stop the workers."""
        self.flush(timeout)
        self._closing.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
