"""Trigger definitions, filters, input mapping and the drift tests, without a server."""

from __future__ import annotations

import random

import pytest

from twinengine.core import ConfigError
from twinengine.events import Event, ks_test, parse_trigger, psi
from twinengine.events.conditions import evaluate, numbers, parse_condition
from twinengine.events.triggers import map_inputs, matches

BASE = {"name": "t", "source": "s", "workflow": "w"}


def test_filters() -> None:
    spec = parse_trigger(
        {**BASE, "filter": {"key": "raw/*.csv", "min_size": 10, "metadata": {"station": "A*"}}}
    )
    event = Event("s", "raw/a.csv", size=50, metadata={"station": "A7"}).as_dict()
    assert matches(spec, event)
    assert not matches(spec, {**event, "key": "raw/a.txt"})
    assert not matches(spec, {**event, "size": 3})
    assert not matches(spec, {**event, "metadata": {"station": "B1"}})
    runs = parse_trigger(
        {**BASE, "source": "runs", "filter": {"states": ["succeeded"], "workflow": "w1"}}
    )
    ended = {"key": "r1", "data": {"state": "succeeded", "workflow": "w1"}}
    assert matches(runs, ended) and not matches(runs, {**ended, "data": {"state": "failed"}})


def test_input_mapping_single_batch_and_literals() -> None:
    spec = parse_trigger(
        {
            **BASE,
            "inputs": {
                "data": "$file",
                "label": "$key",
                "level": "$data.gauge.level",
                "n": 3,
                "price": "$$5",
                "station": "$metadata.station",
            },
        }
    )
    event = Event(
        "s",
        "a.csv",
        location="/in/a.csv",
        data={"gauge": {"level": 4.2}},
        metadata={"station": "A7"},
    ).as_dict()
    assert map_inputs(spec, [event]) == {
        "data": {"class": "File", "path": "/in/a.csv"},
        "label": "a.csv",
        "level": 4.2,
        "n": 3,
        "price": "$5",
        "station": "A7",
    }
    batch = parse_trigger(
        {**BASE, "batch": {"size": 2}, "inputs": {"files": "$files", "keys": "$keys"}}
    )
    other = Event("s", "b.csv", location="s3://bucket/b.csv").as_dict()
    assert map_inputs(batch, [event, other]) == {
        "files": [
            {"class": "File", "path": "/in/a.csv"},
            {"class": "File", "location": "s3://bucket/b.csv"},
        ],
        "keys": ["a.csv", "b.csv"],
    }


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "bad name!"}, "name"),
        ({"workflow": None}, "workflow: is required"),
        ({"colour": 1}, "colour: unknown field"),
        ({"filter": {"key_regex": "("}}, "filter.key_regex: not a regular expression"),
        ({"batch": {"size": 0}}, "batch: give size"),
        ({"retries": {"attempts": 0}}, "retries.attempts"),
        ({"inputs": {"x": "$nope"}}, "unknown reference $nope"),
        ({"condition": {"drift": {"value": "$data.x", "test": "t"}}}, "drift.test"),
        ({"condition": {"threshold": {"value": "$data.x"}}}, "above and/or below"),
    ],
)
def test_bad_definitions(change: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        parse_trigger({**BASE, **change})
    assert words in str(caught.value)


def test_ks_and_psi() -> None:
    rng = random.Random(7)
    same_a = [rng.gauss(0, 1) for _ in range(300)]
    same_b = [rng.gauss(0, 1) for _ in range(300)]
    moved = [rng.gauss(1.0, 1) for _ in range(300)]
    d, p = ks_test(same_a, same_b)
    assert d < 0.12 and p > 0.05
    d, p = ks_test(same_a, moved)
    assert d > 0.3 and p < 1e-6
    assert ks_test([1, 2, 3], [1, 2, 3]) == (0.0, 1.0)
    assert psi(same_a, same_b) < 0.1 < 0.25 < psi(same_a, moved)


def test_drift_keeps_its_reference_and_rebases() -> None:
    condition = parse_condition(
        "t", {"drift": {"value": "$data.x", "reference": 50, "window": 20, "p_value": 0.01}}
    )
    state: dict = {}
    fire, state, _ = evaluate(condition, [1.0 + (i % 5) * 0.01 for i in range(70)], state)
    assert not fire and len(state["reference"]) == 50
    fire, state, detail = evaluate(condition, [5.0 + (i % 3) * 0.01 for i in range(20)], state)
    assert fire and detail["p_value"] < 0.01
    assert min(state["reference"]) >= 5.0  # rebased on the drifted window
    threshold = parse_condition("t", {"threshold": {"value": "$data.x", "above": 4}})
    assert evaluate(threshold, [3.0, 4.5], {})[0] and not evaluate(threshold, [3.0], {})[0]


def test_inputs_that_no_program_could_take_are_refused_when_added() -> None:
    bad = {**BASE, "inputs": {"m": {"deep": ["ok", "a\u0000b"]}}}
    with pytest.raises(ConfigError, match=r"inputs: input 'm.deep\[1\]' holds the character NUL"):
        parse_trigger(bad)


def test_condition_values_from_payloads_are_finite_numbers_only() -> None:
    given = [1, 2.5, "3", True, "nan", "inf", "-Infinity", 10**400, "x", None, {"a": 1}]
    assert numbers(given) == [1.0, 2.5, 3.0]
