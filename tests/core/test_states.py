"""Run and step states: which transitions are allowed and which raise StateError."""

from __future__ import annotations

import itertools

import pytest

from twinengine.core import State, StateError, TwinError, check_transition

Q, R, S, F, C, INT, K = (  # INT: interrupted
    State.QUEUED,
    State.RUNNING,
    State.SUCCEEDED,
    State.FAILED,
    State.CANCELLED,
    State.INTERRUPTED,
    State.SKIPPED,
)

#: the lifecycle from DESIGN.md: queued → running → succeeded | failed | cancelled, plus
#: interrupted (driver died) and resumable failed/cancelled runs, retries and skipped steps
ALLOWED = {
    (Q, R),
    (Q, C),
    (Q, F),
    (Q, K),
    (R, S),
    (R, F),
    (R, C),
    (R, INT),
    (R, Q),
    (INT, R),
    (INT, C),
    (INT, F),
    (F, R),
    (C, R),
}
CHANGES = [(a, b) for a, b in itertools.product(State, State) if a != b]


def test_the_seven_states() -> None:
    assert [s.value for s in State] == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "interrupted",
        "skipped",
    ]
    assert State("running") is State.RUNNING
    assert State.RUNNING == "running"  # a StrEnum: stored as plain text in the DB


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED), ids=lambda s: s.value)
def test_allowed_transition(current: State, new: State) -> None:
    check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"), [c for c in CHANGES if c not in ALLOWED], ids=lambda s: s.value
)
def test_forbidden_transition(current: State, new: State) -> None:
    with pytest.raises(StateError) as info:
        check_transition(current, new)
    assert info.value.message == f"cannot go from {current.value} to {new.value}"


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_staying_in_the_same_state_is_allowed(state: State) -> None:
    check_transition(state, state)


def test_strings_are_accepted() -> None:
    check_transition("queued", "running")
    check_transition(State.RUNNING, "succeeded")
    with pytest.raises(StateError, match="cannot go from succeeded to running"):
        check_transition("succeeded", "running")


@pytest.mark.parametrize("state", [S, K], ids=lambda s: s.value)
def test_succeeded_and_skipped_are_terminal(state: State) -> None:
    for new in State:
        if new != state:
            with pytest.raises(StateError):
                check_transition(state, new)


def test_the_happy_path() -> None:
    for current, new in [(Q, R), (R, S)]:
        check_transition(current, new)


def test_resume_after_interruption_failure_or_cancel() -> None:
    for stopped in (INT, F, C):
        check_transition(stopped, R)


def test_unknown_state_name_is_rejected() -> None:
    with pytest.raises(StateError, match="unknown state"):
        check_transition("queued", "paused")
    with pytest.raises(StateError, match="unknown state"):
        check_transition("nonsense", "running")


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_finished(state: State) -> None:
    assert state.finished == (state in {S, F, C, K})


def test_state_error_is_a_conflict() -> None:
    assert issubclass(StateError, TwinError)
    assert StateError.http_status == 409
