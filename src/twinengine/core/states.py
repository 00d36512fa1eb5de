"""Run and step states and the transitions allowed between them.

``queued → running → succeeded | failed | cancelled``; a run whose driver died is
``interrupted`` and may be resumed (back to ``running``). Keeping the rules in one place
means the scheduler, the CLI and (later) the API cannot disagree about them.
"""

from __future__ import annotations

from enum import StrEnum

from twinengine.core.errors import StateError


class State(StrEnum):
    """Lifecycle state of a run or a step."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"  # a step whose `when` was false

    @property
    def finished(self) -> bool:
        """True when nothing more will happen to the run or step unless resumed."""
        return self in _FINAL


_FINAL = {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.SKIPPED}

_ALLOWED: dict[State, set[State]] = {
    State.QUEUED: {State.RUNNING, State.CANCELLED, State.FAILED, State.SKIPPED},
    State.RUNNING: {
        State.SUCCEEDED,
        State.FAILED,
        State.CANCELLED,
        State.INTERRUPTED,
        State.QUEUED,  # a retry puts a step back in the queue
    },
    State.INTERRUPTED: {State.RUNNING, State.CANCELLED, State.FAILED},
    State.FAILED: {State.RUNNING},  # resume retries failed steps
    State.CANCELLED: {State.RUNNING},  # resume continues a cancelled run
    State.SUCCEEDED: set(),
    State.SKIPPED: set(),
}


def check_transition(current: State | str, new: State | str) -> None:
    """Raise :class:`StateError` when ``current → new`` is not an allowed transition."""
    try:
        cur, nxt = State(current), State(new)
    except ValueError:
        raise StateError(
            f"unknown state in {current!r} → {new!r}",
            hint="states are: " + ", ".join(s.value for s in State),
        ) from None
    if cur == nxt:
        return
    if nxt not in _ALLOWED[cur]:
        raise StateError(f"cannot go from {cur.value} to {nxt.value}")
