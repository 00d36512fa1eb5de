"""``twin functions`` as a user runs it (the ``twin`` program in a child process, on the
embedded database): two projects deploying the same name, each listed, shown, invoked,
logged and deleted on its own with ``--project``, and a clear error naming the projects
when a name is ambiguous."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TWIN = Path(sys.executable).with_name("twin")


def twin(home: Path, *args: str, code: int = 0) -> str:
    env = {**os.environ, "TWIN_HOME": str(home)}
    done = subprocess.run(
        [str(TWIN), "functions", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == code, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def script(word: str) -> str:
    return f"{sys.executable} -c \"import sys; print('{word}', file=sys.stderr); print('{word}')\""


def test_two_projects_use_one_name_through_the_cli(twin_home: Path) -> None:
    for project, word in (("alpha", "from-alpha"), ("beta", "from-beta")):
        made = twin(twin_home, "deploy", "clean", "--command", script(word), "--project", project)
        assert "function clean deployed (command: " in made and f"project {project}" in made
    listed = json.loads(twin(twin_home, "list", "--json"))
    assert [(f["name"], f["project"]) for f in listed] == [("clean", "alpha"), ("clean", "beta")]
    only_beta = json.loads(twin(twin_home, "list", "--json", "--project", "beta"))
    assert [f["project"] for f in only_beta] == ["beta"]
    shown = json.loads(twin(twin_home, "show", "clean", "--project", "beta"))
    assert shown["project"] == "beta" and "from-beta" in shown["target"]

    for args in (("show", "clean"), ("invoke", "clean"), ("logs", "clean"), ("delete", "clean")):
        out = twin(twin_home, *args, code=1)
        assert "function 'clean' is in several projects (alpha, beta)" in out, args
        assert "--project" in out and "Traceback" not in out

    alpha = json.loads(twin(twin_home, "invoke", "clean", "--project", "alpha"))
    assert alpha["result"] == "from-alpha" and alpha["project"] == "alpha"
    beta = json.loads(twin(twin_home, "invoke", "clean", "--project", "beta"))
    assert beta["result"] == "from-beta" and beta["project"] == "beta"
    logs = twin(twin_home, "logs", "clean", "--project", "alpha")
    assert alpha["id"] in logs and "from-alpha" in logs
    assert beta["id"] not in logs and "from-beta" not in logs

    assert "function clean of project alpha deleted" in twin(
        twin_home, "delete", "clean", "--project", "alpha"
    )
    out = twin(twin_home, "show", "clean", "--project", "alpha", code=1)
    assert "no function 'clean'" in out
    # one project has it now: the name alone finds it
    assert json.loads(twin(twin_home, "show", "clean"))["project"] == "beta"
    assert beta["id"] in twin(twin_home, "logs", "clean")
