"""Functions with real worker processes: python callables kept warm, commands run per
call, scaling between min and max workers, timeouts, crashes, logs, asynchronous calls
and the checks made when a function is deployed."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinengine.core import InvalidInputError, NotFoundError, StateError, TwinError
from twinengine.events.function_service import FunctionService, run_function
from twinengine.events.functions import FunctionFailedError, InvalidFunctionError
from twinengine.events.workers import LOG_LIMIT

from .conftest import wait_until

FUNCS = """
import os, sys, time

def greet(data):
    print("hello from print")
    print("to stderr", file=sys.stderr)
    os.system("echo from a child process")
    return {"greeting": "hello " + data["name"], "pid": os.getpid()}

def maybe(data):
    if data.get("fail"):
        raise ValueError("no good: " + str(data["fail"]))
    if data.get("die"):
        os._exit(3)
    return os.getpid()

def slow(data):
    time.sleep(data.get("seconds", 0.4))
    return os.getpid()

def not_json(data):
    return {"value": object()}

def huge(data):
    return "x" * (40 << 20)

def chatty(data):
    print("y" * 300_000 + "THE END")
    return "done"
"""


@pytest.fixture
def funcs(tmp_path: Path) -> dict[str, str]:
    """A module ``myfuncs`` in a temporary folder; the env that lets workers import it."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "myfuncs.py").write_text(FUNCS)
    (folder / "broken.py").write_text("raise RuntimeError('cannot import me')\n")
    return {"PYTHONPATH": str(folder)}


@pytest.fixture
def service() -> Iterator[FunctionService]:
    svc = FunctionService(idle_seconds=30)
    yield svc
    svc.shutdown()


def test_python_function_stays_warm_and_captures_prints(service, funcs) -> None:
    service.deploy("greet", "python", "myfuncs:greet", env=funcs)
    first = service.invoke("greet", {"name": "ada"})
    assert first["state"] == "succeeded", first
    assert first["result"]["greeting"] == "hello ada"
    assert first["error"] is None and first["duration"] >= 0
    # prints (Python and a child process) are the call's logs, not protocol noise
    for line in ("hello from print", "to stderr", "from a child process"):
        assert line in first["logs"]
    second = service.invoke("greet", {"name": "bob"})
    assert second["result"]["pid"] == first["result"]["pid"]  # the same warm worker
    assert second["logs"].count("hello from print") == 1  # logs are per call
    assert [c["id"] for c in service.calls("greet")] == [second["id"], first["id"]]
    assert service.call(first["id"])["input"] == {"name": "ada"}


def test_command_function(service) -> None:
    service.deploy("upper", "command", "tr a-z A-Z")
    call = service.invoke("upper", {"text": "hello"})
    assert call["state"] == "succeeded" and call["result"] == {"TEXT": "HELLO"}
    script = "import json, sys; d = json.load(sys.stdin); print('n is', d['n']); print('note', file=sys.stderr)"  # noqa: E501
    service.deploy("text", "command", [sys.executable, "-c", script])
    call = service.invoke("text", {"n": 3})
    assert call["result"] == "n is 3" and call["logs"] == "note\n"
    service.deploy("fails", "command", [sys.executable, "-c", "import sys; sys.exit('no input')"])
    call = service.invoke("fails", {})
    assert call["state"] == "failed"
    assert call["error"] == "exit code 1: no input" and call["result"] is None


def test_pool_scales_up_to_max_and_retires_idle_workers(funcs) -> None:
    service = FunctionService(idle_seconds=0.5)
    try:
        service.deploy("slow", "python", "myfuncs:slow", env=funcs, min_workers=1, max_workers=2)
        ids = [service.submit("slow", {"seconds": 0.4}) for _ in range(6)]
        seen = []

        def all_done() -> bool:
            seen.append(service.stats("slow"))
            return all(service.call(i)["state"] == "succeeded" for i in ids)

        wait_until(all_done, timeout=20, what="6 calls")
        assert max(s["workers"] for s in seen) == 2
        assert max(s["busy"] for s in seen) == 2
        assert len({service.call(i)["result"] for i in ids}) == 2  # two processes served
        pool = service.pool("slow")
        assert pool.spawned == 2
        wait_until(lambda: service.stats("slow")["workers"] == 1, timeout=10, what="retire")
        time.sleep(0.7)
        assert service.stats("slow")["workers"] == 1  # never below min_workers
    finally:
        service.shutdown()


def test_timeout_kills_and_replaces_the_worker(service, funcs) -> None:
    service.deploy("slow", "python", "myfuncs:slow", env=funcs, max_workers=1)
    old_pid = service.invoke("slow", {"seconds": 0})["result"]
    started = time.monotonic()
    call = service.invoke("slow", {"seconds": 30}, timeout=0.5)
    assert time.monotonic() - started < 5
    assert call["state"] == "failed" and call["error"] == "timed out after 0.5 s"
    wait_until(lambda: service.stats("slow")["pids"] not in ([], [old_pid]), what="replacement")
    again = service.invoke("slow", {"seconds": 0})
    assert again["state"] == "succeeded" and again["result"] != old_pid


def test_crashing_function_fails_the_call_and_the_pool_keeps_serving(service, funcs) -> None:
    service.deploy("maybe", "python", "myfuncs:maybe", env=funcs, max_workers=1)
    pid = service.invoke("maybe", {})["result"]
    call = service.invoke("maybe", {"fail": 7})
    assert call["state"] == "failed" and call["error"] == "ValueError: no good: 7"
    assert "Traceback" in call["logs"] and 'raise ValueError("no good: "' in call["logs"]
    assert "twinengine" not in call["logs"]  # the worker's own frame is left out
    assert service.invoke("maybe", {})["result"] == pid  # the same process serves on
    died = service.invoke("maybe", {"die": True})
    assert died["state"] == "failed" and "died (exit code 3)" in died["error"]
    assert service.invoke("maybe", {})["state"] == "succeeded"  # a fresh process


def test_bad_results_and_imports_fail_the_call(service, funcs) -> None:
    service.deploy("nj", "python", "myfuncs:not_json", env=funcs)
    call = service.invoke("nj", {})
    assert call["state"] == "failed" and "not JSON-serialisable" in call["error"]
    service.deploy("broken", "python", "broken:anything", env=funcs)  # found, fails to import
    call = service.invoke("broken", {})
    assert call["state"] == "failed"
    assert call["error"] == "cannot load broken:anything: RuntimeError: cannot import me"
    assert "Traceback" in call["logs"]


def test_oversized_results_fail_the_call(service, funcs) -> None:
    service.deploy("yes", "command", "yes", timeout=20)
    call = service.invoke("yes", {})
    assert call["state"] == "failed" and call["error"] == "the output is larger than 32 MiB"
    service.deploy("huge", "python", "myfuncs:huge", env=funcs, timeout=20)
    call = service.invoke("huge", {})
    assert call["state"] == "failed" and call["error"] == "the result is larger than 32 MiB"
    service.deploy("chatty", "python", "myfuncs:chatty", env=funcs)
    call = service.invoke("chatty", {})  # logs keep their end
    assert call["result"] == "done" and call["logs"].startswith("[… about")
    assert call["logs"].endswith("THE END\n") and len(call["logs"]) < LOG_LIMIT + 100


def test_async_submit_and_poll(service, funcs) -> None:
    service.deploy("slow", "python", "myfuncs:slow", env=funcs)
    call_id = service.submit("slow", {"seconds": 0.3})
    assert service.call(call_id)["state"] in ("queued", "running")
    wait_until(lambda: service.call(call_id)["state"] == "succeeded", what="async call")
    call = service.call(call_id)
    assert isinstance(call["result"], int) and call["started_at"] <= call["ended_at"]
    assert service.logs("slow", 5)[0]["id"] == call_id


def test_run_function_returns_the_result_or_raises(service, funcs) -> None:
    service.deploy("maybe", "python", "myfuncs:maybe", env=funcs)
    assert isinstance(run_function(service, "maybe", {}), int)
    with pytest.raises(FunctionFailedError, match="no good: x") as info:
        run_function(service, "maybe", {"fail": "x"})
    assert info.value.call["state"] == "failed"


def test_redeploy_restarts_the_pool_and_delete_forgets_calls(service, funcs) -> None:
    service.deploy("fn", "python", "myfuncs:maybe", env=funcs)
    pid = service.invoke("fn", {})["result"]
    service.deploy("fn", "python", "myfuncs:slow", env=funcs)
    call = service.invoke("fn", {"seconds": 0})
    assert call["state"] == "succeeded" and call["result"] != pid
    assert len(service.calls("fn")) == 2
    service.delete("fn")
    with pytest.raises(NotFoundError):
        service.call(call["id"])
    with pytest.raises(NotFoundError):
        service.invoke("fn", {})


CLEAN = """
import os, time

def clean(data):
    started = time.time()
    time.sleep(data.get("seconds", 0))
    return {"by": %r, "pid": os.getpid(), "started": started, "ended": time.time()}
"""


def test_two_projects_run_their_own_function_of_one_name(service, tmp_path: Path) -> None:
    """``clean`` of alpha and of beta: each its own code, pool and calls, concurrently."""
    envs = {}
    for project in ("alpha", "beta"):
        folder = tmp_path / project
        folder.mkdir()
        (folder / f"{project}_steps.py").write_text(CLEAN % project)
        envs[project] = {"PYTHONPATH": str(folder)}
        service.deploy(
            "clean", "python", f"{project}_steps:clean", project, env=envs[project], max_workers=1
        )
    assert [(f["name"], f["project"]) for f in service.list()] == [
        ("clean", "alpha"),
        ("clean", "beta"),
    ]
    assert service.get("clean", "beta")["target"] == "beta_steps:clean"
    with pytest.raises(StateError, match=r"several projects \(alpha, beta\)") as info:
        service.invoke("clean", {})
    assert "--project" in (info.value.hint or "")
    # one worker each: shared, the two calls would run one after the other
    ids = {p: service.submit("clean", {"seconds": 1.5}, project=p) for p in ("alpha", "beta")}
    wait_until(
        lambda: all(service.call(i)["state"] == "succeeded" for i in ids.values()),
        timeout=30,
        what="both calls",
    )
    alpha, beta = (service.call(ids[p]) for p in ("alpha", "beta"))
    assert alpha["result"]["by"] == "alpha" and alpha["project"] == "alpha"
    assert beta["result"]["by"] == "beta" and beta["project"] == "beta"
    assert alpha["result"]["pid"] != beta["result"]["pid"]
    assert alpha["result"]["started"] < beta["result"]["ended"]  # the two overlapped
    assert beta["result"]["started"] < alpha["result"]["ended"]
    assert service.stats("clean", "alpha")["pids"] == [alpha["result"]["pid"]]
    assert service.stats("clean", "beta")["pids"] == [beta["result"]["pid"]]
    assert [c["id"] for c in service.calls("clean", project="alpha")] == [ids["alpha"]]
    assert [c["id"] for c in service.logs("clean", project="beta")] == [ids["beta"]]
    # redeploying alpha's restarts only alpha's pool; deleting it leaves beta's whole
    service.deploy("clean", "command", "tr a-z A-Z", "alpha")
    assert service.stats("clean", "alpha")["workers"] == 0
    assert service.stats("clean", "beta")["pids"] == [beta["result"]["pid"]]
    assert service.invoke("clean", {"x": "y"}, project="alpha")["result"] == {"X": "Y"}
    assert service.delete("clean", "alpha") == "alpha"
    with pytest.raises(NotFoundError):
        service.call(ids["alpha"])
    assert service.call(ids["beta"])["state"] == "succeeded"
    again = service.invoke("clean", {})  # only beta has it now
    assert again["result"]["by"] == "beta" and again["result"]["pid"] == beta["result"]["pid"]
    assert run_function(service, "clean", {}, project="beta")["by"] == "beta"
    with pytest.raises(NotFoundError, match="no function 'clean'"):
        run_function(service, "clean", {}, project="alpha")


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("python", "no_colon_here", "invalid python target"),
        ("python", "mod:fn:extra", "invalid python target"),
        ("python", "1mod:fn", "invalid python target"),
        ("python", "surely_not_a_module_xyz:fn", "cannot find python module"),
        ("python", "surely_not_a_package_xyz.sub:fn", "cannot find python module"),
        ("command", "no-such-program-xyz --flag", "is not on PATH"),
        ("command", "/nonexistent/bin/tool", "is not an executable file"),
        ("command", "", "the command is empty"),
        ("command", "echo 'unclosed", "cannot parse command"),
        ("shell", "echo", "unknown function kind"),
    ],
)
def test_bad_deploys_are_clear_errors(service, kind: str, target: str, message: str) -> None:
    with pytest.raises(InvalidFunctionError, match=message) as info:
        service.deploy("bad", kind, target)
    assert isinstance(info.value, TwinError) and info.value.hint
    assert service.list() == []


def test_bad_names_pool_sizes_and_inputs(service) -> None:
    for name in ("calls", "", "a b", "x" * 65):
        with pytest.raises(InvalidFunctionError, match="invalid function name"):
            service.deploy(name, "command", "cat")
    with pytest.raises(InvalidFunctionError, match="pool size"):
        service.deploy("cat", "command", "cat", min_workers=3, max_workers=2)
    with pytest.raises(InvalidFunctionError, match="timeout"):
        service.deploy("cat", "command", "cat", timeout=0)
    service.deploy("cat", "command", "cat")
    with pytest.raises(InvalidInputError, match="JSON object"):
        service.invoke("cat", [1, 2])
    with pytest.raises(InvalidInputError, match="timeout"):
        service.invoke("cat", {}, timeout=-1)
    assert service.invoke("cat", {"a": [1, 2]})["result"] == {"a": [1, 2]}


def test_shutdown_fails_waiting_calls(funcs) -> None:
    service = FunctionService()
    service.deploy("slow", "python", "myfuncs:slow", env=funcs, max_workers=1)
    ids = [service.submit("slow", {"seconds": 5}) for _ in range(3)]
    wait_until(lambda: service.call(ids[0])["state"] == "running", what="first call running")
    service.shutdown()
    for call_id in ids:
        call = service.call(call_id)
        assert call["state"] == "failed" and "shut down" in call["error"]
