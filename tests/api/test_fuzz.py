"""Fuzzing of the REST API with schemathesis against a real ``twin serve`` subprocess.

The server runs with a fresh ``TWIN_HOME`` and the embedded database; its first admin
token is read from its output. Before fuzzing it is seeded with a registered workflow
(the ``echo`` template) and a finished run, and the fuzzer gets real ids (workflow, run,
PROV document and element, output file, project, user) in about half of its cases, so
that the id-taking endpoints are exercised past their 404. What a DELETE may remove is a
second, expendable set (a workflow, a run, a PROV document, a token), so the reads keep
meeting live ids.

Every operation of ``/openapi.json`` is fuzzed (positive and negative cases) except the
Server-Sent Events streams (``/api/v1/stream/runs``, ``/api/v1/runs/{run_id}/events``), which
never end; ``logs`` is always asked with ``follow=false``. The fuzzer uses its own
admin-scope token and may not revoke it (nor the first admin token).

Checks on every response:

- ``not_a_server_error``: no 5xx (docs/api.md: "a 5xx is a bug"), and no hang: a
  request has ``REQUEST_TIMEOUT`` seconds;
- ``response_schema_conformance``: a documented status's body matches its schema;
- ``error_contract`` (here): a 2xx must be one the operation documents; an error must be
  one of the statuses of docs/api.md's error table with the JSON body
  ``{"error": {"code", "message", "hint", "details"}}`` and the code that goes with it;
- ``status_code_conformance``: every status answered is one the operation documents
  (each declares its 2xx and the error statuses 400/401/403/404/409/413/422).

Not used: ``content_type_conformance`` (file downloads and PROV serialisations are
declared as ``application/json`` by FastAPI although they answer text, XML, Turtle, zip).

Each operation is one subtest with ``MAX_EXAMPLES`` cases, half positive, half negative
(about 40 s in all on 2 cores). A failure prints the check, the response, a ``curl``
line that reproduces it (with the fuzzer's token, not "[Filtered]") and the last
traceback the server logged while that operation was fuzzed (the whole log is
``server.log`` in the test's temporary folder). The operations are walked here rather
than with ``schemathesis.pytest.from_fixture``, whose test wrapper sets
``Node._nodeid``, which pytest 9.2 no longer has.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from twinengine.api.process import ServeProcess

ECHO = Path(__file__).resolve().parents[2] / "src/twinengine/workflows/templates/echo.cwl"
START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 10.0
MAX_EXAMPLES = 50

#: docs/api.md, "Errors": the statuses an error may have and their codes
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
}
STREAMS = ("/api/v1/stream/runs", "/api/v1/runs/{run_id}/events", "/api/v1/notifications/stream")


@dataclass
class Server:
    """A running ``twin serve``: its URL, tokens and the ids it was seeded with."""

    url: str
    admin_token: str
    fuzz_token: str
    log: Path
    protected_tokens: set[str] = field(default_factory=set)
    #: parameter name -> a real value, for reads and updates
    real: dict[str, Any] = field(default_factory=dict)
    #: parameter name -> a real value the fuzzer may delete
    expendable: dict[str, Any] = field(default_factory=dict)

    def log_lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def log_excerpt(self, since: int, lines: int = 40) -> str:
        """The last traceback the server logged after line ``since``, its frames in
        TwinEngine only."""
        text = self.log_lines()[since:]
        starts = [i for i, line in enumerate(text) if line.startswith("unexpected error on")]
        if not starts:
            return "no traceback in the server log"
        kept: list[str] = []
        skipped_at: int | None = None  # the indent of a library frame being left out
        for line in text[starts[-1] :]:
            indent = len(line) - len(line.lstrip(" |+-"))  # exception groups draw "|"
            if line[indent:].startswith('File "'):
                library = "site-packages" in line or "<frozen" in line
                skipped_at = indent if library else None
                if library:
                    continue
            elif skipped_at is not None and indent > skipped_at:
                continue  # the code line and carets of a library frame
            else:
                skipped_at = None
            kept.append(line)
        ends = [i for i, line in enumerate(kept) if re.match(r"[A-Za-z_][\w.]*: ", line)]
        if ends:  # up to the exception's own line: what the server logged later is noise
            kept = kept[: ends[-1] + 1]
        return "\n".join(kept[-lines:])


def _wait_run(client: httpx.Client, run_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["state"] not in ("queued", "running"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end in {timeout} s: {run}")


def _seed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """Register the echo workflow twice and run each version once; real and expendable ids."""

    def created(answer: httpx.Response) -> dict[str, Any]:
        assert answer.status_code == 201, (answer.request.url, answer.text)
        return answer.json()

    workflows = [
        created(client.post("/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())}))
        for _ in range(2)
    ]
    runs = []
    for i, workflow in enumerate(workflows):
        body = {"workflow": workflow["id"], "inputs": {"message": f"seed {i}"}}
        run = _wait_run(client, created(client.post("/api/v1/runs", json=body))["id"])
        assert run["state"] == "succeeded", run
        runs.append(run)
    outputs = client.get(f"/api/v1/runs/{runs[0]['id']}/outputs").json()["outputs"]
    download = outputs["output"]["download"]
    documents = []
    for run in runs:
        items = client.get("/api/v1/prov/documents", params={"run": run["id"]}).json()["items"]
        assert items, f"run {run['id']} has no PROV document"
        documents.append(items[0]["id"])
    elements = client.get(f"/api/v1/prov/documents/{documents[0]}/elements").json()["items"]
    spare = created(client.post("/api/v1/tokens", json={"name": "spare", "scopes": ["read"]}))
    real = {
        "workflow_id": workflows[0]["id"],
        "workflow": workflows[0]["id"],
        "run_id": runs[0]["id"],
        "run": runs[0]["id"],
        "doc_id": documents[0],
        "element_id": elements[0]["id"],
        "target": elements[0]["id"],
        "path": download.rsplit("/files/", 1)[1],
        "name": "default",
        "project": "default",
        "user": "admin",
        "step": runs[0]["steps"][0]["name"] if runs[0].get("steps") else None,
    }
    expendable = {
        "workflow_id": workflows[1]["id"],
        "run_id": runs[1]["id"],
        "doc_id": documents[1],
        "ids": documents[1],
        "token_id": spare["id"],
    }
    return {"real": {k: v for k, v in real.items() if v}, "expendable": expendable}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``twin serve`` on a free port, seeded, with a token of the fuzzer's own."""
    home = tmp_path_factory.mktemp("twin-serve")
    log = home / "server.log"
    serve = ServeProcess(home, log=log, start_timeout=START_TIMEOUT).start()
    url, admin_token = serve.url, serve.token
    try:
        headers = {"Authorization": f"Bearer {admin_token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            seeded = _seed(client)
            admin_id = client.get("/api/v1/me").json()["token"]["id"]
            answer = client.post(
                "/api/v1/tokens", json={"name": "fuzz", "scopes": ["read", "run", "admin"]}
            )
            assert answer.status_code == 201, answer.text
            fuzz = answer.json()
        yield Server(
            url=url,
            admin_token=admin_token,
            fuzz_token=fuzz["token"],
            log=log,
            protected_tokens={admin_id, fuzz["id"]},
            real=seeded["real"],
            expendable=seeded["expendable"],
        )
    finally:
        serve.stop()


def _with_real_ids(case: schemathesis.Case, server: Server) -> schemathesis.Case:
    """Put the seeded ids where the case names such a parameter (expendable ones in a
    DELETE), and the seeded workflow into a run's body."""
    known = server.expendable if case.method.upper() == "DELETE" else server.real
    if case.path_parameters:
        case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
    if isinstance(case.query, dict) and case.query:
        case.query = {k: known.get(k, v) for k, v in case.query.items()}
    if case.operation.path == "/api/v1/runs" and isinstance(case.body, dict):
        case.body = {**case.body, "workflow": server.real["workflow_id"]}
    return case


def error_contract(_ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """docs/api.md: 2xx as documented; every error a listed 4xx with the JSON error body."""
    status = response.status_code
    if status < 400:
        documented = case.operation.responses.status_codes
        assert case.operation.responses.find_by_status_code(status) is not None, (
            f"{status} is not a documented answer of {case.operation.label} "
            f"(documented: {', '.join(documented)})"
        )
        return
    if status >= 500:
        return  # not_a_server_error reports it
    assert status in ERROR_CODES, f"{status} is not an error status of docs/api.md"
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"error with content type {content_type}"
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"error body is not {{error}}: {body}"
    error = body["error"]
    assert isinstance(error, dict), f"error is not an object: {error}"
    assert {"code", "message", "hint", "details"} <= set(error), f"error lacks fields: {error}"
    assert error["code"] == ERROR_CODES[status], f"{status} with code {error['code']!r}"
    assert isinstance(error["message"], str) and error["message"], f"no message: {error}"


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    error_contract,
]


def _call(case: schemathesis.Case, server: Server) -> None:
    if (
        case.operation.path == "/api/v1/tokens/{token_id}"
        and case.method.upper() == "DELETE"
        and (case.path_parameters or {}).get("token_id") in server.protected_tokens
    ):
        return  # never revoke the fuzzer's own token or the first admin token
    if case.operation.path == "/api/v1/runs/{run_id}/logs" and isinstance(case.query, dict):
        case.query = {**case.query, "follow": "false"}  # true streams until the step ends
    headers = {"Authorization": f"Bearer {server.fuzz_token}"}
    case.call_and_validate(headers=headers, checks=CHECKS, timeout=REQUEST_TIMEOUT)


def _operations(server: Server) -> list[schemathesis.APIOperation]:
    """The operations of the server's ``/openapi.json``, real ids mixed into their cases."""
    # no "[Filtered]" token in the curl lines: the fuzzer's token is a throwaway one
    config = schemathesis.Config.from_dict({"output": {"sanitization": {"enabled": False}}})
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config, timeout=30)

    @schema.hook
    def flatmap_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
        return st.booleans().map(lambda real: _with_real_ids(case, server) if real else case)

    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if not (op.method.upper() == "GET" and op.path in STREAMS)]


def test_api_conforms(server: Server, subtests: pytest.Subtests) -> None:
    """Positive and negative cases of every operation (one subtest each)."""
    operations = _operations(server)
    assert len(operations) > 30, [op.label for op in operations]
    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            _call(case, server)

        with subtests.test(msg=operation.label):
            mark = len(server.log_lines())
            try:
                fuzz()
            except BaseException as exc:  # schemathesis's FailureGroup is no Exception
                exc.add_note(f"server log ({server.log}):\n{server.log_excerpt(mark)}")
                raise
