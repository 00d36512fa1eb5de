"""CI guard: the `required`-tagged CWL v1.2 conformance tests pass with twin-cwl-runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[3] / "shared" / "cwl-v1.2"
#: required tests that need a container engine (hard DockerRequirement); none runs here,
#: so cwltool --no-container reports them unsupported too
NEEDS_CONTAINERS = ["cwloutput_nolimit"]


@pytest.mark.slow
@pytest.mark.conformance
@pytest.mark.skipif(
    not (SUITE / "conformance_tests.yaml").exists(), reason=f"no CWL conformance suite at {SUITE}"
)
def test_required_conformance_tests_pass(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    env["TWIN_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [
            str(bindir / "cwltest"),
            "--test",
            "conformance_tests.yaml",
            "--tool",
            "twin-cwl-runner",
            "--tags",
            "required",
            "-S",
            ",".join(NEEDS_CONTAINERS),
            "-j2",
            "--timeout",
            "120",
            "--",
            "--relax-path-checks",
        ],
        cwd=SUITE,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "All tests passed" in output, output[-6000:]
    assert "failed:" not in output
