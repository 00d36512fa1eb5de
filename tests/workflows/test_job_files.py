"""The native path reads a JSON input object (the job file the server writes for each
run) with the JSON parser: the same values as YAML 1.2 gives, the same refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinengine.workflows.native.document import NotNative, read_yaml

SAME = [
    '{"a": 1, "b": [1.5, -0, 1e-05, 1E5, true, false, null, "x\\/y\\u00e9"], "c": {"d": "010"}}',
    '{"big": 12345678901234567890, "neg": -1.0e+3, "inf": 1e400}',
    '{"a": NaN}',  # not JSON: YAML reads it (a string)
    "{a: 1, b: [x, y]}",  # a YAML flow mapping
    '{\t"tab":\t1}',
]


@pytest.mark.parametrize("text", SAME)
def test_a_json_object_reads_as_yaml_would(tmp_path: Path, text: str) -> None:
    path, as_yaml = tmp_path / "job.json", tmp_path / "job.yml"
    path.write_text(text)
    as_yaml.write_text("--- " + text)  # a document start: read by the YAML parser
    assert read_yaml(path) == read_yaml(as_yaml)


def test_a_duplicate_key_is_refused_either_way(tmp_path: Path) -> None:
    for text in ('{"a": 1, "a": 2}', "a: 1\na: 2\n"):
        path = tmp_path / "job.json"
        path.write_text(text)
        with pytest.raises(NotNative, match="duplicate key 'a'"):
            read_yaml(path)
