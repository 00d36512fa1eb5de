"""Helpers for source tests: a recording fake ``emit`` (the consumer side), a context that
runs a source in a thread and checks that it stops promptly, and service probes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from twinengine.events.base import Event, EventSource

STOP_WITHIN = 2.0  # seconds a source may take to return from run() after stop is set


class Recorder:
    """A fake ``emit`` that records events; with ``fail_on`` the N-th call raises instead,
    like a process that dies before the event was stored (so it must not be acknowledged)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.events: list[Event] = []
        self.failed: Event | None = None
        self.fail_on = fail_on
        self.calls = 0
        self._lock = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.calls += 1
            if self.fail_on is not None and self.calls == self.fail_on:
                self.failed = event
                self._lock.notify_all()
                raise RuntimeError("simulated crash while storing the event")
            self.events.append(event)
            self._lock.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        """Block until ``count`` events were recorded (or the failure happened)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.events) < count and self.failed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    keys = [e.key for e in self.events]
                    raise AssertionError(f"waited {timeout}s for {count} events, got {keys}")
                self._lock.wait(left)
        return list(self.events)

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.events]


class Running:
    """A source running in a thread; ``error`` is what ``run`` raised, if anything."""

    def __init__(self, source: EventSource, emit: Callable[[Event], None]) -> None:
        self.source = source
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(emit,), daemon=True)

    def _run(self, emit: Callable[[Event], None]) -> None:
        try:
            self.source.run(emit, self.stop)
        except BaseException as exc:
            self.error = exc

    def wait_error(self, timeout: float = 10.0) -> BaseException:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run() did not return after the failure"
        assert self.error is not None, "run() returned without raising"
        return self.error


@contextmanager
def running(source: EventSource, emit: Callable[[Event], None]) -> Iterator[Running]:
    """Run ``source`` until the block ends, then check it returned within STOP_WITHIN."""
    job = Running(source, emit)
    job.thread.start()
    try:
        yield job
    finally:
        job.stop.set()
        started = time.monotonic()
        job.thread.join(STOP_WITHIN + 3)
        took = time.monotonic() - started
        source.close()
        assert not job.thread.is_alive(), "run() did not return after stop was set"
        assert took < STOP_WITHIN, f"run() took {took:.2f}s to return after stop"


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
